"""Never a lower exposure band than the chart's evidence allows (docs/clinical-basis.md §4, §5,
§8): infusions the EHR does not expose, medications the app cannot identify, conflicting copies
of a Medication or a Patient, and prior-use records of status unknown, draft or intended.

The charts are the fixture patients with one change each, read through ``smart_app.service``
(the seam the page, the CLI, the CDS service and the worklist share) and, for the exit code,
through ``pml-risk assess`` in a real process.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smart_app.config import Settings
from smart_app.fhir.bundle import read_bundle
from smart_app.risk import Overrides
from smart_app.risk.result import Assessment
from smart_app.service import ChartAssessment, assess_chart

from .builders import (
    JCV_ANTIBODY,
    JCV_INDEX,
    NATALIZUMAB,
    RXNORM,
    concept,
    index_value,
    natalizumab_series,
    observation,
    patient,
    request,
    snomed_result,
    statement,
)
from .fixtures_index import bundle_path
from .test_cli import cli_many

AT = date(2026, 11, 25)
EX05 = "ex05-index-1-51-25-infusions"
POSITIVE = snomed_result("10828004", "Positive")
ASPIRIN = concept("Aspirin 81 mg", (RXNORM, "1191"))


def load(fixture_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bundle_path(fixture_id).read_text(encoding="utf-8"),
                                      parse_float=Decimal)
    return data


def entries(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in data["entry"] if e["resource"]["resourceType"] == kind]


def without(data: dict[str, Any], kind: str) -> dict[str, Any]:
    return {**data, "entry": [e for e in data["entry"] if e["resource"]["resourceType"] != kind]}


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"http://example.org/fhir/{resource['resourceType']}/{resource['id']}",
            "resource": resource}


def service(data: dict[str, Any], overrides: Overrides | None = None) -> ChartAssessment:
    b = read_bundle(data)
    return assess_chart(b.resources, b.patient_id, at=AT, settings=Settings(),
                        full_urls=b.full_urls, overrides=overrides)


def codes(a: Assessment) -> dict[str, str]:
    return {f.code.value: f.severity.value for f in a.findings}


def message(a: Assessment, code: str) -> str:
    return next(f.message for f in a.findings if f.code.value == code)


def pid_of(data: dict[str, Any]) -> str:
    return str(entries(data, "Patient")[0]["resource"]["id"])


# --- 1. infusions the EHR does not expose ---------------------------------------------------

def orders_only(fixture_id: str = EX05) -> dict[str, Any]:
    """The chart as an EHR that does not expose infusions sends it: the administrations gone,
    one active natalizumab order authored 2024-10-01, every four weeks."""
    data = without(load(fixture_id), "MedicationAdministration")
    order = request("nat-order", "2024-10-01", NATALIZUMAB, status="active")
    order["subject"] = {"reference": f"Patient/{pid_of(data)}"}
    order["dosageInstruction"] = [{"timing": {"repeat": {"period": 4, "periodUnit": "wk"}}}]
    return {**data, "entry": [*data["entry"], entry(order)]}


def test_orders_implying_a_higher_band_than_no_recorded_infusion_give_no_estimate() -> None:
    chart = service(orders_only())
    a = chart.assessment
    assert a.per_1000 is None and chart.risk_assessment is None
    text = message(a, "exposure-orders-higher")
    assert text.startswith("Infusions on record: 0; natalizumab ordered since 2024-10-01: "
                           "about 29 infusions — confirm the count.")
    assert "25–48 infusions" in text
    # "the first band is used" would contradict the missing estimate
    assert "exposure-none" not in codes(a)
    # the orders' count is offered, never applied
    assert chart.order_estimate is not None and chart.order_estimate.infusions == 29
    assert chart.api_json()["suggestions"]["infusions"]["value"] == 29
    assert a.exposure.infusions == 0


def test_the_clinician_entered_count_gives_the_full_figure() -> None:
    a = service(orders_only(), Overrides(infusion_count=25, reason="infusion log")).assessment
    assert a.per_1000 == Decimal("8.8")
    assert "exposure-orders-higher" not in codes(a)


def test_orders_in_the_same_band_leave_the_estimate_with_the_warning() -> None:
    data = orders_only()
    data["entry"][-1]["resource"]["authoredOn"] = "2026-06-01"  # about 7 infusions: 0–24
    a = service(data).assessment
    assert a.per_1000 == Decimal("1.2")
    assert codes(a)["exposure-undercount"] == "warning"
    assert "exposure-orders-higher" not in codes(a)


def test_a_statement_of_use_long_before_the_first_infusion_counts_like_an_order() -> None:
    """Treatment recorded since 2023-01 with no infusion on record: no estimate either."""
    data = without(load(EX05), "MedicationAdministration")
    use = statement("nat-use", "2023-01-10", NATALIZUMAB, status="active")
    use["subject"] = {"reference": f"Patient/{pid_of(data)}"}
    a = service({**data, "entry": [*data["entry"], entry(use)]}).assessment
    assert a.per_1000 is None
    assert "natalizumab recorded in use since 2023-01-10" in message(a, "exposure-orders-higher")


@pytest.mark.parametrize(("days_before", "warned"), [(42, False), (43, True)])
def test_a_natalizumab_statement_warns_only_more_than_42_days_before_the_first_infusion(
    days_before: int, warned: bool
) -> None:
    series = natalizumab_series(10, start=AT - timedelta(days=28 * 9))
    first = date.fromisoformat(series[0]["effectiveDateTime"])
    on = date.fromordinal(first.toordinal() - days_before).isoformat()
    resources = [patient(), observation("ab", JCV_ANTIBODY, **POSITIVE),
                 observation("idx", JCV_INDEX, **index_value("1.0")), *series,
                 statement("nat-use", on, NATALIZUMAB)]
    a = assess_chart(resources, "p1", at=AT, settings=Settings()).assessment
    assert ("exposure-undercount" in codes(a)) is warned
    assert a.per_1000 is not None


# --- 2. medications the app cannot identify ---------------------------------------------------

def by_reference(data: dict[str, Any], ref: str = "Medication/tysabri-300") -> dict[str, Any]:
    """Every administration names ``ref`` instead of carrying its code."""
    data = copy.deepcopy(data)
    for e in entries(data, "MedicationAdministration"):
        e["resource"].pop("medicationCodeableConcept", None)
        e["resource"]["medicationReference"] = {"reference": ref}
    return data


def test_unidentified_administrations_that_would_move_the_band_give_no_estimate() -> None:
    a = service(by_reference(load(EX05))).assessment
    assert a.per_1000 is None  # not 1.2 from "0 infusions"
    f = next(f for f in a.findings if f.code.value == "exposure-unidentified")
    assert f.severity.value == "missing" and len(f.sources) == 25
    assert "25 administration record(s)" in f.message


def test_a_display_naming_the_drug_still_identifies_an_unresolved_reference() -> None:
    data = by_reference(load(EX05))
    for e in entries(data, "MedicationAdministration"):
        e["resource"]["medicationReference"]["display"] = "Tysabri 300 mg"
    assert service(data).assessment.per_1000 == Decimal("8.8")


def test_a_medication_missing_from_the_bundle_in_the_same_band_warns() -> None:
    """medication-reference.json without its Medication: 6 identified (contained) and 14
    unidentified infusions, both 0–24: the same figure as with the Medication, warned."""
    full = service(load("medication-reference")).assessment
    data = without(load("medication-reference"), "Medication")
    a = service(data).assessment
    assert a.exposure.infusions == 6
    assert a.per_1000 == full.per_1000 is not None
    assert codes(a)["exposure-unidentified"] == "warning"


def test_an_empty_medication_concept_is_unidentified_not_another_drug() -> None:
    data = copy.deepcopy(load(EX05))
    for e in entries(data, "MedicationAdministration"):
        e["resource"]["medicationCodeableConcept"] = {}
    a = service(data).assessment
    assert a.per_1000 is None and codes(a)["exposure-unidentified"] == "missing"


def test_natalizumab_administrations_of_status_unknown_follow_the_unidentified_rule() -> None:
    data = copy.deepcopy(load(EX05))
    admins = entries(data, "MedicationAdministration")
    admins[-1]["resource"]["status"] = "unknown"  # 24 completed, 1 unknown: 0–24 or 25–48
    a = service(data).assessment
    assert a.exposure.infusions == 24
    assert a.per_1000 is None and codes(a)["exposure-unidentified"] == "missing"
    admins[-1]["resource"]["status"] = "completed"
    admins[0]["resource"]["status"] = "unknown"
    admins[1]["resource"]["status"] = "unknown"  # 23 + 2 = 25: still moves
    assert service(data).assessment.per_1000 is None


def test_an_unidentified_statement_before_the_first_infusion_makes_prior_use_unknown() -> None:
    old = statement("old", "2013-05-01", NATALIZUMAB)
    del old["medicationCodeableConcept"]
    old["medicationReference"] = {"reference": "Medication/unknown-drug"}
    resources = [patient(), observation("ab", JCV_ANTIBODY, **POSITIVE),
                 observation("idx", JCV_INDEX, **index_value("1.0")), *natalizumab_series(30),
                 old]
    a = assess_chart(resources, "p1", at=AT, settings=Settings()).assessment
    assert a.prior_immunosuppressant.unknown is True
    assert codes(a)["prior-is-unidentified"] == "warning"
    assert "prior-is-none-on-record" not in codes(a)
    assert "MedicationStatement/old" in a.prior_immunosuppressant.unidentified


# --- 3. conflicting copies of a Medication and of a Patient ----------------------------------

def two_medication_copies(reverse: bool) -> dict[str, Any]:
    data = by_reference(load(EX05), "Medication/nat")
    nat = {"resourceType": "Medication", "id": "nat", "code": NATALIZUMAB}
    aspirin = {"resourceType": "Medication", "id": "nat", "code": ASPIRIN}
    copies = [entry(aspirin), entry(nat)] if reverse else [entry(nat), entry(aspirin)]
    return {**data, "entry": [*data["entry"], *copies]}


@pytest.mark.parametrize("reverse", [False, True])
def test_conflicting_copies_of_a_medication_give_no_estimate_in_either_order(
    reverse: bool
) -> None:
    a = service(two_medication_copies(reverse)).assessment
    assert a.per_1000 is None  # not 1.2 from the aspirin copy
    f = next(f for f in a.findings if f.code.value == "resource-conflict")
    assert f.severity.value == "missing" and f.sources == ("Medication/nat",)


def test_one_copy_of_the_medication_gives_the_full_figure() -> None:
    data = two_medication_copies(False)
    data["entry"] = data["entry"][:-1]
    assert service(data).assessment.per_1000 == Decimal("8.8")


def test_a_newer_version_of_the_medication_wins() -> None:
    data = two_medication_copies(False)
    data["entry"][-2]["resource"]["meta"] = {"versionId": "2"}
    data["entry"][-1]["resource"]["meta"] = {"versionId": "1"}
    a = service(data).assessment
    assert a.per_1000 == Decimal("8.8") and "resource-conflict" not in codes(a)


def test_conflicting_copies_of_the_patient_are_named() -> None:
    data = load(EX05)
    other = copy.deepcopy(entries(data, "Patient")[0])
    other["resource"]["birthDate"] = "1950-01-01"
    a = service({**data, "entry": [*data["entry"], other]}).assessment
    f = next(f for f in a.findings if f.code.value == "resource-conflict")
    assert f.sources == (f"Patient/{pid_of(data)}",) and f.severity.value == "warning"
    assert a.per_1000 == Decimal("8.8")  # the Patient gives no table cell


# --- 4. prior-use records of status unknown, draft or intended -------------------------------

def test_an_immunosuppressant_of_status_unknown_counts_as_prior_use_with_the_warning() -> None:
    resources = [patient(), observation("ab", JCV_ANTIBODY, **POSITIVE),
                 observation("idx", JCV_INDEX, **index_value("1.0")), *natalizumab_series(30),
                 statement("aza", "2013-05-01", concept("azathioprine 50 mg"), status="unknown")]
    a = assess_chart(resources, "p1", at=AT, settings=Settings()).assessment
    assert a.prior_immunosuppressant.value is True
    assert a.per_1000 == Decimal("12")  # not 1.1
    assert ("status unknown: counted as prior use; override if it was not taken"
            in message(a, "prior-is-status-unknown"))


def test_draft_orders_and_intended_statements_are_listed_not_counted() -> None:
    draft = request("mtx", "2013-05-01", concept("methotrexate 2.5 mg"), status="draft")
    intended = statement("aza", "2013-05-01", concept("azathioprine 50 mg"), status="intended")
    resources = [patient(), observation("ab", JCV_ANTIBODY, **POSITIVE),
                 observation("idx", JCV_INDEX, **index_value("1.0")), *natalizumab_series(30),
                 draft, intended]
    a = assess_chart(resources, "p1", at=AT, settings=Settings()).assessment
    assert a.prior_immunosuppressant.value is False
    listed = message(a, "records-not-counted")
    assert "(status draft)" in listed and "(status intended)" in listed


# --- every caller: pml-risk assess exits 3 naming the records --------------------------------

def test_the_cli_gives_exit_3_naming_the_records(tmp_path: Path) -> None:
    charts = {
        "orders": orders_only(),
        "unidentified": by_reference(load(EX05)),
        "medication-copies": two_medication_copies(True),
    }
    paths = {}
    for name, data in charts.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data, default=float), encoding="utf-8")
        paths[name] = str(path)
    runs = cli_many({name: ("assess", p, "--at", AT.isoformat(), "--format", "text")
                     for name, p in paths.items()})
    for run in runs.values():
        assert run.code == 3, run.stderr
        assert "NO ESTIMATE" in run.stdout
    assert ("Infusions on record: 0; natalizumab ordered since 2024-10-01: about 29 "
            "infusions" in runs["orders"].stdout)
    assert "MedicationAdministration/" in runs["unidentified"].stdout
    assert "Medication/nat" in runs["medication-copies"].stdout


# --- the CDS prefetch shape: search Bundles without the Medications they name ------------------

def test_a_prefetch_without_the_named_medications_gives_no_lower_figure() -> None:
    """A CDS prefetch holds search results only (no ``_include``d Medication, no fullUrls to
    resolve): the engine gives no estimate rather than 1.2 from "0 infusions"."""
    data = by_reference(load(EX05))
    searchsets = {kind: {"resourceType": "Bundle", "type": "searchset",
                         "entry": [{"resource": e["resource"]} for e in entries(data, kind)]}
                  for kind in ("Observation", "MedicationAdministration", "MedicationStatement")}
    resources = [entries(data, "Patient")[0]["resource"],
                 *(e["resource"] for bundle in searchsets.values() for e in bundle["entry"])]
    chart = assess_chart(resources, pid_of(data), at=AT, settings=Settings(), resource=False)
    assert chart.assessment.per_1000 is None
    assert codes(chart.assessment)["exposure-unidentified"] == "missing"
