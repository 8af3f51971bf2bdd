"""Reading a chart from an EHR that offers less than the sandbox's ``full`` profile.

A scripted server over loopback: types the CapabilityStatement does not list are not searched
and come back as *not offered* (never as withheld); ``_include`` goes only where listed; a 400
is retried once with the search's required parameters; anti-JCV results are searched by code,
plus one date-bounded category search; scopes are asked only for types the EHR offers.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app.config import from_mapping
from smart_app.fhir import capability
from smart_app.fhir.client import FhirClient, FhirError, ReadPlan
from smart_app.fhir.client.plan import observation_searches, plan_for
from smart_app.smart.scopes import GrantedScopes, requested_scopes

from .scripted_ehr import Script

pytestmark = pytest.mark.integration

ALL = GrantedScopes.parse("patient/*.rs")


def fhir(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/fhir+json")


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


def statement(*entries: dict[str, Any]) -> capability.ServerCapabilities:
    return capability.parse({"resourceType": "CapabilityStatement",
                             "rest": [{"mode": "server", "resource": list(entries)}]})


#: Oracle Health's R4 shape (fhir.cerner.com): no MedicationStatement, no standalone Medication.
ORACLE_LIKE = statement(
    {"type": "Patient", "interaction": [{"code": "read"}]},
    {"type": "Observation", "interaction": [{"code": "read"}, {"code": "search-type"}]},
    {"type": "MedicationAdministration", "interaction": [{"code": "search-type"}]},
    {"type": "MedicationRequest", "interaction": [{"code": "search-type"}]},
)


def routes(script: Script) -> None:
    empty = bundle()
    script.routes.update({
        "/fhir/Patient/p1": lambda _r: fhir({"resourceType": "Patient", "id": "p1"}),
        "/fhir/Observation": lambda _r: fhir(empty),
        "/fhir/MedicationAdministration": lambda _r: fhir(bundle({
            "resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/m1"}})),
        "/fhir/MedicationStatement": lambda _r: fhir(empty),
        "/fhir/MedicationRequest": lambda _r: fhir(empty),
        "/fhir/Medication": lambda _r: fhir(empty),
    })


def client(base: str) -> FhirClient:
    http = requests.Session()
    http.trust_env = False
    return FhirClient(http, f"{base}/fhir", lambda _rejected: "t0ken", timeout=5, max_pages=3,
                      page_size=200)


def test_types_the_ehr_does_not_offer_are_not_searched_and_not_withheld(
    ehr: tuple[str, Script],
) -> None:
    base, script = ehr
    routes(script)
    data = client(base).read_chart("p1", ALL, ReadPlan(capabilities=ORACLE_LIKE))
    assert data.not_offered == ("MedicationStatement", "DiagnosticReport", "ImagingStudy",
                                "Procedure", "Medication")
    assert data.withheld == ()
    assert "/fhir/MedicationStatement" not in script.hits
    assert "/fhir/Medication" not in script.hits  # the reference stays unresolved
    assert "_include" not in script.queries["/fhir/MedicationAdministration"]
    assert "_count=200" in script.queries["/fhir/MedicationAdministration"]


def test_the_tenant_can_narrow_the_read_set(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    routes(script)
    plan = ReadPlan(read_types=("Patient", "Observation", "MedicationAdministration",
                                "MedicationRequest", "Medication"))
    data = client(base).read_chart("p1", ALL, plan)
    assert data.not_offered == ("MedicationStatement", "DiagnosticReport", "ImagingStudy",
                                "Procedure")
    assert "/fhir/MedicationStatement" not in script.hits
    assert "/fhir/Medication" in script.hits  # unknown statement: Medication is tried


def test_a_400_is_retried_once_with_the_required_parameters(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    routes(script)
    seen: list[str] = []

    def picky(req: Request) -> Response:
        seen.append(req.query_string.decode())
        if "date" in req.args or "_count" in req.args:
            return fhir({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-supported", "diagnostics": "bad param"}]},
                400)
        return fhir(bundle())

    script.routes["/fhir/Observation"] = picky
    searches = (((("category", "laboratory"), ("date", "ge2023-11-26"))),)
    data = client(base).read_chart("p1", ALL, ReadPlan(observation_searches=searches))
    assert data.round_trips == 2
    assert seen == ["patient=p1&category=laboratory&date=ge2023-11-26&_count=200",
                    "patient=p1&category=laboratory"]
    # Refused again: the chart is unreadable, after exactly one retry.
    script.hits.clear()
    script.routes["/fhir/Observation"] = lambda _r: fhir({"resourceType": "OperationOutcome"},
                                                          400)
    with pytest.raises(FhirError, match=r"answered 400 \(Observation\)"):
        client(base).read_chart("p1", ALL, ReadPlan(observation_searches=searches))
    assert script.hits.count("/fhir/Observation") == 2


def test_jcv_results_by_code_and_a_dated_text_search() -> None:
    settings = from_mapping({"codes": {"jcv_index": ["urn:oid:1.2.3|JCVIDX"]},
                             "text_search_years": 2})
    by_code, by_text = observation_searches(settings, date(2026, 11, 26))
    assert by_code == (("code", "http://loinc.org|100977-8,http://loinc.org|70173-0,"
                                "urn:oid:1.2.3|JCVIDX"),)
    assert by_text == (("category", "laboratory"), ("date", "ge2024-11-26"))
    everything = from_mapping({"observation_category": ""})
    assert observation_searches(everything, date(2024, 2, 29))[1] == (("date", "ge2021-02-28"),)


def test_scopes_are_asked_only_for_what_the_ehr_offers() -> None:
    tenant = from_mapping({"tenants": [{"iss": "https://ehr/fhir", "client_id": "c"}]}
                          ).tenants[0]
    offered = capability.offered_types(tenant, ORACLE_LIKE)
    scope = requested_scopes(tenant, ehr_launch=True, offered=offered).split()
    assert "patient/MedicationStatement.rs" not in scope
    assert "patient/Medication.rs" not in scope
    assert not any(s.startswith("patient/RiskAssessment") for s in scope)
    assert "patient/MedicationAdministration.rs" in scope and "patient/Patient.r" in scope
    v1 = requested_scopes(tenant, ehr_launch=True, profile="v1", offered=offered).split()
    assert "patient/Observation.read" in v1 and "patient/MedicationStatement.read" not in v1
    # An unreadable statement and no read_types: everything the engine reads is asked for.
    assert capability.offered_types(tenant, capability.UNKNOWN) is None
    plan = plan_for(from_mapping({}), tenant, ORACLE_LIKE, date(2026, 1, 1))
    assert plan.offered("Observation") and not plan.offered("MedicationStatement")
