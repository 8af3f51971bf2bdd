"""Key rotation on a running instance: publish next to current, sign with the new, retire the old.

The sandbox EHR verifies every client assertion against the app's served JWKS (``jwks_uri``),
so "the EHR still accepts the old key during the overlap" is checked by the EHR itself.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from smart_app.cli import main
from smart_app.smart import keys
from smart_app.smart.client_auth import ASSERTION_TYPE, client_assertion

from .conftest import Deployment, DeploymentFactory
from .harness import CLIENT_ID, browser, launch


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    d = make_deployment(redis=False)
    d.start(d.port_a, "a")
    return d


def _served(d: Deployment) -> dict[str, Any]:
    resp = requests.get(f"{d.base}/.well-known/jwks.json", timeout=10)
    assert resp.status_code == 200
    assert "max-age" in resp.headers["Cache-Control"]
    data: dict[str, Any] = resp.json()
    for jwk in data["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "created"} & set(jwk)  # public only
    return data


def _token_endpoint(d: Deployment) -> str:
    conf = requests.get(f"{d.iss}/.well-known/smart-configuration", timeout=10).json()
    endpoint: str = conf["token_endpoint"]
    return endpoint


def _ehr_accepts(d: Deployment, key: keys.Key, alg: str) -> bool:
    """Present an assertion signed with ``key`` to the EHR's token endpoint with a bogus code:
    ``invalid_grant`` means the client authenticated, ``invalid_client`` that it did not."""
    endpoint = _token_endpoint(d)
    assertion = client_assertion(key, alg, client_id=CLIENT_ID, token_endpoint=endpoint)
    resp = requests.post(endpoint, data={
        "grant_type": "authorization_code", "code": "not-a-code",
        "redirect_uri": f"{d.base}/callback", "code_verifier": "v" * 50,
        "client_id": CLIENT_ID, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }, timeout=10)
    error = str(resp.json().get("error"))
    assert error in ("invalid_grant", "invalid_client"), resp.text
    return error == "invalid_grant"


def _signing_kids(d: Deployment, since: int) -> list[str]:
    return [json.loads(line)["kid"] for line in d.audit_lines()[since:]
            if json.loads(line)["event"] == "token.exchange"]


def _cli(*args: str) -> int:
    return main(list(args))


def test_rotate_overlap_then_retire(deployment: Deployment,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = deployment
    keys_file = str(d.keys_file)
    old = keys.load(keys_file)
    assert {k["kid"] for k in _served(d)["keys"]} == {old.rsa.kid, old.ec.kid}
    mark = len(d.audit_lines())
    launch(browser(), d.ehr, "ex01-negative-30")
    assert _signing_kids(d, mark) == [old.ec.kid]  # the tenant signs with ES384

    # An assertion signed just before the rotation...
    endpoint = _token_endpoint(d)
    in_flight = client_assertion(old.ec, "ES384", client_id=CLIENT_ID, token_endpoint=endpoint)

    assert _cli("keys", "rotate", "--keys-file", keys_file) == 0
    new = keys.load(keys_file)
    assert new.ec.kid != old.ec.kid and new.rsa.kid != old.rsa.kid
    assert {k.kid for k in new.previous} == {old.rsa.kid, old.ec.kid}

    # ...still verifies against what the running instance now serves (no restart).
    served = _served(d)
    assert [k["kid"] for k in served["keys"]] == [new.rsa.kid, new.ec.kid, old.rsa.kid,
                                                  old.ec.kid]
    jwt.decode(in_flight, KeySet.import_key_set(served),  # type: ignore[arg-type]
               algorithms=["ES384"])
    assert _ehr_accepts(d, old.ec, "ES384") and _ehr_accepts(d, old.rsa, "RS384")

    mark = len(d.audit_lines())
    launch(browser(), d.ehr, "ex03-index-0-90")
    assert _signing_kids(d, mark) == [new.ec.kid]  # the new key signs

    capsys.readouterr()
    assert _cli("keys", "show", "--keys-file", keys_file) == 0
    shown = capsys.readouterr().out
    assert f"{new.ec.kid}" in shown and f"{old.ec.kid}" in shown
    assert shown.count("current") == 2 and shown.count("previous") == 2
    assert '"d"' not in shown and "created" in shown
    # A second rotation would silently unpublish keys EHRs may still hold: refused.
    assert _cli("keys", "rotate", "--keys-file", keys_file) == 2
    assert "keys retire" in capsys.readouterr().err

    assert _cli("keys", "retire", "--keys-file", keys_file) == 0
    assert {k["kid"] for k in _served(d)["keys"]} == {new.rsa.kid, new.ec.kid}
    assert not _ehr_accepts(d, old.ec, "ES384")
    assert _ehr_accepts(d, new.ec, "ES384")
    assert "/launches/" in launch(browser(), d.ehr, "ex01-negative-30")


def test_staged_rotation_publishes_before_signing(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """For EHRs that cache the JWKS: the next pair is served a while before it signs."""
    d = deployment
    keys_file = str(d.keys_file)
    before = keys.load(keys_file)
    assert _cli("keys", "rotate", "--stage", "--keys-file", keys_file) == 0
    staged = keys.load(keys_file)
    assert staged.current == before.current and len(staged.next) == 2
    assert len(_served(d)["keys"]) == 4
    assert _ehr_accepts(d, staged.next[1], "ES384")  # the EHR already knows the next key
    mark = len(d.audit_lines())
    launch(browser(), d.ehr, "ex01-negative-30")
    assert _signing_kids(d, mark) == [before.ec.kid]  # ...but it does not sign yet
    capsys.readouterr()
    assert _cli("keys", "show", "--keys-file", keys_file) == 0
    assert capsys.readouterr().out.count("next (published, not yet signing)") == 2

    assert _cli("keys", "rotate", "--keys-file", keys_file) == 0
    promoted = keys.load(keys_file)
    assert [k.kid for k in promoted.current] == [k.kid for k in staged.next]
    assert [k.kid for k in promoted.previous] == [k.kid for k in before.current]
    mark = len(d.audit_lines())
    launch(browser(), d.ehr, "ex03-index-0-90")
    assert _signing_kids(d, mark) == [staged.next[1].kid]
    assert _cli("keys", "retire", "--keys-file", keys_file) == 0


def test_keys_commands_need_a_key_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.json")
    assert _cli("keys", "rotate", "--keys-file", missing) == 2
    assert "keys_file" in capsys.readouterr().err
    assert _cli("keys", "generate", "--keys-file", missing) == 0
    assert _cli("keys", "show", "--keys-file", missing, "--jwks") == 0
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert len(printed["keys"]) == 2 and all("d" not in k for k in printed["keys"])
    # Separate environments: each has its own file, so its own kids.
    other = str(tmp_path / "prod.json")
    assert _cli("keys", "generate", "--keys-file", other) == 0
    assert keys.load(other).ec.kid != keys.load(missing).ec.kid
    # A key file that cannot be written is one line naming it, never a traceback.
    blocked = str(tmp_path / "none.json" / "jwks.json")
    assert _cli("keys", "generate", "--keys-file", blocked) == 2
    assert f"keys_file: {blocked} cannot be written" in capsys.readouterr().err


def test_refused_client_assertion_is_audited_as_a_failed_exchange(deployment: Deployment) -> None:
    """The EHR holds other keys for this client (say, the other environment's): the token
    exchange fails, the clinician sees an error page, and the trail says why, without secrets."""
    d = deployment
    other = keys.generate()
    control = f"{d.ehr}/sandbox/_control"
    client = {"client_id": CLIENT_ID, "auth": "private_key_jwt",
              "redirect_uris": [f"{d.base}/callback"]}
    requests.post(control, json={"register_client": {**client, "jwks": other.public_jwks()}},
                  timeout=10).raise_for_status()
    mark = len(d.audit_lines())
    try:
        http = browser()
        first = http.get(f"{d.ehr}/sandbox/launch", params={"patient": "ex01-negative-30"},
                         allow_redirects=False, timeout=10)
        from .harness import to_callback

        failed = http.get(to_callback(http, first.headers["Location"]), timeout=30)
    finally:
        requests.post(control, json={"register_client": {
            **client, "jwks_uri": f"{d.base}/.well-known/jwks.json"}}, timeout=10)
    assert failed.status_code == 502
    records = [json.loads(line) for line in d.audit_lines()[mark:]]
    exchange = [r for r in records if r["event"] == "token.exchange"]
    assert exchange and exchange[0]["status"] == "failed"
    assert exchange[0]["error"].endswith(":invalid_client")
    assert exchange[0]["client_auth"] == "private_key_jwt" and exchange[0]["kid"]
    errors = [r for r in records if r["event"] == "error"]
    assert errors and errors[0]["error"] == "token-exchange"
    assert errors[0]["http_status"] == 502 and errors[0]["endpoint"] == "launch.callback"
    assert errors[0]["tenant"] == "Sandbox EHR"
    assert "launch.established" not in {r["event"] for r in records}
    assert "/launches/" in launch(browser(), d.ehr, "ex01-negative-30")  # restored
