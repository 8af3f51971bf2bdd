"""Who may call the CDS services: every rule of CDS Hooks "Trusting CDS Clients", over HTTP.

Each refused call must get a bare 401 (no body that says why), be audited with the reason, the
claimed issuer and jti, and never put the token in the audit trail.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from smart_app.cds.jwks import REFETCH_INTERVAL

from .ehr import ISSUER, AuditLines, Ehr, hook_body, serve_ehr

pytestmark = pytest.mark.integration


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[Ehr]:
    yield from serve_ehr(tmp_path)


def refused(ehr: Ehr, audit_lines: AuditLines, token: str | None, reason: str,
            **call: object) -> None:
    resp = ehr.call(token, **call)  # type: ignore[arg-type]
    assert resp.status_code == 401, resp.text
    assert resp.content == b""  # bare: nothing tells the caller which rule failed
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    event = audit_lines.events("cds.refused")[-1]
    assert event["error"] == reason
    assert event["http_status"] == 401
    if token:
        assert token not in "\n".join(audit_lines.raw)
        signature = token.split(".")[-1] if token.count(".") == 2 else ""
        assert not signature or signature not in "\n".join(audit_lines.raw)


def test_rs384_and_es384_tokens_are_answered_with_a_card(ehr: Ehr) -> None:
    for alg in ("RS384", "ES384"):
        resp = ehr.call(ehr.token(alg))
        assert resp.status_code == 200, resp.text
        assert resp.json()["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")


def test_a_replayed_token_is_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    token = ehr.token()
    assert ehr.call(token).status_code == 200
    refused(ehr, audit_lines, token, "replay")
    event = audit_lines.events("cds.refused")[-1]
    assert event["iss"] == ISSUER and event["jti"]


def test_the_replay_store_is_shared_by_instances_on_one_sqlite_file(tmp_path: Path) -> None:
    shared = {"store": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "secret": "s" * 40,
              "cds": {"audience": "urn:example:pml-risk"}}
    first = serve_ehr(tmp_path, **shared)  # type: ignore[arg-type]
    one = next(first)
    second = serve_ehr(tmp_path, keys=(one.rsa, one.ec), **shared)  # type: ignore[arg-type]
    two = next(second)
    try:
        token = one.token(aud="urn:example:pml-risk")
        assert one.call(token).status_code == 200
        assert two.call(token, url=two.endpoint()).status_code == 401  # the other instance
        assert two.call(one.token(aud="urn:example:pml-risk"),
                        url=two.endpoint()).status_code == 200
    finally:
        for gen in (second, first):
            gen.close()


def test_wrong_audience_is_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    refused(ehr, audit_lines, ehr.token(aud="https://other.example.org/cds-services/x"), "aud")
    # The feedback URL is another endpoint: a service call's token does not open it.
    refused(ehr, audit_lines, ehr.token(aud=ehr.endpoint() + "/feedback"), "aud")


def test_audience_may_be_a_list_or_the_configured_value(tmp_path: Path) -> None:
    gen = serve_ehr(tmp_path, cds={"audience": "urn:example:pml-risk"})
    ehr = next(gen)
    try:
        assert ehr.call(ehr.token(aud=["https://x.example", ehr.endpoint()])).status_code == 200
        assert ehr.call(ehr.token(aud="urn:example:pml-risk")).status_code == 200
        assert ehr.call(ehr.token(aud="urn:example:other")).status_code == 401
    finally:
        gen.close()


def test_alg_none_and_hmac_forgeries_are_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    kid = ehr.rsa.kid
    refused(ehr, audit_lines, ehr.unsigned({"alg": "none", "typ": "JWT", "kid": kid}), "alg")
    # HS256 keyed with the published public key: the classic algorithm-confusion forgery.
    refused(ehr, audit_lines, ehr.unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}), "alg")
    plain = RSAKey.generate_key(2048, private=True, auto_kid=True)
    ehr.published.append(plain)
    refused(ehr, audit_lines, ehr.token("RS256", key=plain), "alg")  # only RS384 and ES384


def test_unknown_issuer_is_refused_without_fetching_keys(
        ehr: Ehr, audit_lines: AuditLines) -> None:
    refused(ehr, audit_lines, ehr.token(iss="https://attacker.example"), "unknown-iss")
    refused(ehr, audit_lines, ehr.token(iss=None), "no-iss")
    assert ehr.fetches == 0


def test_a_jku_other_than_the_allowlisted_url_is_refused_and_never_fetched(
        ehr: Ehr, audit_lines: AuditLines) -> None:
    refused(ehr, audit_lines, ehr.token(header={"jku": "https://attacker.example/jwks.json"}),
            "jku")
    refused(ehr, audit_lines, ehr.token(header={"jku": ehr.jwks_url + "?x=1"}), "jku")
    assert ehr.fetches == 0
    assert ehr.call(ehr.token(header={"jku": ehr.jwks_url})).status_code == 200


def test_expired_and_not_yet_valid_tokens_are_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    now = int(time.time())
    refused(ehr, audit_lines, ehr.token(iat=now - 400, exp=now - 61), "expired")
    refused(ehr, audit_lines, ehr.token(iat=now + 120, exp=now + 300), "not-yet-valid")
    refused(ehr, audit_lines, ehr.token(nbf=now + 120), "not-yet-valid")
    refused(ehr, audit_lines, ehr.token(exp=None), "no-exp")
    refused(ehr, audit_lines, ehr.token(iat=None), "no-iat")
    # Longer than 15 minutes: its jti could outlive the replay store.
    refused(ehr, audit_lines, ehr.token(iat=now, exp=now + 901), "lifetime")


def test_sixty_seconds_of_clock_skew_are_tolerated(ehr: Ehr) -> None:
    now = int(time.time())
    assert ehr.call(ehr.token(iat=now - 300, exp=now - 45)).status_code == 200
    assert ehr.call(ehr.token(iat=now + 45, exp=now + 345)).status_code == 200
    # Epic: nbf five minutes before iat, 15-minute lifetime.
    assert ehr.call(ehr.token(nbf=now - 300, iat=now, exp=now + 900)).status_code == 200


def test_a_missing_kid_is_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    refused(ehr, audit_lines, ehr.token(header={"kid": None}), "no-kid")
    assert ehr.fetches == 0


def test_missing_or_malformed_authorization_is_refused(ehr: Ehr, audit_lines: AuditLines) -> None:
    refused(ehr, audit_lines, None, "no-bearer")
    refused(ehr, audit_lines, "not-a-jwt", "malformed")
    refused(ehr, audit_lines, ehr.token(jti=None), "no-jti")


def test_a_signature_by_another_key_with_a_known_kid_is_refused(
        ehr: Ehr, audit_lines: AuditLines) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"alg": "RS384", "kid": ehr.rsa.kid},
                                   private=True)
    refused(ehr, audit_lines, ehr.token(key=impostor), "signature")
    # A key of the wrong type for the header's alg is not tried either.
    refused(ehr, audit_lines, ehr.token("RS384", header={"kid": ehr.ec.kid}), "key-mismatch")


def test_an_unknown_kid_triggers_one_rate_limited_refetch(
        ehr: Ehr, audit_lines: AuditLines) -> None:
    assert ehr.app is not None
    jwks = ehr.app.extensions["pml_risk_cds"].jwks
    now = [time.monotonic()]
    jwks.clock = lambda: now[0]
    assert ehr.call(ehr.token()).status_code == 200
    assert ehr.fetches == 1  # cached from now on
    stranger = ECKey.generate_key("P-384", parameters={"alg": "ES384"}, private=True,
                                  auto_kid=True)
    refused(ehr, audit_lines, ehr.token("ES384", key=stranger), "unknown-kid")
    assert ehr.fetches == 1  # the set was fetched moments ago: no refetch yet
    now[0] += REFETCH_INTERVAL + 1
    refused(ehr, audit_lines, ehr.token("ES384", key=stranger), "unknown-kid")
    assert ehr.fetches == 2  # one refetch
    for _ in range(5):
        refused(ehr, audit_lines, ehr.token("ES384", key=stranger), "unknown-kid")
    assert ehr.fetches == 2  # made-up kids cannot hammer the EHR's key server
    # The EHR rotates to a new key: it is picked up at the next allowed refetch.
    rotated = ECKey.generate_key("P-384", parameters={"alg": "ES384", "use": "sig"},
                                 private=True, auto_kid=True)
    ehr.published.append(rotated)
    now[0] += REFETCH_INTERVAL + 1
    assert ehr.call(ehr.token("ES384", key=rotated)).status_code == 200
    assert ehr.fetches == 3
    assert ehr.call(ehr.token("RS384")).status_code == 200  # the old key still works
    assert ehr.fetches == 3


def test_cache_control_max_age_decides_when_keys_are_fetched_again(tmp_path: Path) -> None:
    gen = serve_ehr(tmp_path, jwks_headers={"Cache-Control": "max-age=120"})
    ehr = next(gen)
    try:
        assert ehr.app is not None
        jwks = ehr.app.extensions["pml_risk_cds"].jwks
        now = [time.monotonic()]
        jwks.clock = lambda: now[0]
        assert ehr.call(ehr.token()).status_code == 200
        now[0] += 100
        assert ehr.call(ehr.token()).status_code == 200
        assert ehr.fetches == 1
        now[0] += 30  # past max-age
        assert ehr.call(ehr.token()).status_code == 200
        assert ehr.fetches == 2
    finally:
        gen.close()


def test_tenant_urls_accept_only_that_tenants_issuer(ehr: Ehr, audit_lines: AuditLines) -> None:
    url = ehr.endpoint(tenant="example")
    resp = ehr.call(ehr.token(aud=url), url=url)
    assert resp.status_code == 200
    assert ehr.call(ehr.token(aud=url), url=ehr.endpoint(tenant="nobody")).status_code == 404


def test_the_fhir_authorization_token_is_never_audited(ehr: Ehr, audit_lines: AuditLines) -> None:
    body = hook_body(fhirServer="https://fhir.example.org/r4",
                     fhirAuthorization={"access_token": "secret-access-token-123",
                                        "token_type": "Bearer", "expires_in": 300,
                                        "scope": "patient/*.read", "subject": "x"})
    assert ehr.call(ehr.token(), body).status_code == 200
    assert "secret-access-token-123" not in "\n".join(audit_lines.raw)
    call = audit_lines.events("cds.call")[-1]
    assert call["iss"] == ISSUER and call["patient"] and call["hook"] == "patient-view"
    assert call["card"] and call["cards"] == 1


REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(REDIS).exists():
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [REDIS, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_replays_are_refused_with_every_session_store(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    store = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    gen = serve_ehr(tmp_path, store=store)
    ehr = next(gen)
    try:
        token = ehr.token()
        assert ehr.call(token).status_code == 200
        assert ehr.call(token).status_code == 401
        assert ehr.call(ehr.token()).status_code == 200
    finally:
        gen.close()
