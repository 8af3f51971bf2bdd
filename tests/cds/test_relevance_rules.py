"""Whether natalizumab is in the patient's care, rule by rule (docs/clinical-basis.md, "CDS
Hooks"): the question ``patient-view`` asks of every chart opened before any card. A record
wrongly counted puts a card on a chart that never saw natalizumab; one wrongly left out keeps
the PML figure from a patient who needs it. test_relevance.py shows the same through the
service; here each rule meets its edges directly."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from smart_app.cds import relevance
from smart_app.config import CodeSets

TODAY = date(2026, 12, 4)
WINDOW = 6  # months: the default care window
LAST_IN_WINDOW = date(2026, 6, 4)  # TODAY less 6 months: still in care
JUST_OUT = date(2026, 6, 3)
LONG_AGO = date(2024, 12, 4)
NATALIZUMAB = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                           "code": "354770"}]}  # the code alone, no name
LOCAL = {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "77"}]}
NAMED = {"text": "Tysabri 300 mg infusion"}


def record(kind: str, status: str, concept: dict[str, Any] | None = None,
           **fields: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": kind, "id": f"{kind[10:].lower()}-1",
                                "status": status, **fields}
    if concept is not None:
        resource["medicationCodeableConcept"] = concept
    return resource


def given(day: date) -> dict[str, Any]:
    return {"effectiveDateTime": day.isoformat()}


def in_care(*resources: dict[str, Any], codes: CodeSets | None = None) -> str | None:
    return relevance.in_care(resources, codes or CodeSets(), TODAY, WINDOW)


def test_the_answer_names_the_record_that_puts_natalizumab_in_care() -> None:
    other = record("MedicationStatement", "active", {"text": "Aspirin"})
    dose = record("MedicationAdministration", "completed", NAMED, **given(TODAY))
    assert in_care(other, dose) == "MedicationAdministration/administration-1"


@pytest.mark.parametrize(("day", "expected"), [
    (TODAY, True), (LAST_IN_WINDOW, True), (JUST_OUT, False), (LONG_AGO, False)])
def test_a_dose_counts_up_to_the_last_day_of_the_window(day: date, expected: bool) -> None:
    dose = record("MedicationAdministration", "completed", NAMED, **given(day))
    assert (in_care(dose) is not None) is expected


def test_a_record_without_a_date_counts() -> None:
    assert in_care(record("MedicationAdministration", "completed", NAMED)) is not None


@pytest.mark.parametrize(("period", "expected"), [
    ({"start": LONG_AGO.isoformat(), "end": TODAY.isoformat()}, True),  # its end decides
    ({"start": TODAY.isoformat()}, True),                                # else its start
    ({"start": LONG_AGO.isoformat()}, False),
    ({"end": LONG_AGO.isoformat()}, False),
])
def test_a_period_is_dated_by_its_end_else_its_start(period: dict[str, str],
                                                      expected: bool) -> None:
    statement = record("MedicationStatement", "completed", NAMED, effectivePeriod=period)
    assert (in_care(statement) is not None) is expected
    dose = record("MedicationAdministration", "completed", NAMED, effectivePeriod=period)
    assert (in_care(dose) is not None) is expected


@pytest.mark.parametrize(("asserted", "expected"), [(TODAY, True), (LONG_AGO, False)])
def test_a_statement_with_no_period_is_dated_when_asserted(asserted: date,
                                                           expected: bool) -> None:
    statement = record("MedicationStatement", "completed", NAMED,
                       dateAsserted=asserted.isoformat())
    assert (in_care(statement) is not None) is expected


def test_an_order_is_dated_when_written() -> None:
    assert in_care(record("MedicationRequest", "completed", NAMED,
                          authoredOn=TODAY.isoformat())) is not None
    assert in_care(record("MedicationRequest", "completed", NAMED,
                          authoredOn=LONG_AGO.isoformat(),
                          dispenseRequest={"validityPeriod": {"end": TODAY.isoformat()}})) is None


@pytest.mark.parametrize(("kind", "status"), [
    ("MedicationAdministration", "not-done"), ("MedicationAdministration", "entered-in-error"),
    ("MedicationStatement", "not-taken"), ("MedicationStatement", "entered-in-error"),
    ("MedicationRequest", "cancelled"), ("MedicationRequest", "entered-in-error")])
def test_records_of_no_use_never_count_however_recent(kind: str, status: str) -> None:
    assert in_care(record(kind, status, NAMED, **given(TODAY), authoredOn=TODAY.isoformat())) \
        is None


@pytest.mark.parametrize("status", ["active", "on-hold", "draft"])
def test_an_open_order_counts_whenever_written(status: str) -> None:
    assert in_care(record("MedicationRequest", status, NAMED,
                          authoredOn=LONG_AGO.isoformat())) is not None


@pytest.mark.parametrize(("kind", "status"), [
    ("MedicationStatement", "active"), ("MedicationStatement", "intended"),
    ("MedicationStatement", "on-hold"), ("MedicationAdministration", "in-progress")])
def test_ongoing_use_with_no_end_counts_whenever_it_began(kind: str, status: str) -> None:
    period = {"start": LONG_AGO.isoformat()}
    assert in_care(record(kind, status, NAMED, effectivePeriod=period)) is not None
    ended = {"start": LONG_AGO.isoformat(), "end": LONG_AGO.isoformat()}
    assert in_care(record(kind, status, NAMED, effectivePeriod=ended)) is None


def test_an_order_is_ongoing_only_by_an_order_status() -> None:
    # "in-progress" is an administration's status, not an order's: an order carrying it is
    # dated like any other record.
    order = record("MedicationRequest", "in-progress", NAMED, authoredOn=LONG_AGO.isoformat())
    assert in_care(order) is None


def test_natalizumab_is_recognised_by_its_code_alone_and_by_the_sites_own_codes() -> None:
    assert in_care(record("MedicationAdministration", "completed", NATALIZUMAB,
                          **given(TODAY))) is not None
    local = record("MedicationAdministration", "completed", LOCAL, **given(TODAY))
    assert in_care(local) is None
    site = CodeSets(natalizumab=("urn:oid:1.2.840.114350.1.13.0.1.7.2.698288|77",))
    assert in_care(local, codes=site) is not None


def test_a_record_whose_drug_cannot_be_named_is_not_natalizumab_here() -> None:
    # The service reads Medication references first and answers 412 when one stays unread;
    # what reaches this rule without a drug names none.
    unnamed = record("MedicationAdministration", "completed", **given(TODAY),
                     medicationReference={"reference": "Medication/unknown"})
    assert in_care(unnamed) is None
    assert not relevance.is_natalizumab(None, relevance.Vocabulary.from_config())


def test_a_referenced_medication_at_hand_names_the_drug() -> None:
    medication = {"resourceType": "Medication", "id": "nat", "code": NATALIZUMAB}
    dose = record("MedicationAdministration", "completed", **given(TODAY),
                  medicationReference={"reference": "Medication/nat"})
    assert in_care(dose, medication) == "MedicationAdministration/administration-1"


def test_only_medication_records_are_candidates() -> None:
    lab = {"resourceType": "Observation", "id": "o", "status": "final",
           "effectiveDateTime": TODAY.isoformat(), "code": NAMED}
    dose = record("MedicationAdministration", "completed", NAMED, **given(TODAY))
    old = record("MedicationAdministration", "completed", NAMED, **given(LONG_AGO))
    assert relevance.candidates([lab, dose, old], TODAY, WINDOW) == [dose]
