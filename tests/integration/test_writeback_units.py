"""The write-back pieces without a server: what the EHR may answer, and what the app makes of it.

Cases the sandbox cannot produce: a 201 with an empty body (Cerner does this), timeouts, a
CapabilityStatement without conditional create, hostile history entries.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from smart_app.fhir.client import FhirClient, WriteResult
from smart_app.risk.records import Antibody
from smart_app.smart.scopes import GrantedScopes
from smart_app.web import csrf
from smart_app.web.errors import AppError
from smart_app.web.page import capability, history, overrides

BASE = "https://ehr.example.org/fhir"
RA = {"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p"}}


def response(status: int, body: Any = None, headers: dict[str, str] | None = None
             ) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = b"" if body is None else json.dumps(body).encode()
    resp.headers.update(headers or {})
    return resp


class FakeHttp(requests.Session):
    """Answers POSTs from a script: a response, or an exception to raise."""

    def __init__(self, script: list[requests.Response | Exception]) -> None:
        super().__init__()
        self.script = script
        self.sent: list[dict[str, Any]] = []

    def post(self, url: Any, data: Any = None, json: Any = None, **kw: Any) -> Any:
        self.sent.append({"url": url, "json": json, "headers": kw.get("headers", {})})
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def client(http: FakeHttp, tokens: list[str | None] | None = None) -> FhirClient:
    seen = tokens if tokens is not None else []

    def token(rejected: str | None) -> str:
        seen.append(rejected)
        return "t2" if rejected else "t1"

    return FhirClient(http, BASE, token, timeout=1, max_pages=2, sleep=lambda _: None)


def test_201_with_empty_body_takes_the_id_from_location() -> None:
    http = FakeHttp([response(201, None, {"Location": f"{BASE}/RiskAssessment/77/_history/1"})])
    result = client(http).create(RA, if_none_exist="identifier=s|v")
    assert result.ok and result.created and result.resource_id == "77"
    sent = http.sent[0]
    assert sent["url"] == f"{BASE}/RiskAssessment"
    assert sent["headers"]["If-None-Exist"] == "identifier=s|v"
    assert sent["headers"]["Content-Type"] == "application/fhir+json"


def test_200_means_found_not_created() -> None:
    http = FakeHttp([response(200, {**RA, "id": "5"})])
    result = client(http).create(RA, if_none_exist="identifier=s|v")
    assert result.ok and not result.created and result.resource_id == "5"


def test_5xx_and_timeouts_are_retried_with_the_same_body() -> None:
    http = FakeHttp([response(500), requests.Timeout(), response(201, {**RA, "id": "9"})])
    result = client(http).create(RA, if_none_exist="identifier=s|v")
    assert result.resource_id == "9" and result.attempts == 3
    assert len({json.dumps(s["json"], sort_keys=True) for s in http.sent}) == 1
    assert {s["headers"]["If-None-Exist"] for s in http.sent} == {"identifier=s|v"}


def test_retries_are_bounded() -> None:
    http = FakeHttp([response(502), response(503), response(500), response(201)])
    result = client(http).create(RA, if_none_exist="identifier=s|v")
    assert result.status == 500 and result.attempts == 3 and not result.ok
    assert len(http.script) == 1  # the fourth answer was never asked for


def test_4xx_is_not_retried_and_keeps_the_diagnostics() -> None:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad basis"}]}
    http = FakeHttp([response(422, outcome)])
    result = client(http).create(RA, if_none_exist=None)
    assert result.status == 422 and result.attempts == 1 and result.diagnostics == "bad basis"
    assert "If-None-Exist" not in http.sent[0]["headers"]


def test_401_refreshes_the_token_once() -> None:
    seen: list[str | None] = []
    http = FakeHttp([response(401), response(201, {**RA, "id": "1"})])
    result = client(http, seen).create(RA, if_none_exist="identifier=s|v")
    assert result.created and seen == [None, "t1"]
    assert http.sent[1]["headers"]["Authorization"] == "Bearer t2"


def test_network_failure_everywhere_is_status_0() -> None:
    http = FakeHttp([requests.ConnectionError()] * 3)
    result = client(http).create(RA, if_none_exist="identifier=s|v")
    assert result.status == 0 and not result.ok and result.attempts == 3


@pytest.mark.parametrize(
    ("location", "expected"),
    [(f"{BASE}/RiskAssessment/42", "42"), ("RiskAssessment/42/_history/3", "42"), (None, None)],
)
def test_resource_id_from_location(location: str | None, expected: str | None) -> None:
    assert WriteResult(201, None, location, 1).resource_id == expected


def _statement(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "CapabilityStatement",
            "rest": [{"mode": "server", "resource": [resource]}]}


def test_capability_statement_parsing() -> None:
    full = capability.parse_capability(_statement({
        "type": "RiskAssessment", "interaction": [{"code": "create"}, {"code": "search-type"}],
        "conditionalCreate": True, "searchParam": [{"name": "identifier", "type": "token"}]}))
    assert full == capability.WriteSupport(True, True, True, True)
    plain = capability.parse_capability(_statement({
        "type": "RiskAssessment", "interaction": [{"code": "create"}],
        "searchParam": [{"name": "identifier"}]}))
    assert plain.create and not plain.conditional_create
    none = capability.parse_capability(_statement({"type": "Observation"}))
    assert not none.create


def test_save_state_choices() -> None:
    v2 = GrantedScopes.parse("patient/RiskAssessment.cs")
    read = GrantedScopes.parse("patient/RiskAssessment.rs")
    full = capability.WriteSupport(True, True, True, True)
    plain = capability.WriteSupport(True, True, False, True)
    assert capability.save_state(v2, full, True).conditional is True
    assert capability.save_state(v2, plain, True).conditional is False  # search, then create
    assert capability.save_state(read, full, True).code == "scope"
    assert capability.save_state(v2, capability.WriteSupport(True, False, False, False),
                                 True).code == "unsupported"
    assert capability.save_state(v2, full, False).code == "no-estimate"
    v1 = GrantedScopes.parse("patient/RiskAssessment.write patient/RiskAssessment.read")
    assert capability.save_state(v1, full, True).enabled


def test_history_items_survive_hostile_resources() -> None:
    mine = {"system": "https://pml-risk.app/fhir/sid/risk-assessment", "value": "abc"}
    resources = [
        {"resourceType": "RiskAssessment", "id": "1", "identifier": [mine],
         "occurrenceDateTime": "2026-01-01", "prediction": [{"probabilityDecimal": 0.88}]},
        {"resourceType": "RiskAssessment", "id": "2", "identifier": [{**mine, "value": "x"}],
         "occurrenceDateTime": "2026-06-01", "prediction": "nonsense", "note": [
             {"text": "Clinician override: index set to 2."}], "meta": 5},
        {"resourceType": "RiskAssessment", "id": "3", "identifier": [{"system": "other"}]},
        {"resourceType": "RiskAssessment", "id": "4", "identifier": [mine],
         "prediction": [{"probabilityDecimal": "NaN"}]},
    ]
    rows = history.items(resources, current="abc")
    assert [r["id"] for r in rows] == ["2", "1", "4"]  # newest first; foreign system dropped
    assert rows[0]["overridden"] is True and rows[0]["per1000"] is None
    assert rows[1]["per1000"] == "8.8" and rows[1]["current"] is True
    assert rows[2]["per1000"] is None


def test_override_parsing() -> None:
    parsed = overrides.parse({"prior_is": "yes", "antibody": "positive", "index": "1.20",
                              "infusions": "30", "reason": " given\x00 elsewhere "})
    assert parsed.prior_immunosuppressant is True and parsed.antibody is Antibody.POSITIVE
    assert parsed.index == Decimal("1.20") and parsed.infusion_count == 30
    assert parsed.reason == "given elsewhere"
    assert overrides.to_params(parsed) == {"prior_is": "yes", "antibody": "positive",
                                           "index": "1.2", "infusions": "30",
                                           "reason": "given elsewhere"}
    assert overrides.parse({"index": "none"}).clear_index is True
    assert not overrides.parse({"reason": "only a reason"}).any()
    assert not overrides.parse({}).any()
    with pytest.raises(AppError):
        overrides.parse({"infusions": True})


def test_csrf_token_is_per_launch_and_constant_time_checked() -> None:
    token = csrf.token("k" * 40, "launch-1")
    assert csrf.valid("k" * 40, "launch-1", token)
    assert not csrf.valid("k" * 40, "launch-2", token)
    assert not csrf.valid("j" * 40, "launch-1", token)
    assert not csrf.valid("k" * 40, "launch-1", None)


class FakeChart(requests.Session):
    """Answers the chart reads by resource type; the history search by a given response."""

    def __init__(self, history_response: requests.Response) -> None:
        super().__init__()
        self.history_response = history_response

    def get(self, url: Any, **kw: Any) -> Any:
        path = str(url).removeprefix(BASE + "/").split("?")[0]
        if path == "Patient/p":
            return response(200, {"resourceType": "Patient", "id": "p"})
        if path == "RiskAssessment":
            return self.history_response
        return response(200, {"resourceType": "Bundle", "type": "searchset", "entry": []})


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


GRANTED = GrantedScopes.parse(
    "patient/Patient.r patient/Observation.rs patient/MedicationAdministration.rs "
    "patient/MedicationStatement.rs patient/MedicationRequest.rs patient/Medication.rs "
    "patient/RiskAssessment.cs")


def _read(history_response: requests.Response) -> Any:
    http = FakeChart(history_response)
    fhir = FhirClient(http, BASE, lambda _: "t", timeout=1, max_pages=2, sleep=lambda _: None)
    return fhir.read_chart("p", GRANTED, history_system="https://pml-risk.app/fhir/sid/risk-assessment")


def test_history_is_read_in_the_same_wave() -> None:
    data = _read(response(200, _bundle({**RA, "id": "1"})))
    assert data.round_trips == 1 and data.history_status == "ok"
    assert [r["id"] for r in data.history] == ["1"]
    assert all(r["resourceType"] != "RiskAssessment" for r in data.resources)  # not an input


def test_history_errors_never_block_the_estimate() -> None:
    assert _read(response(404)).history_status == "unsupported"
    assert _read(response(500)).history_status == "failed"


def test_a_history_entry_of_another_patient_fails_the_read() -> None:
    from smart_app.fhir.client import ForeignResource

    other = {**RA, "id": "2", "subject": {"reference": "Patient/someone-else"}}
    with pytest.raises(ForeignResource):
        _read(response(200, _bundle(other)))
