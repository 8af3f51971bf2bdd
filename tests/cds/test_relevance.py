"""patient-view fires on every chart opened: a card only when natalizumab is in the patient's
care, and never a figure from a lower band when the data cannot say which drug was given.
Direct calls over loopback HTTP, signed as an EHR signs them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from smart_app.risk.dates import add_months

from .conftest import Stack
from .ehr import Ehr, hook_body, serve_ehr

pytestmark = pytest.mark.integration

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
PERSON = "pat-other"


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[Ehr]:
    yield from serve_ehr(tmp_path)


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


def chart(*resources: dict[str, Any], patient: str = PERSON) -> dict[str, Any]:
    """A patient-view call for a hand-built chart, every prefetch key answered."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    return {
        "hookInstance": str(uuid.uuid4()), "hook": "patient-view",
        "context": {"userId": "Practitioner/dr-ada", "patientId": patient},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient},
            "observations": searchset(*by_type.get("Observation", [])),
            "administrations": searchset(*by_type.get("MedicationAdministration", [])),
            "statements": searchset(*by_type.get("MedicationStatement", [])),
            "requests": searchset(*by_type.get("MedicationRequest", [])),
        },
    }


def med(rtype: str, rid: str, drug: tuple[str, str], when: date, status: str = "completed",
        **extra: Any) -> dict[str, Any]:
    code, name = drug
    resource: dict[str, Any] = {
        "resourceType": rtype, "id": rid, "status": status,
        "subject": {"reference": f"Patient/{PERSON}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}],
                                      "text": name},
    }
    if rtype == "MedicationRequest":
        resource.update(intent="order", authoredOn=when.isoformat())
    else:
        resource["effectiveDateTime"] = when.isoformat()
    resource.update(extra)
    return resource


def jcv_positive(when: date, index: str = "1.2") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"jcv-{when}", "status": "final",
            "subject": {"reference": f"Patient/{PERSON}"},
            "code": {"coding": [{"system": LOINC, "code": "100977-8"}]},
            "effectiveDateTime": when.isoformat(),
            "valueQuantity": {"value": float(index)},
            "interpretation": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                "code": "POS"}]}]}


NATALIZUMAB = ("354770", "natalizumab 300 mg IV")
OCRELIZUMAB = ("1876366", "ocrelizumab 300 mg IV")
METFORMIN = ("6809", "metformin 500 mg tablet")


def test_no_card_for_charts_without_natalizumab(ehr: Ehr) -> None:
    today = date.today()
    hba1c = {"resourceType": "Observation", "id": "a1c", "status": "final",
             "subject": {"reference": f"Patient/{PERSON}"},
             "code": {"coding": [{"system": LOINC, "code": "4548-4"}]},
             "effectiveDateTime": today.isoformat(), "valueQuantity": {"value": 6.1}}
    long_ago = add_months(today, -8)
    charts = {
        "primary care": chart(hba1c, med("MedicationRequest", "mr1", METFORMIN, today,
                                         "active")),
        "empty": chart(),
        "MS on another therapy": chart(
            jcv_positive(today - timedelta(days=400)),
            med("MedicationAdministration", "oc1", OCRELIZUMAB, today - timedelta(days=30))),
        "natalizumab stopped 8 months ago": chart(
            jcv_positive(long_ago),
            *[med("MedicationAdministration", f"nat{n}", NATALIZUMAB,
                  long_ago - timedelta(days=28 * n)) for n in range(20)],
            med("MedicationStatement", "st1", NATALIZUMAB, long_ago, "completed",
                effectivePeriod={"start": "2020-01-01", "end": long_ago.isoformat()}),
            med("MedicationRequest", "mr-old", NATALIZUMAB, long_ago - timedelta(days=700),
                "completed")),
    }
    for name, body in charts.items():
        resp = ehr.call(ehr.token(), body)
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json() == {"cards": []}, name


def test_natalizumab_in_care_gets_its_card(ehr: Ehr) -> None:
    today = date.today()
    recent = today - timedelta(days=150)  # last dose 5 months ago: PML can still occur
    cases = {
        "last infusion 5 months ago": [
            med("MedicationAdministration", f"nat{n}", NATALIZUMAB,
                recent - timedelta(days=28 * n)) for n in range(10)],
        "active order only": [med("MedicationRequest", "mr1", NATALIZUMAB,
                                  today - timedelta(days=900), "active")],
        "undated statement": [{**med("MedicationStatement", "st1", NATALIZUMAB, today,
                                     "completed"), "effectiveDateTime": None}],
        "ongoing statement started long ago": [
            med("MedicationStatement", "st2", NATALIZUMAB, today, "active",
                effectiveDateTime=None, effectivePeriod={"start": "2019-03-01"})],
    }
    for name, records in cases.items():
        records = [{k: v for k, v in r.items() if v is not None} for r in records]
        resp = ehr.call(ehr.token(), chart(jcv_positive(today - timedelta(days=30)), *records))
        assert resp.status_code == 200, (name, resp.text)
        (card,) = resp.json()["cards"]
        if name in ("active order only", "ongoing statement started long ago"):
            # In care; the order or statement implies more infusions than the 0 on record.
            assert card["summary"].startswith("No PML estimate: Infusions on record: 0"), \
                card["summary"]
        else:
            assert card["summary"].startswith("PML risk "), (name, card["summary"])


