"""Anti-JCV antibody status and index, from records and from Observations.

The rules are those of docs/clinical-basis.md §3.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from smart_app.fhir.extract import extract_inputs
from smart_app.fhir.present import assessment_json, text_summary
from smart_app.risk import Antibody, Assessment, Overrides
from smart_app.risk.records import ResultUse

from .builders import (
    JCV_ANTIBODY,
    JCV_INDEX,
    PATIENT,
    V3_INTERPRETATION,
    antibody_test,
    codes,
    concept,
    finding,
    index_value,
    infusions,
    inputs,
    lab,
    natalizumab_series,
    observation,
    patient,
    run,
    snomed_result,
)

NEG_0_24 = Decimal("0.02")


def assess_fhir(*observations: dict[str, Any], n: int = 10) -> Assessment:
    resources = [patient(), *natalizumab_series(n), *observations]
    return run(extract_inputs(resources, PATIENT))


# --- status from the qualitative result --------------------------------------------------------

QUALITATIVE_VALUES: dict[str, tuple[dict[str, Any], Antibody]] = {
    "SNOMED positive": (snomed_result("10828004"), Antibody.POSITIVE),
    "SNOMED negative": (snomed_result("260385009"), Antibody.NEGATIVE),
    "SNOMED indeterminate": (snomed_result("82334004"), Antibody.INDETERMINATE),
    "text Positive": ({"valueCodeableConcept": concept("Positive")}, Antibody.POSITIVE),
    "text Negative": ({"valueCodeableConcept": concept("Negative")}, Antibody.NEGATIVE),
    "text Not detected": ({"valueCodeableConcept": concept("Not detected")}, Antibody.NEGATIVE),
    "text Detected": ({"valueCodeableConcept": concept("Detected")}, Antibody.POSITIVE),
    "text Equivocal": ({"valueCodeableConcept": concept("Equivocal")}, Antibody.INDETERMINATE),
    "valueString POSITIVE": ({"valueString": "POSITIVE"}, Antibody.POSITIVE),
    "valueString negative": ({"valueString": "negative"}, Antibody.NEGATIVE),
    "valueString indeterminate": ({"valueString": "Indeterminate"}, Antibody.INDETERMINATE),
    "interpretation POS": (
        {"interpretation": [concept(None, (V3_INTERPRETATION, "POS"))]}, Antibody.POSITIVE
    ),
    "interpretation NEG": (
        {"interpretation": [concept(None, (V3_INTERPRETATION, "NEG"))]}, Antibody.NEGATIVE
    ),
    "interpretation IND": (
        {"interpretation": [concept(None, (V3_INTERPRETATION, "IND"))]}, Antibody.INDETERMINATE
    ),
}


@pytest.mark.parametrize("case", list(QUALITATIVE_VALUES))
def test_status_from_the_qualitative_result(case: str) -> None:
    value, expected = QUALITATIVE_VALUES[case]
    a = assess_fhir(observation("ab", JCV_ANTIBODY, **value))
    assert a.antibody.status is expected
    assert a.antibody.sources == ("Observation/ab",)
    if expected is Antibody.POSITIVE:
        assert a.cell is not None
        assert a.cell.row == "antibody positive, no prior IS, index not available"
        assert a.per_1000 == Decimal("1")
    elif expected is Antibody.NEGATIVE:
        assert a.per_1000 == NEG_0_24
    else:
        assert not a.complete
        assert "antibody-indeterminate" in codes(a)


def test_qualitative_result_decides_over_the_index_when_both_exist() -> None:
    a = assess_fhir(
        observation("ab", JCV_ANTIBODY, **snomed_result("10828004", "Positive")),
        observation("idx", JCV_INDEX, **index_value("0.35")),
    )
    assert a.antibody.status is Antibody.POSITIVE
    assert a.antibody.index == Decimal("0.35")
    assert a.per_1000 == Decimal("0.2")  # positive, index ≤ 1.5, 0–24


# --- status from the index alone ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("index", "expected"),
    [
        ("0.00", Antibody.NEGATIVE),
        ("0.19", Antibody.NEGATIVE),
        ("0.199", Antibody.NEGATIVE),
        ("0.20", Antibody.INDETERMINATE),
        ("0.30", Antibody.INDETERMINATE),
        ("0.40", Antibody.INDETERMINATE),
        ("0.41", Antibody.POSITIVE),
        ("2.5", Antibody.POSITIVE),
    ],
)
def test_status_from_the_index_without_a_qualitative_result(
    index: str, expected: Antibody
) -> None:
    a = run(inputs([lab(index=index)], infusions(10)))
    assert a.antibody.status is expected
    if expected is Antibody.INDETERMINATE:
        assert not a.complete and a.per_1000 is None and a.qualitative is None
        assert finding(a, "antibody-indeterminate").severity == "missing"
    else:
        assert a.complete


def test_index_only_observation_from_fhir() -> None:
    a = assess_fhir(observation("idx", JCV_INDEX, **index_value("0.41")))
    assert a.antibody.status is Antibody.POSITIVE
    assert a.per_1000 == Decimal("0.2")


def test_less_than_comparator_reads_as_a_negative_screen() -> None:
    a = assess_fhir(
        observation("idx", JCV_INDEX, valueQuantity={"value": Decimal("0.20"), "comparator": "<"})
    )
    assert a.antibody.status is Antibody.NEGATIVE
    assert a.antibody.index_text == "<0.2"  # kept as the bound the lab reported
    assert a.per_1000 == NEG_0_24


# --- which test counts --------------------------------------------------------------------------

def test_latest_test_wins_whatever_the_order_given() -> None:
    latest = antibody_test(Antibody.NEGATIVE, "0.15", on=date(2026, 9, 1))
    older = antibody_test(Antibody.POSITIVE, "2.0", on=date(2025, 9, 1))
    a = run(inputs([*latest, *older], infusions(30)))
    assert a.antibody.status is Antibody.NEGATIVE
    assert a.antibody.tested_on == date(2026, 9, 1)
    assert a.per_1000 == Decimal("0.2")

    newer_positive = antibody_test(Antibody.POSITIVE, "0.8", on=date(2026, 10, 1))
    a = run(inputs([*latest, *older, *newer_positive], infusions(30)))
    assert a.antibody.status is Antibody.POSITIVE
    assert a.antibody.index == Decimal("0.8")
    assert a.per_1000 == Decimal("1.1")


# --- a repeat positive reported without an index ---------------------------------------------


def test_a_repeat_positive_without_an_index_keeps_the_earlier_higher_index() -> None:
    """Positive 2.0, then positive without an index the next day: 8.8 (index > 1.5), never the
    3.0 of "index not available", and the page names the earlier index and its date."""
    older = antibody_test(Antibody.POSITIVE, "2.0", on=date(2026, 9, 14))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 15))
    a = run(inputs([*older, *latest], infusions(30)))
    assert a.per_1000 == Decimal("8.8")
    assert a.cell is not None and a.cell.row == "antibody positive, no prior IS, index > 1.5"
    assert a.antibody.index == Decimal("2.0") and a.antibody.tested_on == date(2026, 9, 15)
    assert a.antibody.index_from == date(2026, 9, 14)
    said = finding(a, "index-missing")
    assert "no index" in said.message and "2 of 2026-09-14, is used" in said.message
    assert older[1].source in said.sources and older[1].source in a.basis
    assert a.qualitative == "high"


def test_an_earlier_index_is_shown_with_its_own_date_not_the_latest_tests() -> None:
    older = antibody_test(Antibody.POSITIVE, "2.0", on=date(2026, 9, 14))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 15))
    a = run(inputs([*older, *latest], infusions(30)))
    shown = assessment_json(a)["inputs"]["antibody"]
    assert shown["indexText"] == "2 (test of 2026-09-14)" and shown["testedOn"] == "2026-09-15"
    assert "index 2 of 2026-09-14 (tested 2026-09-15" in text_summary(a)


def test_a_repeat_positive_uses_the_most_recent_earlier_index() -> None:
    oldest = antibody_test(Antibody.POSITIVE, "0.9", on=date(2025, 9, 1))
    older = antibody_test(Antibody.POSITIVE, "1.8", on=date(2026, 3, 1))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 1))
    a = run(inputs([*oldest, *older, *latest], infusions(30)))
    assert a.antibody.index == Decimal("1.8") and a.per_1000 == Decimal("8.8")
    b = run(inputs([*older, *oldest[:1], *antibody_test(Antibody.POSITIVE, "0.9",
                                                        on=date(2026, 6, 1)), *latest],
                   infusions(30)))
    # The most recent earlier index (0.9) gives a lower row than "index not available": that
    # row, with a warning naming the earlier index; never the older, higher 1.8 either.
    assert b.antibody.index is None and b.per_1000 == Decimal("3")


def test_an_earlier_index_near_the_cut_off_says_so() -> None:
    older = antibody_test(Antibody.POSITIVE, "1.55", on=date(2026, 3, 1))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 1))
    a = run(inputs([*older, *latest], infusions(30)))
    assert a.per_1000 == Decimal("8.8")
    assert "near the 1.5 cut-off" in finding(a, "index-missing").message


def test_an_earlier_index_with_a_lower_row_is_not_used_but_named() -> None:
    older = antibody_test(Antibody.POSITIVE, "0.8", on=date(2026, 3, 1))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 1))
    a = run(inputs([*older, *latest], infusions(30)))
    assert a.antibody.index is None and a.antibody.index_from is None
    assert a.cell is not None
    assert a.cell.row == "antibody positive, no prior IS, index not available"
    said = finding(a, "index-missing").message
    assert "0.8 of 2026-03-01" in said and "'index not available' row is used" in said


def test_an_earlier_index_is_not_taken_over_a_clinicians_index_not_available() -> None:
    older = antibody_test(Antibody.POSITIVE, "2.0", on=date(2026, 3, 1))
    latest = antibody_test(Antibody.POSITIVE, None, on=date(2026, 9, 1))
    a = run(inputs([*older, *latest], infusions(30), overrides=Overrides(clear_index=True)))
    assert a.antibody.index is None and a.per_1000 == Decimal("3")


@pytest.mark.parametrize("status", ["preliminary", "registered"])
def test_preliminary_result_is_shown_but_not_used(status: str) -> None:
    final = observation("idx-final", JCV_INDEX, on="2026-03-01", **index_value("1.20"))
    prelim = observation(
        "idx-prelim", JCV_INDEX, on="2026-09-15", status=status, **index_value("1.90")
    )
    a = assess_fhir(final, prelim, n=30)
    assert a.antibody.index == Decimal("1.20")
    assert a.per_1000 == Decimal("1.1")
    assert [r.source for r in a.antibody.not_used] == ["Observation/idx-prelim"]
    warning = finding(a, "antibody-preliminary")
    assert warning.sources == ("Observation/idx-prelim",)
    assert "not used" in warning.message


def test_older_preliminary_result_is_listed_but_never_used() -> None:
    prelim = observation("idx-old", JCV_INDEX, on="2026-01-10", status="preliminary",
                         **index_value("3.0"))
    final = observation("idx-final", JCV_INDEX, on="2026-09-15", **index_value("1.2"))
    a = assess_fhir(prelim, final, n=30)
    assert a.antibody.index == Decimal("1.2")
    assert [r.source for r in a.antibody.not_used] == ["Observation/idx-old"]


def test_preliminary_results_of_one_day_are_one_warning() -> None:
    final = observation("idx-final", JCV_INDEX, on="2026-03-01", **index_value("1.2"))
    prelim_ab = observation("ab-p", JCV_ANTIBODY, on="2026-09-15", status="preliminary",
                            **snomed_result("10828004"))
    prelim_idx = observation("idx-p", JCV_INDEX, on="2026-09-15", status="preliminary",
                             **index_value("1.9"))
    a = assess_fhir(final, prelim_ab, prelim_idx, n=30)
    warnings = [f for f in a.findings if f.code.value == "antibody-preliminary"]
    assert len(warnings) == 1
    assert set(warnings[0].sources) == {"Observation/ab-p", "Observation/idx-p"}
    assert "2026-09-15" in warnings[0].message
    assert a.per_1000 == Decimal("1.1")


def test_only_a_preliminary_result_gives_no_estimate() -> None:
    a = assess_fhir(
        observation("ab", JCV_ANTIBODY, status="preliminary", **snomed_result("10828004"))
    )
    assert not a.complete
    assert {"antibody-missing", "antibody-preliminary"} <= codes(a)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_voided_result_is_ignored_entirely(status: str) -> None:
    final = observation("idx-final", JCV_INDEX, on="2026-03-01", **index_value("0.80"))
    void = observation("idx-void", JCV_INDEX, on="2026-09-15", status=status,
                       **index_value("3.10"))
    a = assess_fhir(final, void, n=50)
    assert a.antibody.index == Decimal("0.80")
    assert a.per_1000 == Decimal("1.4")
    assert a.antibody.not_used == ()
    assert all("Observation/idx-void" not in f.sources for f in a.findings)
    assert "Observation/idx-void" not in {r.source for r in a.antibody.history}


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_results_are_used(status: str) -> None:
    a = assess_fhir(
        observation("idx", JCV_INDEX, status=status, **index_value("2.0")), n=30
    )
    assert a.per_1000 == Decimal("8.8")


def test_no_result_gives_no_estimate_and_says_what_to_order() -> None:
    a = run(inputs([], infusions(10)))
    assert not a.complete
    assert (a.cell, a.per_1000, a.one_in, a.qualitative) == (None, None, None, None)
    missing = finding(a, "antibody-missing")
    assert missing.severity == "missing"
    assert "Order an anti-JCV antibody test" in missing.message
    assert a.missing == (missing,)


def test_indeterminate_latest_result_gives_no_estimate_even_after_a_positive() -> None:
    older = antibody_test(Antibody.POSITIVE, "2.0", on=date(2026, 3, 1))
    latest = antibody_test(Antibody.INDETERMINATE, "0.30")
    a = run(inputs([*older, *latest], infusions(30)))
    assert not a.complete
    message = finding(a, "antibody-indeterminate").message
    assert "2026-09-15" in message and "confirmatory" in message


def test_contradicting_qualitative_results_on_one_day_give_no_estimate() -> None:
    a = run(inputs([lab(Antibody.POSITIVE), lab(Antibody.NEGATIVE)], infusions(10)))
    assert a.antibody.status is Antibody.INDETERMINATE
    assert not a.complete
    assert "antibody-discordant" in codes(a)


def test_two_indices_on_one_day_take_the_higher() -> None:
    for order in (("1.7", "1.2"), ("1.2", "1.7")):
        labs = [lab(Antibody.POSITIVE), *(lab(index=i) for i in order)]
        a = run(inputs(labs, infusions(30)))
        assert a.antibody.index == Decimal("1.7")
        assert a.per_1000 == Decimal("8.8")


def test_shown_results_are_marked_show_not_use() -> None:
    results = extract_inputs(
        [patient(), observation("p", JCV_INDEX, status="preliminary", **index_value("1"))],
        PATIENT,
    ).lab_results
    assert [r.use for r in results] == [ResultUse.SHOW]
