"""The CDS services against the sandbox EHR as CDS client, over loopback HTTP: discovery,
every prefetch case, the FHIR fallback and its 412s, the order filter, cards and feedback."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from .conftest import SLUG, Stack, StackFactory
from .ehr import AuditLines

pytestmark = pytest.mark.integration

EX05 = "ex05-index-1-51-25-infusions"
STALE = "stale-result"
HEAVY = "heavy"


def fhir_paths(stack: Stack, since: int) -> list[str]:
    log = requests.get(f"{stack.base}/sandbox/_control", timeout=10).json()["requests"]
    return [r["path"].removeprefix("/sandbox/fhir/") for r in log[since:]
            if r["path"].startswith("/sandbox/fhir/") and r["path"] != "/sandbox/fhir/metadata"]


def log_size(stack: Stack) -> int:
    return len(requests.get(f"{stack.base}/sandbox/_control", timeout=10).json()["requests"])


# -- discovery -------------------------------------------------------------------------------


def test_discovery_lists_both_services_with_the_apps_prefetch(stack: Stack) -> None:
    resp = requests.get(f"{stack.base}/cds-services", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    services = resp.json()["services"]
    assert [(s["hook"], s["id"]) for s in services] == [
        ("patient-view", "pml-risk-patient-view"),
        ("order-select", "pml-risk-order"),
        ("order-sign", "pml-risk-order"),  # one id: the sign card replaces the select card
    ]
    for service in services:
        assert service["title"] and service["description"]
        prefetch = service["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        # Within the spec's recommended subset, cheap on every chart open: anti-JCV results
        # by code (any date) and the three medication lists, no _include, no laboratory list.
        assert prefetch["observations"] == (
            "Observation?patient={{context.patientId}}"
            "&code=http://loinc.org|100977-8,http://loinc.org|70173-0&_count=1000")
        assert prefetch["administrations"] == (
            "MedicationAdministration?patient={{context.patientId}}&_count=1000")
        assert set(prefetch) == {"patient", "observations", "administrations",
                                 "statements", "requests"}
        assert not any("_include" in t or "category" in t for t in prefetch.values())


def test_tenant_discovery_uses_the_tenants_codes_types_and_page_size(
        make_stack: StackFactory) -> None:
    stack = make_stack(cds={"observation_codes": ["urn:oid:1.2.3|JCV AB"],
                            "lab_category": True, "medication_code_search": True},
                       tenant={"page_size": 200, "read_types": [
                           "Patient", "Observation", "MedicationAdministration",
                           "MedicationRequest"]},
                       services=f"/t/{SLUG}/cds-services")
    services = requests.get(f"{stack.base}/t/{SLUG}/cds-services", timeout=10).json()["services"]
    prefetch = services[0]["prefetch"]
    # The site's code next to every anti-JCV code the app knows; its page cap; no type the
    # tenant's EHR does not offer (here MedicationStatement).
    assert prefetch["observations"] == (
        "Observation?patient={{context.patientId}}"
        "&code=urn:oid:1.2.3|JCV%20AB,http://loinc.org|100977-8,http://loinc.org|70173-0"
        "&_count=200")
    assert set(prefetch) == {"patient", "observations", "labs", "administrations", "requests"}
    # Opted in: laboratory results by category, bounded by date (text_search_years back).
    labs = prefetch["labs"]
    assert labs.startswith("Observation?patient={{context.patientId}}&category=laboratory"
                           "&date=ge20") and labs.endswith("&_count=200")
    # Medications by code: natalizumab and the immunosuppressants, not the whole lists.
    administrations = prefetch["administrations"]
    assert "&code=" in administrations and "354770" in administrations
    assert "labs" not in requests.get(f"{stack.base}/cds-services", timeout=10).json()[
        "services"][0]["prefetch"]
    # The sandbox runs those templates as they are: a card comes back through the tenant URL.
    data = stack.fire("patient-view", EX05)
    assert data["endpoint"] == f"{stack.base}/t/{SLUG}/cds-services/pml-risk-patient-view"
    assert data["status"] == 200 and data["serviceFhirRequests"] == 0
    assert data["body"]["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")
    missing = requests.get(f"{stack.base}/t/nobody/cds-services", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


# -- prefetch ------------------------------------------------------------------------------


def test_full_prefetch_needs_no_fhir_request(stack: Stack) -> None:
    data = stack.fire("patient-view", EX05)
    assert data["status"] == 200
    assert data["serviceFhirRequests"] == 0
    card = data["body"]["cards"][0]
    assert card["summary"] == "PML risk 8.8 per 1,000 (anti-JCV index 1.51, 25 infusions)"


def test_partial_prefetch_fetches_only_what_is_missing(stack: Stack) -> None:
    mark = log_size(stack)
    data = stack.fire("patient-view", EX05, prefetch="partial")
    assert data["status"] == 200, data
    assert data["body"]["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")
    # The sandbox's own prefetch ran Patient and Observation; the service read the other three.
    paths = fhir_paths(stack, mark)
    assert paths[:2] == [f"Patient/{EX05}", "Observation"]
    assert sorted(paths[2:]) == ["MedicationAdministration", "MedicationRequest",
                                 "MedicationStatement"]
    assert data["serviceFhirRequests"] == 3


def test_absent_prefetch_is_read_with_fhir_authorization(stack: Stack) -> None:
    data = stack.fire("patient-view", EX05, prefetch="absent")
    assert data["status"] == 200
    assert data["serviceFhirRequests"] == 6  # one wave: Patient + five searches
    assert data["body"]["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")


def test_an_operation_outcome_in_prefetch_means_fetch_it(stack: Stack) -> None:
    data = stack.fire("patient-view", EX05, prefetch="failed")
    assert data["status"] == 200
    assert data["serviceFhirRequests"] == 6
    assert data["body"]["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")


def test_null_prefetch_means_no_data_and_nothing_is_fetched(stack: Stack) -> None:
    # "No data" in every search: no natalizumab in this patient's care, so no card at all.
    data = stack.fire("patient-view", EX05, prefetch="null")
    assert data["status"] == 200
    assert data["serviceFhirRequests"] == 0
    assert data["body"] == {"cards": []}


def test_missing_prefetch_without_fhir_authorization_is_412(stack: Stack) -> None:
    data = stack.fire("patient-view", EX05, prefetch="partial", fhir="none")
    assert data["status"] == 412
    outcome = data["body"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "incomplete"
    assert "administrations" in outcome["issue"][0]["diagnostics"]


def test_fhir_authorization_is_used_only_with_the_tenants_fhir_server(stack: Stack) -> None:
    data = stack.fire("patient-view", EX05, prefetch="absent", fhir="other")
    assert data["status"] == 412
    assert "registered FHIR server" in data["body"]["issue"][0]["diagnostics"]
    assert data["serviceFhirRequests"] == 0  # and the token went nowhere


def test_a_slow_fhir_server_ends_in_412_within_the_deadline(stack: Stack) -> None:
    stack.control(latency_ms=2500)
    data = stack.fire("patient-view", EX05, prefetch="absent")
    assert data["status"] == 412
    assert "did not answer in time" in data["body"]["issue"][0]["diagnostics"] or (
        "could not be read" in data["body"]["issue"][0]["diagnostics"])
    assert data["elapsedMs"] < 4000  # the 2 s budget, not the FHIR timeout of 10 s


def test_a_paged_prefetch_bundle_is_read_whole(make_stack: StackFactory) -> None:
    # Pages of 50: the EHR's prefetch holds only the first 50 of heavy's 130 infusions, which
    # would under-count the exposure; the service reads the whole type instead.
    stack = make_stack(settings={"fhir_page_size": 50})
    data = stack.fire("patient-view", HEAVY)
    assert data["status"] == 200
    assert data["body"]["cards"][0]["summary"] == (
        "PML risk 10.1 per 1,000 (anti-JCV index 2.35, 130 infusions)")
    assert data["serviceFhirRequests"] >= 3  # the paged type, page by page
    without = stack.fire("patient-view", HEAVY, fhir="none")
    assert without["status"] == 412


# -- the order service -----------------------------------------------------------------------


def test_order_hooks_answer_only_for_natalizumab(stack: Stack) -> None:
    for hook in ("order-select", "order-sign"):
        quiet = stack.fire(hook, EX05, drug="other", prefetch="absent")
        assert quiet["status"] == 200
        assert quiet["body"] == {"cards": []}
        assert quiet["serviceFhirRequests"] == 0  # no data is read for an unrelated order
        card = stack.card(hook, EX05)
        assert card["summary"].startswith("PML risk 8.8 per 1,000")
        reasons = card["overrideReasons"]
        assert {r["code"] for r in reasons} >= {"cds-not-applicable",
                                                "recipient-disagrees-evidence"}
        assert all(r["system"] == (
            "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes")
            and r["display"] for r in reasons)


def test_the_order_card_suggests_the_anti_jcv_test_that_is_due(stack: Stack) -> None:
    card = stack.card("order-sign", STALE)
    assert card["selectionBehavior"] == "at-most-one"
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Order anti-JCV antibody test with index"
    (action,) = suggestion["actions"]
    assert action["type"] == "create"
    order = action["resource"]
    assert order["resourceType"] == "ServiceRequest" and order["status"] == "draft"
    assert order["code"]["coding"] == [{"system": "http://loinc.org", "code": "70173-0"}]
    assert order["subject"] == {"reference": f"Patient/{STALE}"}
    assert "systemActions" not in stack.fire("order-sign", STALE)["body"]
    # patient-view shows the chart's figure and suggests nothing; the order card counts the
    # infusion being ordered (30 on record: the 31st, in the same band here).
    view = stack.card("patient-view", STALE)
    assert "suggestions" not in view
    assert view["summary"].startswith("PML risk 1.1 per 1,000 (anti-JCV index 0.95, 30 infusions")
    assert card["summary"].startswith(
        "PML risk 1.1 per 1,000 (anti-JCV index 0.95, 31st infusion with this order")


def test_a_tenant_mri_code_adds_the_mri_for_the_higher_risk_group(
        make_stack: StackFactory) -> None:
    stack = make_stack(cds={"mri_order": "http://loinc.org|24590-2",
                            "jcv_order": "urn:oid:1.2.3|JCVX"})
    card = stack.card("order-select", EX05)
    (suggestion,) = card["suggestions"]
    assert [a["resource"]["code"]["coding"][0]["code"] for a in suggestion["actions"]] == [
        "24590-2"]  # index 1.51: no retest due, but the 3–4-monthly MRI
    stale = stack.card("order-select", STALE)
    codes = [a["resource"]["code"]["coding"][0]["code"]
             for a in stale["suggestions"][0]["actions"]]
    assert codes[0] == "JCVX"


# -- cards -----------------------------------------------------------------------------------


def test_card_shape(stack: Stack) -> None:
    card = stack.card("patient-view", EX05)
    assert len(card["summary"]) < 140
    assert card["indicator"] == "warning"  # the higher-risk group
    assert card["source"]["label"] == "pml-risk (table berger-fox-2016)"
    smart, absolute = card["links"]
    assert smart["type"] == "smart" and smart["url"] == f"{stack.base}/launch"
    assert smart["appContext"] == card["uuid"]  # an opaque id, nothing else
    assert absolute["type"] == "absolute" and absolute["url"] == f"{stack.base}/basis"
    assert "25" in card["detail"] and "2026" in card["detail"]
    assert "Observation/ex05-index-1-51-25-infusions-jcvidx-001" in card["detail"]
    basis = requests.get(absolute["url"], timeout=10)
    assert basis.status_code == 200 and "Berger" in basis.text


def test_low_risk_card_is_info_and_indeterminate_says_what_to_order(stack: Stack) -> None:
    low = stack.card("patient-view", "ex01-negative-30")
    assert low["indicator"] == "info"
    assert low["summary"] == "PML risk 0.2 per 1,000 (anti-JCV negative, 30 infusions)"
    none = stack.card("patient-view", "indeterminate")
    assert none["summary"] == ("No PML estimate: anti-JCV result indeterminate — order the "
                               "confirmatory test")
    assert none["indicator"] == "warning"


# -- malformed calls -------------------------------------------------------------------------


def test_bad_calls_get_an_operation_outcome_not_a_traceback(stack: Stack) -> None:
    from smart_app.sandbox import cds_client

    with stack.sandbox.test_request_context(base_url=f"{stack.base}/sandbox/"):
        url = f"{stack.base}/cds-services/pml-risk-patient-view"

        def post(body: Any, target: str = url) -> requests.Response:
            token = cds_client.sign(target)
            return requests.post(target, data=body if isinstance(body, str) else json.dumps(
                body), headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/json"}, timeout=10)

        for body, code in (("{not json", 400), ([], 400),
                           ({"hook": "order-sign", "context": {"patientId": EX05}}, 400),
                           ({"hook": "patient-view", "context": {}}, 400),
                           ({"hook": "patient-view", "context": {"patientId": "../x"}}, 400)):
            resp = post(body)
            assert resp.status_code == code, (body, resp.text)
            assert resp.json()["resourceType"] == "OperationOutcome"
        unknown = post({"hook": "patient-view"}, f"{stack.base}/cds-services/nope")
        assert unknown.status_code == 404
        # A prefetch holding another patient's data is refused outright.
        other = requests.get(f"{stack.base}/cds-services", timeout=10)
        assert other.status_code == 200
        foreign = post({"hook": "patient-view", "context": {"patientId": EX05},
                        "prefetch": {"patient": {"resourceType": "Patient", "id": "someone"}}})
        assert foreign.status_code == 400


# -- feedback --------------------------------------------------------------------------------


def test_feedback_is_accepted_and_audited(stack: Stack, audit_lines: AuditLines) -> None:
    card = stack.card("order-sign", STALE)
    for outcome, reason in (("accepted", None), ("overridden", "action-completed")):
        resp = requests.post(f"{stack.base}/sandbox/_cds", json={"feedback": {
            "service": "pml-risk-order", "card": card["uuid"], "outcome": outcome,
            "reason": reason}}, timeout=30)
        assert resp.json() == {"status": 200}
    accepted, overridden = audit_lines.events("cds.feedback")[-2:]
    assert accepted["card"] == card["uuid"] and accepted["outcome"] == "accepted"
    assert overridden["outcome"] == "overridden"
    assert overridden["override_reason"] == "action-completed"
    unsigned = requests.post(f"{stack.base}/cds-services/pml-risk-order/feedback",
                             json={"feedback": []}, timeout=10)
    assert unsigned.status_code == 401


def test_orders_named_by_reference_or_display_get_the_order_card(stack: Stack) -> None:
    for order_by in ("reference", "display"):
        card = stack.card("order-select", EX05, order_by=order_by)
        assert card["summary"].startswith("PML risk 8.8 per 1,000 (anti-JCV index 1.51, 26th "
                                          "infusion with this order"), order_by
        quiet = stack.fire("order-sign", EX05, drug="other", order_by=order_by)
        assert quiet["body"] == {"cards": []}, order_by


def test_epic_api_name_scopes_are_read_like_the_launch_reads_them(stack: Stack) -> None:
    # "Observation.Read (Labs) (R4) …" names no SMART scope: as at launch, the service tries
    # the reads it needs and the server's answers decide, rather than refusing with 412.
    data = stack.fire("patient-view", EX05, prefetch="absent", scope="epic")
    assert data["status"] == 200, data["body"]
    assert data["body"]["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")