@pytest.mark.parametrize("mode", ["always", "actionable"])
def test_the_tenant_chooses_when_patient_view_answers(tmp_path: Path, mode: str) -> None:
    for ehr in serve_ehr(tmp_path, cds={"patient_view": mode}):
        empty = ehr.call(ehr.token(), chart()).json()
        ex01 = ehr.call(ehr.token(), hook_body("ex01-negative-30")).json()
        ex05 = ehr.call(ehr.token(), hook_body()).json()
        # ex05 is in the higher-risk group: shown in every mode.
        assert ex05["cards"][0]["summary"].startswith("PML risk 8.8 per 1,000")
        if mode == "always":
            (card,) = empty["cards"]
            assert card["summary"] == (
                "No PML estimate: no usable anti-JCV antibody result — order the test")
            assert ex01["cards"][0]["summary"].startswith("PML risk 0.2 per 1,000")
        else:
            # Low risk, tested recently, nothing due: nothing to act on, no card.
            assert empty == {"cards": []} and ex01 == {"cards": []}


def ex05_by_reference(include_medication: bool) -> dict[str, Any]:
    """ex05 with every infusion naming ``Medication/tysabri-300`` instead of a code."""
    body = hook_body()
    administrations = body["prefetch"]["administrations"]
    entries = [e for e in administrations["entry"]
               if e["resource"]["resourceType"] == "MedicationAdministration"]
    for entry in entries:
        resource = entry["resource"]
        resource.pop("medicationCodeableConcept", None)
        resource["medicationReference"] = {"reference": "Medication/tysabri-300"}
    if include_medication:
        entries.append({"resource": {
            "resourceType": "Medication", "id": "tysabri-300",
            "code": {"coding": [{"system": RXNORM, "code": "354770"}],
                     "text": "Tysabri 300 mg/15 mL"}}})
    administrations["entry"] = entries
    return body


def test_unresolvable_medication_references_never_give_a_lower_figure(ehr: Ehr) -> None:
    # Without the Medication and with no fhirAuthorization to read it: 412, no card at all
    # (counted as "0 infusions" the figure would be 1.2 instead of 8.8).
    resp = ehr.call(ehr.token(), ex05_by_reference(include_medication=False))
    assert resp.status_code == 412, resp.text
    issue = resp.json()["issue"][0]
    assert issue["code"] == "incomplete"
    assert "Medication" in issue["diagnostics"] and "fhirAuthorization" in issue["diagnostics"]
    # With it, the figure is the chart's.
    ok = ehr.call(ehr.token(), ex05_by_reference(include_medication=True))
    assert ok.status_code == 200, ok.text
    assert ok.json()["cards"][0]["summary"] == (
        "PML risk 8.8 per 1,000 (anti-JCV index 1.51, 25 infusions)")


def test_medications_are_read_through_fhir_authorization(stack: Stack) -> None:
    # The templates carry no _include: the 14 infusions that name a standalone Medication are
    # identified by one Medication search with the EHR's token.
    data = stack.fire("patient-view", "medication-reference")
    assert data["status"] == 200, data
    assert data["serviceFhirRequests"] == 1
    assert data["body"]["cards"][0]["summary"] == (
        "PML risk 1.2 per 1,000 (anti-JCV index 1.7, 20 infusions)")
    unreadable = stack.fire("patient-view", "medication-reference", fhir="none")
    assert unreadable["status"] == 412
    assert "Medication/" in unreadable["body"]["issue"][0]["diagnostics"]


def test_conflicting_prefetch_copies_follow_the_copy_rule(ehr: Ehr) -> None:
    # Two different copies of the index Observation (1.51 and 0.30, no version to order them)
    # in one prefetch: never "the last one wins" (0.30 would give 1.1 per 1,000), in either
    # order: no estimate, as pml-risk assess says for the same data.
    body = hook_body()
    entries = body["prefetch"]["observations"]["entry"]
    index = next(e["resource"] for e in entries if e["resource"]["id"].endswith("jcvidx-001"))
    other = copy.deepcopy(index)
    other["valueQuantity"]["value"] = 0.3
    for first, second in ((index, other), (other, index)):
        call = copy.deepcopy(body)
        call["hookInstance"] = str(uuid.uuid4())
        rest = [e for e in entries if e["resource"]["id"] != index["id"]]
        call["prefetch"]["observations"]["entry"] = [
            *rest, {"resource": first}, {"resource": second}]
        (card,) = ehr.call(ehr.token(), call).json()["cards"]
        assert card["summary"].startswith("No PML estimate"), card["summary"]
        assert card["indicator"] == "warning"


def test_only_recent_records_medications_are_needed_to_stay_silent(ehr: Ehr) -> None:
    today = date.today()
    old = med("MedicationAdministration", "old1", METFORMIN, add_months(today, -9))
    old.pop("medicationCodeableConcept")
    old["medicationReference"] = {"reference": "Medication/unknown-old"}
    # A record too old to matter names a Medication nobody sent: no read, no card.
    resp = ehr.call(ehr.token(), chart(old))
    assert resp.status_code == 200 and resp.json() == {"cards": []}
    # A recent one could be natalizumab: it must be read, and cannot be here (412).
    recent = {**old, "id": "recent1", "effectiveDateTime": today.isoformat(),
              "medicationReference": {"reference": "Medication/unknown-new"}}
    resp = ehr.call(ehr.token(), chart(old, recent))
    assert resp.status_code == 412, resp.text
    assert "Medication/unknown-new" in resp.json()["issue"][0]["diagnostics"]
