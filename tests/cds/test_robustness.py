"""Hostile and broken CDS calls get a designed JSON answer, never a 500: deep nesting before
and after authentication, type-confused prefetch, wrong paths, methods and media types, a hung
session store; and the vendors' own ways of signing and scoping calls."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from smart_app.http import jsondepth

from .ehr import Ehr, b64, hook_body, serve_ehr

pytestmark = pytest.mark.integration

DEEP = "[" * 3000 + "]" * 3000


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[Ehr]:
    yield from serve_ehr(tmp_path)


def test_bounded_depth_json_reader() -> None:
    assert jsondepth.loads('{"a": [1, {"b": "[[[[\\"[[["}]}') == {"a": [1, {"b": '[[[["[[['}]}
    assert jsondepth.depth_of('["\\\\", [[1]]]') == 3
    for bad, words in ((DEEP, "nests more than 64 levels"), ("{not json", "not valid JSON"),
                       (b"\xff\xfe", "not UTF-8")):
        with pytest.raises(ValueError, match=words):
            jsondepth.loads(bad)
    assert jsondepth.loads("[" * 64 + "]" * 64, max_depth=64)


def _post(ehr: Ehr, data: bytes | str, *, token: str | None = None, url: str | None = None,
          content_type: str = "application/json") -> requests.Response:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url or ehr.endpoint(), data=data, headers=headers, timeout=30)


def test_deep_nesting_is_refused_before_and_after_authentication(ehr: Ehr) -> None:
    # An unauthenticated JWT whose payload nests 3,000 deep: refused as malformed (a bare 401,
    # like every token that cannot be read), never a RecursionError.
    forged = b64(b'{"alg":"RS384","kid":"k"}') + "." + b64(DEEP.encode()) + "." + b64(b"x")
    resp = _post(ehr, "{}", token=forged)
    assert resp.status_code == 401 and resp.content == b""
    # Signed calls whose bodies nest 3,000 deep: 400 with an OperationOutcome.
    for url in (ehr.endpoint(), ehr.endpoint() + "/feedback"):
        resp = _post(ehr, DEEP, token=ehr.token(aud=url), url=url)
        assert resp.status_code == 400, resp.text
        issue = resp.json()["issue"][0]
        assert issue["code"] == "structure" and "nests more than" in issue["diagnostics"]


def test_a_type_confused_prefetch_is_a_clear_400(ehr: Ehr) -> None:
    body = hook_body()
    obs = body["prefetch"]["observations"]["entry"][0]["resource"]
    obs["code"] = True
    resp = ehr.call(ehr.token(), body)
    assert resp.status_code == 400, resp.text
    issue = resp.json()["issue"][0]
    assert issue["code"] == "structure"
    assert "cannot be read as FHIR" in issue["diagnostics"] and obs["id"] in issue["diagnostics"]


def test_errors_on_cds_paths_are_operation_outcomes(ehr: Ehr) -> None:
    cases = (
        (requests.get(ehr.endpoint(), timeout=10), 405),  # a service is POSTed to
        (requests.delete(f"{ehr.base}/cds-services", timeout=10), 405),
        (requests.get(f"{ehr.base}/cds-services/nope/feedback/x", timeout=10), 404),
        (requests.post(f"{ehr.base}/t/nobody/cds-services/x", timeout=10), 404),
        (_post(ehr, "<xml/>", token=ehr.token(), content_type="text/xml"), 415),
    )
    for resp, status in cases:
        assert resp.status_code == status, (resp.request.method, resp.url, resp.text[:200])
        assert resp.headers["Content-Type"].startswith("application/json")
        body = resp.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    assert "POST" in cases[0][0].headers["Allow"]
    # Pages outside the CDS paths keep the app's own error pages.
    page = requests.get(f"{ehr.base}/no-such-page", timeout=10)
    assert page.status_code == 404 and "OperationOutcome" not in page.text


class _HungRedis:
    """A Redis that accepts connections and never answers (a SIGSTOPped server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_hung_session_store_is_a_503(tmp_path: Path) -> None:
    hung = _HungRedis()
    try:
        for ehr in serve_ehr(tmp_path, store=f"redis://127.0.0.1:{hung.port}/0"):
            resp = ehr.call(ehr.token())
            assert resp.status_code == 503, resp.text
            assert resp.json()["issue"][0]["code"] == "transient"
            assert resp.headers["Retry-After"]
            assert resp.elapsed.total_seconds() < 5
    finally:
        hung.close()


def test_a_tenant_may_allow_es256_and_rs256_but_never_hmac(tmp_path: Path) -> None:
    from joserfc.jwk import ECKey, RSAKey

    rsa = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, private=True,
                              auto_kid=True)
    ec = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True,
                            auto_kid=True)
    for ehr in serve_ehr(tmp_path, keys=(rsa, ec),
                         cds={"algorithms": ["ES256", "RS256", "RS384"]}):
        for alg in ("ES256", "RS256"):
            resp = ehr.call(ehr.token(alg))
            assert resp.status_code == 200, (alg, resp.text)
        hmac = ehr.unsigned({"alg": "HS256", "typ": "JWT", "kid": rsa.kid})
        assert ehr.call(hmac).status_code == 401


def test_es256_is_refused_by_default(tmp_path: Path) -> None:
    from joserfc.jwk import ECKey, RSAKey

    rsa = RSAKey.generate_key(2048, parameters={"use": "sig"}, private=True, auto_kid=True)
    ec = ECKey.generate_key("P-256", parameters={"use": "sig"}, private=True, auto_kid=True)
    for ehr in serve_ehr(tmp_path, keys=(rsa, ec)):
        assert ehr.call(ehr.token("ES256")).status_code == 401


WEIRD: tuple[object, ...] = (True, 5, "x", [], {}, [1, "a"], {"a": [True]}, None)


def test_type_confused_medication_records_never_give_a_500(ehr: Ehr) -> None:
    """Relevance is decided before the shape checks: it must read any JSON without failing,
    and a chart it passes on is then refused by the shape checks, never assessed."""
    fields = ("status", "medicationCodeableConcept", "medicationReference", "contained",
              "effectivePeriod", "effectiveDateTime", "authoredOn", "intent")
    for n, weird in enumerate(WEIRD):
        for field in fields:
            body = hook_body()
            entries = body["prefetch"]["administrations"]["entry"]
            entries[n % len(entries)]["resource"][field] = weird
            body["prefetch"]["requests"] = {"resourceType": "Bundle", "type": "searchset",
                                            "entry": [{"resource": {
                                                "resourceType": "MedicationRequest",
                                                "id": "odd", "subject": {"reference":
                                                    "Patient/ex05-index-1-51-25-infusions"},
                                                field: weird}}]}
            resp = ehr.call(ehr.token(), body)
            assert resp.status_code in (200, 400, 412), (field, weird, resp.text[:300])
            if resp.status_code != 200:
                assert resp.json()["resourceType"] == "OperationOutcome"
