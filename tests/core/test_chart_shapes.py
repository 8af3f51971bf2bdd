"""Chart shapes real EHRs send that once gave a wrong, lower number without a word.

Each test is a clinical review's reproduction: FHIR JSON in, the number and the warning out.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from smart_app.config import Settings
from smart_app.risk import Assessment
from smart_app.service import assess_chart

AT = date(2026, 11, 25)
PID = "p1"
JCV = {"coding": [{"system": "http://loinc.org", "code": "70173-0"}], "text": "JCV Ab"}
JCV_INDEX = {"coding": [{"system": "http://loinc.org", "code": "100977-8"}], "text": "JCV index"}
NATALIZUMAB = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                           "code": "354770", "display": "natalizumab"}]}


def obs(oid: str, code: dict[str, Any], on: str, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": value.pop("status", "final"),
            "code": code, "subject": {"reference": f"Patient/{PID}"},
            "effectiveDateTime": on, **value}


def infusions(n: int, start: date = date(2024, 1, 4), **extra: Any) -> list[dict[str, Any]]:
    return [
        {"resourceType": "MedicationAdministration", "id": f"nat-{k}", "status": "completed",
         "subject": {"reference": f"Patient/{PID}"},
         "effectiveDateTime": (start + timedelta(days=28 * k)).isoformat(),
         **(extra or {"medicationCodeableConcept": NATALIZUMAB})}
        for k in range(n)
    ]


def assess(*resources: dict[str, Any]) -> Assessment:
    patient = {"resourceType": "Patient", "id": PID}
    return assess_chart([patient, *resources], PID, at=AT, settings=Settings()).assessment


def codes(a: Assessment) -> set[str]:
    return {f.code.value for f in a.findings}


def test_a_reactive_latest_result_is_read_as_positive() -> None:
    a = assess(
        obs("old", JCV, "2025-01-10", valueString="Negative"),
        obs("new", JCV, "2026-10-01", valueString="Reactive"),
        *infusions(30),
    )
    assert a.antibody.status.value == "positive"
    assert a.antibody.sources == ("Observation/new",)


def test_short_forms_snomed_present_and_index_as_text_are_read() -> None:
    a = assess(
        obs("q", JCV, "2026-10-01", valueCodeableConcept={"coding": [
            {"system": "http://snomed.info/sct", "code": "52101004", "display": "Present"}]}),
        obs("i", JCV_INDEX, "2026-10-01", valueString="2.35"),
        *infusions(30),
    )
    assert a.antibody.status.value == "positive"
    assert a.antibody.index == Decimal("2.35")
    assert a.per_1000 == Decimal("8.8")
    b = assess(obs("q", JCV, "2026-10-01", valueString="POS"), *infusions(30))
    assert b.antibody.status.value == "positive"


def test_an_unreadable_latest_result_blocks_the_estimate_and_says_why() -> None:
    a = assess(
        obs("old", JCV, "2025-01-10", valueString="Negative"),
        obs("new", JCV, "2026-10-01", valueString="see scanned report"),
        *infusions(30),
    )
    assert not a.complete
    missing = a.missing[0].message
    assert "could not be read" in missing and "see scanned report" in missing


def test_an_unreadable_duplicate_does_not_spoil_a_readable_result() -> None:
    a = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        obs("junk", JCV, "2026-10-01", valueString="comment: drawn late"),
        obs("i", JCV_INDEX, "2026-10-01", valueQuantity={"value": 1.0}),
        *infusions(30),
    )
    assert a.per_1000 == Decimal("1.1")


def test_a_bound_decides_only_the_band_it_proves() -> None:
    below = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        obs("i", JCV_INDEX, "2026-10-01", valueQuantity={"value": 1.5, "comparator": "<"}),
        *infusions(30),
    )
    # "<1.5" proves the index is at most 1.5: that row, and the page says it was a bound.
    assert below.cell is not None and below.cell.row.endswith("index ≤ 1.5")
    assert "antibody-value-bound" in codes(below)
    spanning = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        obs("i", JCV_INDEX, "2026-10-01", valueQuantity={"value": 0.9, "comparator": ">"}),
        *infusions(30),
    )
    # ">0.9" leaves both sides of 1.5 open: "index not available", never the lower row.
    assert spanning.cell is not None and spanning.cell.row.endswith("index not available")
    assert "antibody-value-bound" in codes(spanning)
    negative = assess(obs("i", JCV_INDEX, "2026-10-01",
                          valueQuantity={"value": 0.2, "comparator": "<"}), *infusions(30))
    assert negative.antibody.status.value == "negative"
    unclear = assess(obs("i", JCV_INDEX, "2026-10-01",
                         valueQuantity={"value": 0.4, "comparator": "<"}), *infusions(30))
    assert not unclear.complete  # "<0.40" may be negative or indeterminate


def test_results_reported_as_components_are_read() -> None:
    panel = obs("panel", {"text": "JCV panel"}, "2026-10-01", component=[
        {"code": JCV, "valueString": "Positive"},
        {"code": JCV_INDEX, "valueQuantity": {"value": 3.0}},
    ])
    a = assess(panel, *infusions(30))
    assert a.antibody.index == Decimal("3.0")
    assert a.per_1000 == Decimal("8.8")


def test_qualitative_and_index_split_over_midnight_are_one_test() -> None:
    a = assess(
        obs("q", JCV, "2026-10-02T01:00:00+02:00", valueString="Positive"),
        obs("i", JCV_INDEX, "2026-10-01T23:00:00Z", valueQuantity={"value": 2.0}),
        *infusions(30),
    )
    assert a.antibody.index == Decimal("2.0")
    assert a.per_1000 == Decimal("8.8")
    assert "index-missing" not in codes(a)


def test_a_versioned_medication_reference_still_counts_the_infusion() -> None:
    medication = {"resourceType": "Medication", "id": "m1", "code": NATALIZUMAB}
    a = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        obs("i", JCV_INDEX, "2026-10-01", valueQuantity={"value": 2.0}),
        medication,
        *infusions(30, medicationReference={"reference": "Medication/m1/_history/3"}),
    )
    assert a.exposure.infusions == 30
    assert a.per_1000 == Decimal("8.8")


def test_an_unidentifiable_medication_is_a_warning_not_a_silence() -> None:
    a = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        *infusions(30, medicationReference={"reference": "Medication/gone"}),
    )
    assert a.exposure.infusions == 0
    assert "medication-unresolved" in codes(a)


def test_history_dated_by_its_end_or_assertion_is_prior_not_concomitant() -> None:
    base = [obs("q", JCV, "2026-10-01", valueString="Positive"),
            obs("i", JCV_INDEX, "2026-10-01", valueQuantity={"value": 1.0}),
            *infusions(30, start=date(2022, 1, 6))]
    statement = {"resourceType": "MedicationStatement", "id": "aza", "status": "completed",
                 "subject": {"reference": f"Patient/{PID}"},
                 "medicationCodeableConcept": {"text": "Azathioprine 50 mg"}}
    ended = assess(*base, {**statement, "effectivePeriod": {"end": "2018-06"},
                           "dateAsserted": "2024-05-02"})
    assert ended.prior_immunosuppressant.value is True
    assert ended.per_1000 == Decimal("12")
    assert "prior-is-concomitant" not in codes(ended)
    asserted = assess(*base, {**statement, "dateAsserted": "2024-05-02"})
    assert asserted.prior_immunosuppressant.value is True
    assert "prior-is-undated" in codes(asserted)


def test_use_continuing_past_the_first_infusion_is_prior_and_warned() -> None:
    a = assess(
        obs("q", JCV, "2026-10-01", valueString="Positive"),
        *infusions(30, start=date(2022, 1, 6)),
        {"resourceType": "MedicationStatement", "id": "mtx", "status": "active",
         "subject": {"reference": f"Patient/{PID}"},
         "medicationCodeableConcept": {"text": "Methotrexate 15 mg weekly"},
         "effectivePeriod": {"start": "2021-06-01"}},
    )
    assert a.prior_immunosuppressant.value is True
    assert "prior-is-concomitant" in codes(a)


def test_a_newer_version_replaces_an_older_one() -> None:
    v1 = obs("x", JCV_INDEX, "2026-10-01", valueQuantity={"value": 3.1},
             meta={"versionId": "1"})
    v2 = {**v1, "status": "entered-in-error", "meta": {"versionId": "2"}}
    a = assess(obs("old", JCV_INDEX, "2026-04-01", valueQuantity={"value": 1.0}), v2, v1,
               *infusions(30))
    assert a.antibody.index == Decimal("1.0")
    assert a.per_1000 == Decimal("1.1")
