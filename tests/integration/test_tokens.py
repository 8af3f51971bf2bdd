"""Refresh (proactive, rotating, never twice), client assertions, and id_token validation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from smart_app.smart.client_auth import client_assertion
from smart_app.smart.id_token import IdTokenError, JwksCache, validate
from smart_app.smart.keys import SigningKeys

from .conftest import Stack, StackFactory

pytestmark = pytest.mark.integration


def _launch_id(page: str) -> str:
    return page.rsplit("/", 1)[1]


def test_expired_token_is_refreshed_and_rotated(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"token_lifetime": 2})
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    repo = stack.services.repo
    before = repo.get(_launch_id(page))
    assert before is not None and before.tokens.refresh_token is not None
    time.sleep(2.2)  # past expiry, not merely close to it
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 200
    after = repo.get(_launch_id(page))
    assert after is not None
    assert after.tokens.access_token != before.tokens.access_token
    assert after.tokens.refresh_token not in (None, before.tokens.refresh_token)  # rotated
    # No FHIR request was made with the expired token: the refresh came first.
    assert all(r["status"] == 200 for r in stack.fhir_requests())
    # Rotate again: the sandbox rejects any refresh token used twice, so success here means
    # the app used the new one.
    time.sleep(1.2)
    assert browser.get(page, timeout=30).status_code == 200  # a reload reads the chart again
    assert [t["status"] for t in stack.token_requests()] == [200, 200, 200]
    assert len({
        t.refresh_token for t in [before.tokens, after.tokens]
    }) == 2


def test_concurrent_requests_refresh_once(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"token_lifetime": 4})
    browser = stack.browser()
    page = stack.launch(browser, "ex03-index-0-90")
    time.sleep(2.2)  # past half-life: the next requests refresh proactively
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(
            lambda _: browser.get(page + "/assessment", timeout=30).status_code, range(4)
        ))
    assert statuses == [200, 200, 200, 200]
    refreshes = stack.token_requests()[1:]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200


def test_refresh_refused_asks_for_relaunch(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"token_lifetime": 1})
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(reset=True)  # the EHR forgets every token: the refresh is refused
    time.sleep(1.1)
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"] == "session-expired"
    launch = stack.services.repo.get(_launch_id(page))
    assert launch is not None and launch.tokens.refresh_token is None  # never sent again


def test_client_assertion_is_smart_shaped(signing_keys: SigningKeys) -> None:
    for alg, key in (("RS384", signing_keys.rsa), ("ES384", signing_keys.ec)):
        one = client_assertion(key, alg, client_id="c", token_endpoint="https://ehr/token")
        two = client_assertion(key, alg, client_id="c", token_endpoint="https://ehr/token")
        public = KeySet.import_key_set(signing_keys.public_jwks())
        first = jwt.decode(one, public, algorithms=[alg])
        second = jwt.decode(two, public, algorithms=[alg])
        assert first.header == {"alg": alg, "kid": key.kid, "typ": "JWT"}
        claims = first.claims
        assert claims["iss"] == claims["sub"] == "c"
        assert claims["aud"] == "https://ehr/token"
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assert claims["jti"] != second.claims["jti"]
    with pytest.raises(ValueError):
        client_assertion(signing_keys.ec, "ES384", client_id="c", token_endpoint="t",
                         lifetime=3600)


def test_id_token_is_verified(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    launch = stack.services.repo.get(_launch_id(page))
    assert launch is not None and launch.tokens.id_token
    svc = stack.services
    tenant = svc.settings.tenants[0]
    config = svc.discovery.get(svc.http, tenant.iss, 5)
    http = requests.Session()
    identity = validate(launch.tokens.id_token, http=http, config=config,
                        client_id=tenant.client_id, jwks=JwksCache(), timeout=5)
    assert identity.fhir_user == "Practitioner/dr-ada"
    with pytest.raises(IdTokenError, match="audience"):
        validate(launch.tokens.id_token, http=http, config=config, client_id="someone-else",
                 jwks=JwksCache(), timeout=5)
    with pytest.raises(IdTokenError, match="expired"):
        validate(launch.tokens.id_token, http=http, config=config,
                 client_id=tenant.client_id, jwks=JwksCache(), timeout=5,
                 now=time.time() + 7200)
    header, payload, signature = launch.tokens.id_token.split(".")
    forged = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA"
                                                          else "BBBB")])
    with pytest.raises(IdTokenError, match="signature"):
        validate(forged, http=http, config=config, client_id=tenant.client_id,
                 jwks=JwksCache(), timeout=5)


def test_revoked_access_token_triggers_one_refresh_attempt(stack: Stack) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    stack.control(reset=True)  # access and refresh tokens revoked together
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"] == "session-expired"
    # The CapabilityStatement (read alongside the chart) needs no token.
    fhir = [r for r in stack.fhir_requests() if r["path"] != "/sandbox/fhir/metadata"]
    assert fhir and all(r["status"] == 401 for r in fhir)
    assert len(stack.token_requests()) == 1  # five 401s, one refresh attempt
