"""Signing in the way Epic and Oracle Health really do it, over loopback HTTP.

Non-rotating refresh tokens, id_tokens issued on the authorization host (Oracle), keys the
issuer does not publish, grants written in a vendor's own format, ``nbf`` in client assertions,
``Epic-Client-ID`` on ``/metadata``. The sandbox reproduces what it can through its switches;
the shapes it cannot take (another issuer path, a smart-configuration without ``issuer``) are a
scripted server.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.wrappers import Request, Response

from smart_app.config import from_mapping
from smart_app.fhir import capability
from smart_app.smart.client_auth import client_assertion
from smart_app.smart.discovery import SmartConfiguration, fetch
from smart_app.smart.id_token import IdTokenError, JwksCache, validate
from smart_app.smart.keys import SigningKeys
from smart_app.smart.scopes import GrantedScopes

from .conftest import StackFactory
from .scripted_ehr import Script

pytestmark = pytest.mark.integration


def _launch_id(page: str) -> str:
    return page.rsplit("/", 1)[1]


def _audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "pml_risk.audit"]


# -- refresh tokens that do not rotate (item 2) -----------------------------------------------


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    stack = make_stack(sandbox={"token_lifetime": 2})
    stack.control(rotate_refresh_tokens=False)
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    first = stack.services.repo.get(_launch_id(page))
    assert first is not None and first.tokens.refresh_token is not None
    with caplog.at_level(logging.INFO, logger="pml_risk.audit"):
        for _ in range(2):  # two refreshes with the same refresh token
            time.sleep(2.1)
            assert browser.get(page, timeout=30).status_code == 200  # a (re)load reads
            resp = browser.get(page + "/assessment", timeout=30)
            assert resp.status_code == 200 and resp.json()["status"] == "ok"
    after = stack.services.repo.get(_launch_id(page))
    assert after is not None
    assert after.tokens.access_token != first.tokens.access_token
    assert after.tokens.refresh_token == first.tokens.refresh_token
    assert [t["status"] for t in stack.token_requests()] == [200, 200, 200]
    refreshes = [e for e in _audit(caplog) if e["event"] == "token.refresh"]
    assert [(e["status"], e["rotated"]) for e in refreshes] == [("ok", False), ("ok", False)]


# -- the user's identity (item 1) -----------------------------------------------------------


def test_id_token_by_an_unpublished_key_launches_without_a_verified_user(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    stack.control(id_token_unpublished_key=True)
    browser = stack.browser()
    with caplog.at_level(logging.INFO, logger="pml_risk.audit"):
        page = stack.launch(browser, "ex03-index-0-90")
    data = browser.get(page + "/assessment", timeout=30).json()
    assert data["status"] == "ok"
    assert data["launch"]["user"] is None and data["launch"]["userStatus"] == "unverified"
    assert "performer" not in data["riskAssessment"]
    assert "does not name you as its author" in browser.get(page, timeout=30).text
    events = [e for e in _audit(caplog) if e["event"].startswith("id_token")]
    assert [(e["event"], e["error"]) for e in events] == [("id_token.unverified", "unknown-kid")]
    assert "user" not in events[0]


class Issuer:
    """An Oracle-shaped authorization host: keys at ``/jwk``, OpenID configuration under a
    per-tenant issuer path, nothing under the FHIR base."""

    def __init__(self, base: str, script: Script) -> None:
        self.base = base
        self.script = script
        self.key = RSAKey.generate_key(2048, private=True, auto_kid=True)
        self.issuer = f"{base}/tenants/t1/oidc/idsps/t1/"
        self.published = [self.key]
        script.routes["/jwk"] = lambda _r: Response(
            json.dumps(KeySet(self.published).as_dict(private=False)),
            mimetype="application/json")
        script.routes["/tenants/t1/oidc/idsps/t1/.well-known/openid-configuration"] = (
            lambda _r: Response(json.dumps({"issuer": self.issuer, "jwks_uri": f"{base}/jwk"}),
                                mimetype="application/json"))

    def config(self, *, jwks_uri: bool, issuer: str | None = None) -> SmartConfiguration:
        return SmartConfiguration(
            iss=f"{self.base}/r4/t1",
            authorization_endpoint=f"{self.base}/tenants/t1/protocols/oauth2/authorize",
            token_endpoint=f"{self.base}/tenants/t1/protocols/oauth2/token",
            source="well-known",
            issuer=issuer,
            jwks_uri=f"{self.base}/jwk" if jwks_uri else None,
        )

    def token(self, iss: str | None = None, key: RSAKey | None = None) -> str:
        now = int(time.time())
        signer = key or self.key
        claims = {"iss": iss or self.issuer, "sub": "portal", "aud": "app", "iat": now,
                  "exp": now + 600,
                  "fhirUser": f"{self.base}/r4/t1/Practitioner/98765"}
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)


@pytest.fixture
def issuer(ehr: tuple[str, Script]) -> Issuer:
    base, script = ehr
    return Issuer(base, script)


def test_oracle_issuer_on_the_authorization_host_is_verified_with_the_discovered_keys(
    issuer: Issuer,
) -> None:
    http = requests.Session()
    who = validate(issuer.token(), http=http, config=issuer.config(jwks_uri=True),
                   client_id="app", jwks=JwksCache(), timeout=5)
    assert who.verified and who.subject == "portal" and who.issuer == issuer.issuer
    assert who.fhir_user == "Practitioner/98765"
    assert issuer.script.hits == ["/jwk"]  # jwks_uri from smart-configuration: no discovery
    # Without jwks_uri: OpenID discovery under the token's issuer (on the authorization host),
    # never under the FHIR base.
    issuer.script.hits.clear()
    who = validate(issuer.token(), http=http, config=issuer.config(jwks_uri=False),
                   client_id="app", jwks=JwksCache(), timeout=5)
    assert who.verified
    assert issuer.script.hits == [
        "/tenants/t1/oidc/idsps/t1/.well-known/openid-configuration", "/jwk"]


def test_an_issuer_on_another_host_is_refused_before_any_request(issuer: Issuer) -> None:
    http = requests.Session()
    elsewhere = "http://127.0.0.2:9/tenants/t1/oidc/idsps/t1/"
    with pytest.raises(IdTokenError, match="issuer"):
        validate(issuer.token(iss=elsewhere), http=http, config=issuer.config(jwks_uri=False),
                 client_id="app", jwks=JwksCache(), timeout=5)
    assert issuer.script.hits == []
    # The tenant may name its issuer explicitly (here: one the scripted host also serves).
    named = f"{issuer.base}/oidc/"
    issuer.script.routes["/oidc/.well-known/openid-configuration"] = lambda _r: Response(
        json.dumps({"issuer": named, "jwks_uri": f"{issuer.base}/jwk"}),
        mimetype="application/json")
    config = issuer.config(jwks_uri=True, issuer=f"{issuer.base}/other")
    config = SmartConfiguration(**{**config.__dict__,
                                   "authorization_endpoint": "http://127.0.0.2:9/authorize",
                                   "token_endpoint": "http://127.0.0.2:9/token"})
    with pytest.raises(IdTokenError, match="issuer"):
        validate(issuer.token(iss=named), http=http, config=config, client_id="app",
                 jwks=JwksCache(), timeout=5)
    who = validate(issuer.token(iss=named), http=http, config=config, client_id="app",
                   jwks=JwksCache(), timeout=5, oidc_issuer=named)
    assert who.verified and who.issuer == named


def test_openid_configuration_pointing_elsewhere_is_refused(issuer: Issuer) -> None:
    issuer.script.routes["/tenants/t1/oidc/idsps/t1/.well-known/openid-configuration"] = (
        lambda _r: Response(json.dumps({"issuer": issuer.issuer,
                                        "jwks_uri": "http://127.0.0.2:9/jwk"}),
                            mimetype="application/json"))
    with pytest.raises(IdTokenError, match="another host"):
        validate(issuer.token(), http=requests.Session(), config=issuer.config(jwks_uri=False),
                 client_id="app", jwks=JwksCache(), timeout=5)
    assert "/jwk" not in issuer.script.hits


def test_unknown_kid_refetches_the_keys_once_then_goes_on_unverified(issuer: Issuer) -> None:
    clock = [1000.0]
    cache = JwksCache(clock=lambda: clock[0])
    http = requests.Session()
    config = issuer.config(jwks_uri=True)
    assert validate(issuer.token(), http=http, config=config, client_id="app", jwks=cache,
                    timeout=5).verified
    rolled = RSAKey.generate_key(2048, private=True, auto_kid=True)
    clock[0] += 600  # the cached set is ten minutes old
    issuer.script.hits.clear()
    who = validate(issuer.token(key=rolled), http=http, config=config, client_id="app",
                   jwks=cache, timeout=5)
    assert not who.verified and who.fhir_user is None and who.subject == ""
    assert issuer.script.hits == ["/jwk"]  # exactly one refetch
    # Once the issuer publishes the new key, the refetch finds it.
    issuer.published = [issuer.key, rolled]
    clock[0] += 600
    assert validate(issuer.token(key=rolled), http=http, config=config, client_id="app",
                    jwks=cache, timeout=5).verified
    # A known key with a bad signature is still a refusal, not "unverified".
    forged = issuer.token()[:-6] + ("AAAAAA" if not issuer.token().endswith("AAAAAA")
                                   else "BBBBBB")
    with pytest.raises(IdTokenError, match="signature"):
        validate(forged, http=http, config=config, client_id="app", jwks=cache, timeout=5)


# -- grants in a vendor's own format (item 7) -------------------------------------------------


def test_api_style_grant_falls_back_to_the_requested_scopes(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    stack = make_stack()
    stack.control(grant_format="epic")
    browser = stack.browser()
    with caplog.at_level(logging.INFO, logger="pml_risk.audit"):
        page = stack.launch(browser, "ex05-index-1-51-25-infusions")
    launch = stack.services.repo.get(_launch_id(page))
    assert launch is not None
    assert "Observation.search" in launch.tokens.scope  # kept verbatim
    assert GrantedScopes.parse(launch.tokens.scope).resources == ()
    data = browser.get(page + "/assessment", timeout=30).json()
    assert data["status"] == "ok" and data["access"]["withheld"] == []
    assert data["result"]["per1000"] == "8.8"
    unparsed = [e for e in _audit(caplog) if e["event"] == "scope.unparsed"]
    assert len(unparsed) == 1 and "Observation.read" in unparsed[0]["scopes"]
    assert unparsed[0]["requested_scopes"].startswith("launch ")


def test_a_vendor_grant_that_withholds_a_type_is_told_by_the_403(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    stack.control(grant_format="epic", withhold=["MedicationStatement"])
    browser = stack.browser()
    page = stack.launch(browser, "ex07-prior-is-azathioprine-48")
    data = browser.get(page + "/assessment", timeout=30).json()
    statements = [r for r in stack.fhir_requests() if r["path"].endswith("/MedicationStatement")]
    assert [r["status"] for r in statements] == [403]  # tried, because the grant was unreadable
    assert data["access"]["withheld"] == ["MedicationStatement"]
    assert data["access"]["dataMayBeIncomplete"] is True


# -- client authentication and /metadata (item 8) ---------------------------------------------


def test_client_assertions_carry_nbf(signing_keys: SigningKeys) -> None:
    token = client_assertion(signing_keys.rsa, "RS384", client_id="c",
                             token_endpoint="https://ehr/token")
    claims = jwt.decode(token, KeySet.import_key_set(signing_keys.public_jwks()),
                        algorithms=["RS384"]).claims
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["nbf"] <= 300


def test_epic_client_id_goes_with_metadata_reads_only_for_epic(
    ehr: tuple[str, Script],
) -> None:
    base, script = ehr
    seen: list[str | None] = []

    def metadata(req: Request) -> Response:
        seen.append(req.headers.get("Epic-Client-ID"))
        return Response(json.dumps({"resourceType": "CapabilityStatement", "rest": [
            {"mode": "server", "security": {"extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "authorize", "valueUri": f"{base}/authorize"},
                              {"url": "token", "valueUri": f"{base}/token"}]}]},
             "resource": [{"type": "Observation"}]}]}), mimetype="application/fhir+json")

    script.routes["/fhir/metadata"] = metadata
    epic, other = from_mapping({"tenants": [
        {"name": "E", "iss": f"{base}/fhir", "client_id": "epic-app", "vendor": "epic"},
        {"name": "O", "iss": f"{base}/oracle", "client_id": "other", "vendor": "oracle"},
    ]}).tenants
    other = replace(other, iss=epic.iss)  # the same server, another vendor setting
    http = requests.Session()
    assert capability.fetch(http, epic.iss, 5, capability.metadata_headers(epic)).offers(
        "Observation")
    capability.fetch(http, other.iss, 5, capability.metadata_headers(other))
    # The deprecated discovery route (no .well-known) reads /metadata too.
    fetch(http, epic.iss, 5, capability.metadata_headers(epic))
    assert seen == ["epic-app", None, "epic-app"]
