"""The edges of the clinical input rules (docs/clinical-basis.md §1–§6), one rule per test.

Each test sits on a boundary a one-character change to the rules would move (``>`` for ``>=``,
a status dropped from a set, two rows swapped): the value exactly on the boundary and the first
value past it, so a mutation test of the core cannot slip a changed rule past the suite.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from smart_app.config import CodeSets
from smart_app.fhir.extract import ForeignResourceError, extract_inputs
from smart_app.risk import Antibody, Assessment, Overrides
from smart_app.risk.records import AgentClass
from smart_app.risk.table import RiskTable

from .builders import (
    AT,
    FIRST_INFUSION,
    JCV_ANTIBODY,
    JCV_INDEX,
    PATIENT,
    V3_INTERPRETATION,
    administration,
    antibody_test,
    codes,
    concept,
    finding,
    index_value,
    infusions,
    inputs,
    medication,
    natalizumab_series,
    observation,
    patient,
    run,
    snomed_result,
    statement,
)

POSITIVE = snomed_result("10828004", "Positive")


def assess_fhir(*resources: dict[str, Any], n: int = 30, at: date = AT) -> Assessment:
    return run(extract_inputs([patient(), *natalizumab_series(n), *resources], PATIENT), at=at)


# --- the assessment date ------------------------------------------------------------------------

def test_a_result_dated_on_the_assessment_date_is_used() -> None:
    """Records dated after the assessment date are left out; one dated on it is not."""
    a = run(inputs([*antibody_test(Antibody.POSITIVE, "0.9"),
                    *antibody_test(Antibody.NEGATIVE, on=AT)], infusions(10)))
    assert a.antibody.status is Antibody.NEGATIVE
    assert a.antibody.tested_on == AT
    assert "after-assessment-date" not in codes(a)

    later = run(inputs([*antibody_test(Antibody.POSITIVE, "0.9"),
                        *antibody_test(Antibody.NEGATIVE, on=AT + timedelta(days=1))],
                       infusions(10)))
    assert later.antibody.status is Antibody.POSITIVE
    assert "after-assessment-date" in codes(later)


def test_an_infusion_and_a_medication_dated_on_the_assessment_date_are_used() -> None:
    given = infusions(25, start=AT - timedelta(days=28 * 24))
    assert given[-1].when == AT
    a = run(inputs(antibody_test(Antibody.POSITIVE, "0.9"), given))
    assert a.exposure.infusions == 25
    assert a.cell is not None and a.cell.band == "25–48 infusions"
    assert "after-assessment-date" not in codes(a)


# --- pairing a qualitative result with its index ------------------------------------------------

@pytest.mark.parametrize(("days", "paired"), [(0, True), (3, True), (4, False)])
def test_index_and_qualitative_result_up_to_three_days_apart_are_one_test(
    days: int, paired: bool
) -> None:
    """A concordant index reported up to 3 days before its qualitative result is the same test;
    4 days apart they are two tests, and the later (qualitative only) has no index."""
    drawn = date(2026, 9, 10)
    a = assess_fhir(
        observation("idx", JCV_INDEX, on=drawn.isoformat(), **index_value("2.0")),
        observation("ab", JCV_ANTIBODY, on=(drawn + timedelta(days=days)).isoformat(),
                    **POSITIVE),
    )
    assert a.antibody.status is Antibody.POSITIVE
    assert a.cell is not None
    if paired:
        assert a.antibody.index == Decimal("2.0")
        assert set(a.antibody.sources) == {"Observation/idx", "Observation/ab"}
        assert a.cell.row == "antibody positive, no prior IS, index > 1.5"
        assert a.per_1000 == Decimal("8.8")
    else:
        # Two tests: the later positive has no index of its own, so the earlier index is used
        # (its row is higher than "index not available"), named with its date.
        assert a.antibody.tested_on == drawn + timedelta(days=days)
        assert a.antibody.index_from == drawn
        assert "2 of 2026-09-10, is used" in finding(a, "index-missing").message
        assert a.cell.row == "antibody positive, no prior IS, index > 1.5"
        assert a.per_1000 == Decimal("8.8")


# --- the table: exclusive "above", inclusive "max", whatever the row order ------------------------

def _reordered_table() -> RiskTable:
    """A custom table listing the "> 1.5" row before the "≤ 1.5" row."""
    cells = [{"min": 0, "max": 24, "per_1000": 1}, {"min": 25, "max": 48, "per_1000": 2}]
    rows: list[dict[str, Any]] = [
        {"label": "negative", "antibody": "negative", "prior_immunosuppressant": False,
         "cells": cells},
        {"label": "above 1.5", "antibody": "positive", "prior_immunosuppressant": False,
         "index": {"above": 1.5}, "cells": cells},
        {"label": "at most 1.5", "antibody": "positive", "prior_immunosuppressant": False,
         "index": {"max": 1.5}, "cells": cells},
        {"label": "no index", "antibody": "positive", "prior_immunosuppressant": False,
         "index": "missing", "cells": cells},
    ]
    return RiskTable.from_mapping(
        {"id": "reordered", "title": "Reordered", "sources": ["test"], "rows": rows}
    )


@pytest.mark.parametrize(("index", "row"), [("1.5", "at most 1.5"), ("1.51", "above 1.5"),
                                            ("1.49", "at most 1.5")])
def test_a_rows_above_bound_is_exclusive_even_when_it_comes_first(index: str, row: str) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(30)),
            risk_table=_reordered_table())
    assert a.cell is not None and a.cell.row == row


@pytest.mark.parametrize(("index", "row", "per_1000"), [
    ("1.5", "antibody positive, no prior IS, index ≤ 1.5", "1.1"),
    ("1.51", "antibody positive, no prior IS, index > 1.5", "8.8"),
])
def test_index_exactly_1_5_is_the_lower_band_in_the_bundled_table(
    index: str, row: str, per_1000: str
) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(30)))
    assert a.cell is not None and a.cell.row == row
    assert a.per_1000 == Decimal(per_1000)


@pytest.mark.parametrize(("index", "qualitative"), [("1.5", "moderate"), ("1.51", "high")])
def test_higher_risk_group_needs_an_index_above_1_5(index: str, qualitative: str) -> None:
    """EMA/PRAC "higher risk": positive, > 24 infusions and index > 1.5 (1.5 itself is not)."""
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(30)))
    assert a.qualitative == qualitative


@pytest.mark.parametrize(("n", "qualitative"), [(24, "moderate"), (25, "high")])
def test_higher_risk_group_needs_more_than_24_infusions(n: int, qualitative: str) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "2.0"), infusions(n)))
    assert a.qualitative == qualitative


@pytest.mark.parametrize(("index", "retest"), [("1.5", True), ("1.51", True), ("1.6", True),
                                              ("1.61", False)])
def test_index_retest_advice_stops_only_above_1_5(index: str, retest: bool) -> None:
    """Above 1.5 a retest cannot change the row, except near the cut-off (within 0.1), where
    the advice agrees with the near-cut-off warning."""
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(10)))
    if retest:
        assert a.monitoring.antibody_retest_due is not None
        advice = a.monitoring.antibody_retest
        if Decimal(index) <= Decimal("1.5"):
            assert "retest every 6 months while the index is 1.5 or below" in advice
        else:
            assert "near the 1.5 cut-off" in advice and "retest the index" in advice
    else:
        assert a.monitoring.antibody_retest_due is None
        assert "index above 1.5" in a.monitoring.antibody_retest


@pytest.mark.parametrize(("index", "near"), [("1.39", False), ("1.4", True), ("1.6", True),
                                             ("1.61", False)])
def test_near_the_cut_off_means_within_0_1_of_1_5(index: str, near: bool) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(10)))
    assert ("index-near-cutoff" in codes(a)) is near


# --- retest due dates ---------------------------------------------------------------------------

def test_a_retest_due_today_is_due_not_overdue() -> None:
    """The antibody retest falls due 6 calendar months after the test: on that day it is due
    (not stale, not overdue); the next day it is overdue."""
    tested = date(2026, 5, 25)
    due_today = run(inputs(antibody_test(Antibody.NEGATIVE, on=tested), infusions(10)))
    assert due_today.monitoring.antibody_retest_due == AT
    assert due_today.monitoring.antibody_retest.endswith(f"due today ({AT.isoformat()}).")
    assert "overdue" not in due_today.monitoring.antibody_retest
    assert "antibody-stale" not in codes(due_today)

    day_after = run(inputs(antibody_test(Antibody.NEGATIVE, on=tested), infusions(10)),
                    at=AT + timedelta(days=1))
    assert f"overdue since {AT.isoformat()}" in day_after.monitoring.antibody_retest
    assert f"retest due since {AT.isoformat()}" in finding(day_after, "antibody-stale").message


def test_a_low_index_retest_due_today_is_due_not_overdue() -> None:
    tested = date(2026, 5, 25)
    a = run(inputs(antibody_test(Antibody.POSITIVE, "0.9", on=tested), infusions(10)))
    assert a.monitoring.antibody_retest.endswith(f"due today ({AT.isoformat()}).")
    assert "overdue" not in a.monitoring.antibody_retest


# --- prior immunosuppressant use ----------------------------------------------------------------

@pytest.mark.parametrize("status", ["intended", "not-taken", "entered-in-error"])
def test_a_statement_of_intended_or_untaken_use_is_not_prior_use(status: str) -> None:
    """A MedicationStatement that does not say the drug was taken is not evidence of use."""
    before = (FIRST_INFUSION - timedelta(days=200)).isoformat()
    a = assess_fhir(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, **index_value("1.0")),
        statement("aza", before, concept("azathioprine 50 mg"), status=status),
    )
    assert a.prior_immunosuppressant.value is False
    assert a.per_1000 == Decimal("1.1")

    taken = assess_fhir(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, **index_value("1.0")),
        statement("aza", before, concept("azathioprine 50 mg"), status="completed"),
    )
    assert taken.prior_immunosuppressant.value is True
    assert taken.per_1000 == Decimal("12")


# --- index values and comparators near the assay cut-offs ---------------------------------------

def _index_only(**value: Any) -> Assessment:
    return assess_fhir(observation("idx", JCV_INDEX, **value), n=10)


@pytest.mark.parametrize(("comparator", "status"), [
    ("<", Antibody.NEGATIVE),  # every value below 0.20 is negative
    ("<=", Antibody.INDETERMINATE),  # 0.20 itself is indeterminate: not proven negative
])
def test_an_index_bounded_at_0_20_is_negative_only_strictly_below(
    comparator: str, status: Antibody
) -> None:
    a = _index_only(valueQuantity={"value": Decimal("0.20"), "comparator": comparator})
    assert a.antibody.status is status
    assert a.antibody.index_text == f"{comparator}0.2"  # kept as the bound, never as a value
    if status is Antibody.NEGATIVE:
        assert a.per_1000 == Decimal("0.02")
    else:
        assert a.per_1000 is None and not a.complete


@pytest.mark.parametrize(("text", "status"), [("<0.20", Antibody.NEGATIVE),
                                              ("<=0.20", Antibody.INDETERMINATE),
                                              ("<0.19", Antibody.NEGATIVE),
                                              ("<=0.19", Antibody.NEGATIVE)])
def test_an_index_string_bound_at_0_20(text: str, status: Antibody) -> None:
    assert _index_only(valueString=text).antibody.status is status


@pytest.mark.parametrize(("value", "status"), [("0.40", Antibody.INDETERMINATE),
                                               ("0.41", Antibody.POSITIVE),
                                               ("0.20", Antibody.INDETERMINATE),
                                               ("0.19", Antibody.NEGATIVE)])
def test_an_exact_index_at_the_assay_cut_offs(value: str, status: Antibody) -> None:
    """0.20–0.40 inclusive is indeterminate; below 0.20 negative; above 0.40 positive."""
    assert _index_only(**index_value(value)).antibody.status is status


@pytest.mark.parametrize(("comparator", "value", "status"), [
    (">", "0.40", Antibody.POSITIVE),  # every value above 0.40 is positive
    (">=", "0.40", Antibody.INDETERMINATE),  # 0.40 itself is indeterminate
    (">", "0.39", Antibody.INDETERMINATE),  # 0.395 would be indeterminate
])
def test_an_index_bounded_at_0_40_is_positive_only_strictly_above(
    comparator: str, value: str, status: Antibody
) -> None:
    a = _index_only(valueQuantity={"value": Decimal(value), "comparator": comparator})
    assert a.antibody.status is status
    if status is Antibody.POSITIVE:
        # positive, but the bound does not say on which side of 1.5 the index lies
        assert a.antibody.index_text == ">0.4"
        assert a.cell is not None
        assert a.cell.row == "antibody positive, no prior IS, index not available"
    else:
        assert a.per_1000 is None and not a.complete


# --- qualitative words --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Non-reactive", "Nonreactive", "NON-REACTIVE", "Not detected"])
def test_non_reactive_is_negative(text: str) -> None:
    """Negative words are read first: "non-reactive" contains the positive word "reactive"."""
    for value in ({"valueString": text}, {"valueCodeableConcept": concept(text)}):
        a = assess_fhir(observation("ab", JCV_ANTIBODY, **value), n=10)
        assert a.antibody.status is Antibody.NEGATIVE, value
        assert a.per_1000 == Decimal("0.02")


@pytest.mark.parametrize("text", ["Reactive", "Present", "Detected"])
def test_reactive_is_positive(text: str) -> None:
    a = assess_fhir(observation("ab", JCV_ANTIBODY, valueString=text), n=10)
    assert a.antibody.status is Antibody.POSITIVE


# --- natalizumab administrations that are not counted --------------------------------------------

def test_not_done_and_stopped_administrations_are_named_as_not_counted() -> None:
    """Only completed infusions count; every other natalizumab administration but a voided one
    (and one of unknown status, weighed as a possible infusion) is listed in the "not counted"
    finding with its status."""
    a = assess_fhir(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        administration("nd", "2026-10-01", status="not-done"),
        administration("eie", "2026-11-05", status="entered-in-error"),
        administration("stop", "2026-11-10", status="stopped"),
        n=24,
    )
    assert a.exposure.infusions == 24
    f = finding(a, "exposure-not-counted")
    assert set(f.sources) == {
        "MedicationAdministration/nd",
        "MedicationAdministration/stop",
    }
    assert f.message.startswith("2 natalizumab administration(s) not counted "
                                "(not-done, stopped)")


# --- an index entered by the clinician ----------------------------------------------------------

@pytest.mark.parametrize(("index", "status"), [("0.19", Antibody.NEGATIVE),
                                               ("0.20", Antibody.INDETERMINATE),
                                               ("0.40", Antibody.INDETERMINATE),
                                               ("0.41", Antibody.POSITIVE)])
def test_an_index_entered_without_a_status_reads_by_the_assay_cut_offs(
    index: str, status: Antibody
) -> None:
    """An entered index is a result like any other: 0.20–0.40 inclusive is indeterminate."""
    a = run(inputs(antibody_test(Antibody.NEGATIVE), infusions(10),
                   overrides=Overrides(index=Decimal(index))))
    assert a.antibody.status is status
    assert a.complete is (status is not Antibody.INDETERMINATE)


# --- natalizumab recorded before the first infusion ---------------------------------------------

@pytest.mark.parametrize(("kind", "days_before", "warned"), [
    ("MedicationRequest", 42, False),  # an order in the weeks before a first infusion is normal
    ("MedicationRequest", 43, True),
    ("MedicationStatement", 42, False),  # the same 42 days for a statement
    ("MedicationStatement", 43, True),  # a statement of use long before it: begun elsewhere
])
def test_natalizumab_recorded_before_the_first_infusion(
    kind: str, days_before: int, warned: bool
) -> None:
    earlier = medication("natalizumab", FIRST_INFUSION - timedelta(days=days_before),
                         agent_class=AgentClass.NATALIZUMAB, kind=kind)
    a = run(inputs(antibody_test(Antibody.NEGATIVE), infusions(10), [earlier]))
    assert ("exposure-undercount" in codes(a)) is warned
    if warned:
        assert finding(a, "exposure-undercount").sources == (earlier.source,)


# --- contradicting results are named ------------------------------------------------------------

def test_contradicting_results_are_named_with_their_dates() -> None:
    a = assess_fhir(
        observation("ab", JCV_ANTIBODY, **snomed_result("260385009", "Negative")),
        observation("idx", JCV_INDEX, **index_value("2.0")),
        n=10,
    )
    assert not a.complete
    message = finding(a, "antibody-discordant").message
    assert message.startswith("The anti-JCV results disagree (qualitative negative of "
                              "2026-09-15 and index 2 of 2026-09-15): ")


def test_a_result_that_contradicts_itself_is_named_once() -> None:
    """One Observation whose interpretation says positive and whose index is below 0.20."""
    a = assess_fhir(
        observation("idx", JCV_INDEX, valueQuantity={"value": Decimal("0.10")},
                    interpretation=[concept(None, (V3_INTERPRETATION, "POS"))]),
        n=10,
    )
    assert not a.complete
    assert finding(a, "antibody-discordant").message.startswith(
        "The anti-JCV results disagree (qualitative positive with index 0.1 of 2026-09-15): ")


@pytest.mark.parametrize(("index", "near"), [("1.6", True), ("1.61", False)])
def test_an_index_within_0_1_above_1_5_is_retested(index: str, near: bool) -> None:
    """Just above the cut-off a retest can move the index below 1.5: the advice agrees with the
    near-cut-off warning, up to and including 1.6."""
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(10)))
    assert (a.monitoring.antibody_retest_due is not None) is near
    assert ("near the 1.5 cut-off" in a.monitoring.antibody_retest) is near


# --- how medication records are dated -------------------------------------------------------------

def _aza_statement(**fields: Any) -> dict[str, Any]:
    resource = statement("aza", None, concept("azathioprine 50 mg"))
    resource.update(fields)
    return resource


def test_use_that_went_on_past_the_first_infusion_is_prior_and_concomitant() -> None:
    """effectivePeriod: begun before the first infusion and ended after it."""
    start = (FIRST_INFUSION - timedelta(days=200)).isoformat()
    end = (FIRST_INFUSION + timedelta(days=60)).isoformat()
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE),
                    _aza_statement(effectivePeriod={"start": start, "end": end}))
    assert a.prior_immunosuppressant.value is True
    assert "prior-is-concomitant" in codes(a)
    stopped = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE),
                          _aza_statement(effectivePeriod={"start": start,
                                                          "end": FIRST_INFUSION.isoformat()}))
    assert "prior-is-concomitant" in codes(stopped)  # still taken on the day of the first one
    ended = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE),
                        _aza_statement(effectivePeriod={
                            "start": start,
                            "end": (FIRST_INFUSION - timedelta(days=1)).isoformat()}))
    assert ended.prior_immunosuppressant.value is True
    assert "prior-is-concomitant" not in codes(ended)


@pytest.mark.parametrize(("asserted", "undated_warning"), [
    ((FIRST_INFUSION - timedelta(days=1)).isoformat(), False),  # use had begun by then: prior
    (FIRST_INFUSION.isoformat(), True),
])
def test_an_undated_statement_asserted_before_the_first_infusion_is_prior_use(
    asserted: str, undated_warning: bool
) -> None:
    """dateAsserted is when the history was written down: use had begun by then."""
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE),
                    _aza_statement(dateAsserted=asserted))
    assert a.prior_immunosuppressant.value is True
    assert ("prior-is-undated" in codes(a)) is undated_warning


def test_an_undated_statement_ended_before_the_first_infusion_is_prior_use() -> None:
    ended = (FIRST_INFUSION - timedelta(days=30)).isoformat()
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE),
                    _aza_statement(effectivePeriod={"end": ended}))
    assert a.prior_immunosuppressant.value is True
    assert "prior-is-undated" not in codes(a)


# --- lab results without a value, in components, with partial dates -------------------------------

def test_a_result_the_lab_did_not_produce_is_not_a_result() -> None:
    absent = {"dataAbsentReason": {"text": "specimen unsatisfactory"}}
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **absent), n=10)
    assert a.antibody.status is Antibody.UNKNOWN
    assert "antibody-indeterminate" not in codes(a) and "antibody-missing" in codes(a)
    with_value = assess_fhir(observation("ab", JCV_ANTIBODY, valueString="Positive", **absent),
                             n=10)
    assert with_value.antibody.status is Antibody.POSITIVE


def test_result_and_index_reported_as_components_of_one_observation() -> None:
    panel = {
        "resourceType": "Observation", "id": "panel", "status": "final",
        "code": {"text": "JCV panel"}, "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": "2026-09-15",
        "component": [
            "not a component",
            {"code": {"text": "unrelated"}, "valueString": "n/a"},
            {"code": JCV_ANTIBODY, "valueString": "Positive"},
            {"code": {"coding": JCV_INDEX["coding"]}, **index_value("2.0")},
        ],
    }
    a = assess_fhir(panel)
    assert a.antibody.status is Antibody.POSITIVE
    assert a.antibody.index == Decimal("2.0")
    assert a.per_1000 == Decimal("8.8")
    assert set(a.antibody.sources) == {"Observation/panel"}
    labels = sorted(r.label for r in a.antibody.history)
    assert labels == ["JC virus Ab [Presence] in Serum by Immunoassay", "component 3"]


@pytest.mark.parametrize(("written", "tested_on"), [
    ("2026", date(2026, 1, 1)),
    ("2026-09", date(2026, 9, 1)),
    ("2026-09-15T23:30:00-05:00", date(2026, 9, 15)),
])
def test_partial_result_dates_read_as_their_first_day(written: str, tested_on: date) -> None:
    a = assess_fhir(observation("ab", JCV_ANTIBODY, on=written, valueString="Negative"), n=10)
    assert a.antibody.tested_on == tested_on


@pytest.mark.parametrize("written", ["26", "2026-13", "2026-09-31", "Sept 2026"])
def test_unreadable_result_dates_leave_the_result_undated(written: str) -> None:
    a = assess_fhir(observation("ab", JCV_ANTIBODY, on=written, valueString="Negative"), n=10)
    assert a.antibody.status is Antibody.UNKNOWN
    assert "antibody-undated" in codes(a)


# --- codes, names and references ----------------------------------------------------------------

def test_an_interpretation_coded_without_a_system_is_read() -> None:
    a = assess_fhir(observation("ab", JCV_ANTIBODY, interpretation=[{"coding": [{"code": "POS"}]}]),
                    n=10)
    assert a.antibody.status is Antibody.POSITIVE


def test_a_medication_without_text_is_labelled_by_its_first_display() -> None:
    local = "http://example.org/local"
    drug = {"coding": [{"system": local, "code": "1", "display": "Imuran 50 mg"},
                       {"system": local, "code": "2", "display": "azathioprine"}]}
    before = (FIRST_INFUSION - timedelta(days=200)).isoformat()
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE), statement("aza", before, drug))
    [evidence] = a.prior_immunosuppressant.evidence
    assert (evidence.agent, evidence.label) == ("azathioprine", "Imuran 50 mg")


def test_a_configured_agent_without_known_names_is_matched_by_code_only() -> None:
    """A deployment may add an agent the app has no names for: other drugs are not it, and no
    drug makes the reading fail."""
    local = CodeSets(immunosuppressants={"cyclosporine": ("http://example.org/rx|CSA",)})
    before = (FIRST_INFUSION - timedelta(days=200)).isoformat()
    resources = [patient(), *natalizumab_series(30), observation("ab", JCV_ANTIBODY, **POSITIVE),
                 statement("asa", before, concept("aspirin 81 mg")),
                 statement("csa", before, concept("Neoral", ("http://example.org/rx", "CSA")))]
    a = run(extract_inputs(resources, PATIENT, code_sets=local))
    assert [e.agent for e in a.prior_immunosuppressant.evidence] == ["cyclosporine"]


@pytest.mark.parametrize("reference", ["Patient", "Patient/", "Group/7"])
def test_a_subject_that_names_no_patient_id_is_nobodys(reference: str) -> None:
    obs = observation("ab", JCV_ANTIBODY, valueString="Negative")
    obs["subject"] = {"reference": reference}
    a = run(extract_inputs([patient(), *natalizumab_series(10), obs], PATIENT))
    assert a.antibody.status is Antibody.NEGATIVE


def test_a_resource_of_another_patient_by_its_patient_element_is_refused() -> None:
    other = {"resourceType": "MedicationStatement", "id": "m", "status": "completed",
             "patient": {"reference": "Patient/someone-else"},
             "medicationCodeableConcept": concept("azathioprine")}
    with pytest.raises(ForeignResourceError):
        extract_inputs([patient(), other], PATIENT)


# --- two copies of one resource -----------------------------------------------------------------

def test_the_same_copy_twice_in_another_key_order_is_no_conflict() -> None:
    first = observation("idx", JCV_INDEX, **index_value("2.0"))
    again = dict(reversed(list(first.items())))
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE), first, again)
    assert "resource-conflict" not in codes(a)
    assert a.per_1000 == Decimal("8.8")


def test_copies_that_differ_only_in_a_number_are_a_conflict() -> None:
    low = observation("idx", JCV_INDEX, **index_value("0.9"))
    high = observation("idx", JCV_INDEX, **index_value("2.0"))
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE), low, high)
    assert finding(a, "resource-conflict").sources == ("Observation/idx",)
    assert a.per_1000 is None  # the copies give different cells: no estimate


# --- which results days apart make one test -----------------------------------------------------

D0 = date(2026, 9, 10)


def _on(days: int) -> str:
    return (D0 + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(("name", "resources", "tested_on"), [
    ("agreeing halves pair", [
        observation("ab", JCV_ANTIBODY, on=_on(0), **POSITIVE),
        observation("idx", JCV_INDEX, on=_on(2), **index_value("0.30"))], D0),
    ("an unreadable half does not pair", [
        observation("ab", JCV_ANTIBODY, on=_on(0), valueString="see note"),
        observation("idx", JCV_INDEX, on=_on(2), **index_value("2.0"))], D0 + timedelta(2)),
    ("an index of a negative call does not pair", [
        observation("ab", JCV_ANTIBODY, on=_on(0), valueString="Negative"),
        observation("idx", JCV_INDEX, on=_on(2), **index_value("2.0"))], D0 + timedelta(2)),
    ("two calls of one kind do not pair", [
        observation("ab1", JCV_ANTIBODY, on=_on(0), **POSITIVE),
        observation("ab2", JCV_ANTIBODY, on=_on(2), **POSITIVE)], D0 + timedelta(2)),
    ("a complete test takes no later half", [
        observation("ab", JCV_ANTIBODY, on=_on(0), **POSITIVE),
        observation("idx1", JCV_INDEX, on=_on(0), **index_value("1.0")),
        observation("idx2", JCV_INDEX, on=_on(2), **index_value("1.2"))], D0 + timedelta(2)),
    ("an index of exactly 0.20 agrees with a positive call", [
        observation("ab", JCV_ANTIBODY, on=_on(0), **POSITIVE),
        observation("idx", JCV_INDEX, on=_on(2), **index_value("0.20"))], D0),
    ("an index of 0.20-0.40 agrees with an indeterminate call", [
        observation("ab", JCV_ANTIBODY, on=_on(0), valueString="Equivocal"),
        observation("idx", JCV_INDEX, on=_on(2), **index_value("0.40"))], D0),
    ("an index bound that spans the cut-offs does not pair", [
        observation("ab", JCV_ANTIBODY, on=_on(0), **POSITIVE),
        observation("idx", JCV_INDEX, on=_on(2), valueString="<0.5")], D0 + timedelta(2)),
])
def test_results_days_apart_are_one_test_only_when_they_agree(
    name: str, resources: list[dict[str, Any]], tested_on: date
) -> None:
    a = assess_fhir(*resources, n=10)
    assert a.antibody.tested_on == tested_on, name


def test_resources_without_an_id_are_never_copies_of_each_other() -> None:
    older = observation("x", JCV_ANTIBODY, on="2025-09-15", valueString="Positive")
    newer = observation("x", JCV_ANTIBODY, valueString="Negative")
    del older["id"], newer["id"]
    a = assess_fhir(older, newer, n=10)
    assert "resource-conflict" not in codes(a)
    assert a.antibody.status is Antibody.NEGATIVE
    assert "antibody-seroreversion" in codes(a)


def test_an_administration_without_a_status_is_weighed_as_status_unknown() -> None:
    """No status is status unknown: a possible 25th infusion, so no estimate (§4); an odd
    status is listed as not counted, cut to 40 characters."""
    nameless = administration("odd", "2026-10-01")
    del nameless["status"]
    odd = administration("long", "2026-10-29", status="s" * 60)
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **POSITIVE), nameless, odd, n=24)
    assert a.exposure.infusions == 24
    assert finding(a, "exposure-not-counted").message.startswith(
        f"1 natalizumab administration(s) not counted ({'s' * 40})")
    assert finding(a, "exposure-unidentified").sources == ("MedicationAdministration/odd",)
    assert not a.complete


@pytest.mark.parametrize("index", ["0.10", "2.0"])
def test_an_indeterminate_call_and_a_clear_index_days_apart_are_discordant(index: str) -> None:
    a = assess_fhir(observation("ab", JCV_ANTIBODY, on=_on(0), valueString="Equivocal"),
                    observation("idx", JCV_INDEX, on=_on(2), **index_value(index)), n=10)
    assert "antibody-discordant" in codes(a)
    assert not a.complete


@pytest.mark.parametrize("ids", [("i1", "i2"), ("i2", "i1")])
def test_of_two_bounds_on_one_date_the_one_that_may_read_higher_is_used(
    ids: tuple[str, str]
) -> None:
    """"<=0.20" may be 0.20 (indeterminate); "<0.20" is certainly negative: the cautious reading
    of the two is the first, whichever resource the EHR lists first."""
    a = assess_fhir(observation(ids[0], JCV_INDEX, valueString="<0.20"),
                    observation(ids[1], JCV_INDEX, valueString="<=0.20"), n=10)
    assert a.antibody.status is not Antibody.NEGATIVE
    assert not a.complete
