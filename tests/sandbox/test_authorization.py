"""Authorization server: every client auth kind end to end, and every rule it must enforce."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sandbox_helpers import REDIRECT, SCOPE, Smart

CLIENTS = ["app-public", "app-basic", "app-rs384", "app-es384"]


@pytest.mark.parametrize("client_id", CLIENTS)
def test_full_ehr_launch_flow(smart: Smart, client_id: str) -> None:
    launch = smart.launch(
        "alice", encounter="enc-1", need_patient_banner="false", intent="pml-detail"
    )
    token = smart.login(client_id, launch=launch)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["patient"] == "alice" and token["encounter"] == "enc-1"
    assert token["need_patient_banner"] is False
    assert token["intent"] == "pml-detail"
    assert token["tenant"] == "tenant-1"
    assert token["smart_style_url"] == f"{smart.base}/smart-style.json"
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refresh_token"]
    r = smart.get(token["access_token"], "Patient/alice")
    assert r.status_code == 200 and r.json()["id"] == "alice"


def test_id_token_is_signed_and_names_fhir_user(smart: Smart) -> None:
    token = smart.login("app-public")
    config = smart.http.get(f"{smart.fhir}/.well-known/openid-configuration").json()
    keys = KeySet.import_key_set(smart.http.get(config["jwks_uri"]).json())
    header = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).header
    claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == config["issuer"] and claims["aud"] == "app-public"
    assert claims["exp"] > time.time() >= claims["iat"] - 5
    assert claims["fhirUser"] == f"{smart.fhir}/Practitioner/dr-ada"
    me = smart.get(token["access_token"], claims["fhirUser"])
    assert me.status_code == 200 and me.json()["resourceType"] == "Practitioner"


def test_fhir_context_and_practitioner_from_launch(smart: Smart) -> None:
    launch = smart.launch("alice", practitioner="dr-bob", fhir_context="Observation/alice-obs-1")
    token = smart.login("app-public", launch=launch)
    assert token["fhirContext"] == [{"reference": "Observation/alice-obs-1", "type": "Observation"}]
    claims = jwt.decode(token["id_token"], _server_keys(smart), algorithms=["RS256"]).claims
    assert claims["fhirUser"].endswith("/Practitioner/dr-bob")


def _server_keys(smart: Smart) -> KeySet:
    return KeySet.import_key_set(smart.http.get(f"{smart.fhir}/.well-known/jwks.json").json())


def test_standalone_launch_picks_patient(smart: Smart) -> None:
    scope = "launch/patient openid fhirUser patient/Patient.rs"
    assert smart.login("app-public", scope, launch=None)["patient"] == "alice"  # first in index
    token = smart.login("app-public", scope, launch=None, patient="bob")
    assert token["patient"] == "bob"
    assert "refresh_token" not in token  # no online_access / offline_access requested
    r, _ = smart.authorize(scope=scope, launch=None, patient="nobody")
    assert smart.redirect_params(r)["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"aud": "http://evil.test/fhir"}, "invalid_request"),
        ({"aud": None}, "invalid_request"),
        ({"launch": "not-a-handle"}, "invalid_request"),
        ({"scope": "patient/Patient.rs"}, "invalid_scope"),  # launch without the launch scope
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_authorize_errors_redirect(smart: Smart, overrides: dict[str, Any], error: str) -> None:
    for client_id in ("app-public", "app-basic"):  # confidential clients need PKCE too
        kwargs = dict(overrides)
        if "code_challenge" in kwargs:
            kwargs["challenge"] = ""
        r, _ = smart.authorize(client_id, **kwargs)
        params = smart.redirect_params(r)
        assert params["error"] == error, params
        assert params["state"] == "st-123"


def test_missing_state_is_an_error(smart: Smart) -> None:
    r, _ = smart.authorize(state=None)
    assert smart.redirect_params(r)["error"] == "invalid_request"


def test_bad_client_or_redirect_is_not_redirected(smart: Smart) -> None:
    r, _ = smart.authorize(client_id="nobody")
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    r, _ = smart.authorize(redirect_uri="http://evil.test/cb")
    assert r.status_code == 400 and "Location" not in r.headers
    r, _ = smart.authorize(redirect_uri=None)
    assert r.status_code == 400 and "Location" not in r.headers


def test_deny_authorization(smart: Smart) -> None:
    smart.control(deny_authorization=True)
    r, _ = smart.authorize()
    params = smart.redirect_params(r)
    assert params["error"] == "access_denied" and params["state"] == "st-123"
    assert "code" not in params


def _code(smart: Smart, client_id: str = "app-public") -> tuple[str, str]:
    r, verifier = smart.authorize(client_id)
    return smart.redirect_params(r)["code"], verifier


@pytest.mark.parametrize("client_id", ["app-public", "app-basic"])
def test_pkce_verifier_missing_or_wrong(smart: Smart, client_id: str) -> None:
    code, verifier = _code(smart, client_id)
    r = smart.exchange(client_id, code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = smart.exchange(client_id, code, "x" * 50)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert smart.exchange(client_id, code, verifier).status_code == 200  # code still usable


def test_code_is_single_use_and_reuse_revokes(smart: Smart) -> None:
    code, verifier = _code(smart)
    first = smart.exchange("app-public", code, verifier)
    assert first.status_code == 200
    again = smart.exchange("app-public", code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert smart.get(first.json()["access_token"], "Patient/alice").status_code == 401


def test_code_bound_to_redirect_uri_and_client(smart: Smart) -> None:
    code, verifier = _code(smart)
    r = smart.exchange("app-public", code, verifier, redirect_uri=REDIRECT + "x")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = smart.exchange("app-basic", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_basic_auth_wrong_secret(smart: Smart) -> None:
    code, verifier = _code(smart, "app-basic")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    r = smart.http.post(smart.token_url, data=data, auth=("app-basic", "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # a confidential client cannot pretend to be public
    r = smart.http.post(smart.token_url, data={**data, "client_id": "app-basic"})
    assert r.json()["error"] == "invalid_client"


def _exchange_with(smart: Smart, client_id: str, assertion: str) -> Any:
    code, verifier = _code(smart, client_id)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    return smart.http.post(smart.token_url, data=data)


@pytest.mark.parametrize(("client_id", "alg"), [("app-rs384", "RS384"), ("app-es384", "ES384")])
def test_private_key_jwt_rules(smart: Smart, client_id: str, alg: str) -> None:
    ok = smart.assertion(client_id, alg=alg, jti="once")
    assert _exchange_with(smart, client_id, ok).status_code == 200
    bad = {
        "replayed jti": ok,
        "exp > 5 min": smart.assertion(client_id, alg=alg, exp_in=420),
        "expired": smart.assertion(client_id, alg=alg, exp_in=-120),
        "wrong aud": smart.assertion(client_id, alg=alg, aud=f"{smart.base}/auth/authorize"),
        "no kid": smart.assertion(client_id, alg=alg, kid=None),
        "unknown kid": smart.assertion(client_id, alg=alg, kid="other"),
    }
    for label, assertion in bad.items():
        r = _exchange_with(smart, client_id, assertion)
        assert r.status_code in (400, 401), label
        assert r.json()["error"] == "invalid_client", label


def test_private_key_jwt_rejects_other_algorithms_and_keys(smart: Smart) -> None:
    # ES384-signed assertion for the RS384-registered client: no such key in its JWKS
    wrong_key = smart.assertion("app-rs384", alg="ES384")
    assert _exchange_with(smart, "app-rs384", wrong_key).json()["error"] == "invalid_client"
    same_key = RSAKey.import_key(
        {k: v for k, v in smart.rsa_key.as_dict(private=True).items() if k != "alg"}
    )
    now = int(time.time())
    claims = {"iss": "app-rs384", "sub": "app-rs384", "aud": smart.token_url, "exp": now + 60}
    claims["jti"] = "rs256"
    rs256 = jwt.encode({"alg": "RS256", "kid": "rsa-1"}, claims, same_key, algorithms=["RS256"])
    assert _exchange_with(smart, "app-rs384", rs256).json()["error"] == "invalid_client"
    # the right assertion but for another client id (iss/sub mismatch with the key owner)
    other = smart.assertion("app-es384", alg="RS384")
    assert _exchange_with(smart, "app-es384", other).json()["error"] == "invalid_client"


def test_refresh_rotation(smart: Smart) -> None:
    token = smart.login("app-rs384")
    first_refresh = token["refresh_token"]
    r = smart.refresh("app-rs384", first_refresh)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["access_token"] != token["access_token"]
    assert new["refresh_token"] and new["refresh_token"] != first_refresh
    assert new["scope"] == token["scope"]
    assert "patient" not in new  # launch context is only in the code exchange by default
    old = smart.refresh("app-rs384", first_refresh)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    assert smart.refresh("app-rs384", new["refresh_token"]).status_code == 200
    assert smart.get(new["access_token"], "Patient/alice").status_code == 200


def test_refresh_needs_the_same_client(smart: Smart) -> None:
    token = smart.login("app-public")
    r = smart.refresh("app-basic", token["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_refresh_can_repeat_context_when_switched_on(smart: Smart) -> None:
    smart.control(refresh_includes_context=True)
    token = smart.login("app-public")
    again = smart.refresh("app-public", token["refresh_token"]).json()
    assert again["patient"] == "alice" and again["need_patient_banner"] is True


def test_no_refresh_token_without_online_access(smart: Smart) -> None:
    token = smart.login("app-public", "launch patient/Patient.r")
    assert "refresh_token" not in token
    assert "id_token" not in token
    assert token["scope"] == "launch patient/Patient.r"


def test_unknown_scopes_are_dropped(smart: Smart) -> None:
    token = smart.login("app-public", "launch patient/Patient.r bogus patient/Observation.sr")
    assert token["scope"] == "launch patient/Patient.r"


def test_v1_only_converts_scopes(smart: Smart) -> None:
    smart.control(v1_only=True)
    token = smart.login(
        "app-public",
        "launch online_access patient/Observation.rs patient/RiskAssessment.cs "
        "patient/Patient.read",
    )
    assert token["scope"].split() == [
        "launch",
        "online_access",
        "patient/Observation.read",
        "patient/RiskAssessment.read",
        "patient/RiskAssessment.write",
        "patient/Patient.read",
    ]
    r = smart.get(token["access_token"], "Observation", patient="alice")
    assert r.status_code == 200


def test_authorize_by_post(smart: Smart) -> None:
    from sandbox_helpers import pkce_pair

    verifier, challenge = pkce_pair()
    form = {
        "response_type": "code",
        "client_id": "app-public",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st-123",
        "aud": smart.fhir,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "launch": smart.launch("bob"),
    }
    r = smart.http.post(f"{smart.base}/auth/authorize", data=form, allow_redirects=False)
    code = smart.redirect_params(r)["code"]
    token = smart.exchange("app-public", code, verifier).json()
    assert token["patient"] == "bob" and "encounter" not in token


def test_launch_scope_without_launch_parameter(smart: Smart) -> None:
    r, _ = smart.authorize(launch=None)
    assert smart.redirect_params(r)["error"] == "invalid_request"
