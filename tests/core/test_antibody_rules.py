"""Anti-JCV rules stated one by one, so that a one-line change to any of them fails a test:
comparators in any notation, the three-day window, contradicting calls, the assessment date,
several index values of one date (docs/clinical-basis.md §3)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smart_app.fhir.extract import extract_inputs, parse_number
from smart_app.risk import Antibody, Assessment

from .builders import (
    AT,
    JCV_ANTIBODY,
    JCV_INDEX,
    PATIENT,
    antibody_test,
    codes,
    finding,
    infusions,
    inputs,
    lab,
    natalizumab_series,
    observation,
    patient,
    run,
)

POSITIVE = {"valueString": "Positive"}
NEGATIVE = {"valueString": "Negative"}


def chart(*observations: dict[str, Any], n: int = 30) -> Assessment:
    resources = [patient(), *natalizumab_series(n), *observations]
    return run(extract_inputs(resources, PATIENT))


def with_index(text: str, call: dict[str, Any] | None = POSITIVE) -> Assessment:
    """A test of 2026-09-15: the lab's call (when given) and an index written as ``text``."""
    parts = [observation("i", JCV_INDEX, valueString=text)]
    if call is not None:
        parts.append(observation("q", JCV_ANTIBODY, **call))
    return chart(*parts)


# --- comparators in any notation ------------------------------------------------------------

ABOVE_1_5 = ["≥1.51", "⩾1.51", "≧1.51", "＞1.5", "＞＝1.51", "greater than 1.5", "Greater Than 1.5",
             "more than 1.5", "greater than or equal to 1.51", "> 1.5", "≥ 1.51"]


@pytest.mark.parametrize("text", ABOVE_1_5)
def test_a_bound_above_1_5_in_any_notation_is_the_high_row(text: str) -> None:
    """"≥1.51" with a positive result is 8.8 per 1,000 (index > 1.5), not the 3.0 of "index
    not available" that an unread comparator gave."""
    a = with_index(text)
    assert a.cell is not None and a.cell.row == "antibody positive, no prior IS, index > 1.5"
    assert a.per_1000 == Decimal("8.8")
    assert "antibody-unreadable" not in codes(a)


BELOW_0_20 = ["≤0.19", "⩽0.19", "＜0.2", "＜＝0.19", "less than 0.2", "LESS THAN 0.20",
              "less than or equal to 0.19", "≤ 0.19"]


@pytest.mark.parametrize("text", BELOW_0_20)
def test_a_positive_call_with_an_index_below_0_20_in_any_notation_is_discordant(text: str) -> None:
    a = with_index(text)
    assert not a.complete
    assert a.antibody.discordant and "antibody-discordant" in codes(a)


@pytest.mark.parametrize("text", ["≤0.20", "less than or equal to 0.20", "＜＝0.20"])
def test_at_most_0_20_is_never_read_as_below_0_20(text: str) -> None:
    """"≤0.20" may be 0.20 (the confirmatory zone): reading it as "<0.20" would make an
    index alone a negative, the lowest row."""
    a = with_index(text, call=None)
    assert not a.complete
    assert a.antibody.status is Antibody.INDETERMINATE
    assert with_index(text.replace("0.20", "0.19"), call=None).antibody.status is Antibody.NEGATIVE


@pytest.mark.parametrize("text", ["≈1.5", "not less than 1.5", "≥≥1.5", "1.5≥", "less thanx 1.5",
                                  "≥", "greater than", "~1.5", "at least one"])
def test_an_unreadable_notation_stays_unreadable(text: str) -> None:
    """Never a number the lab did not write: the value is unreadable and said so."""
    assert parse_number(text) is None
    a = with_index(text)
    assert "antibody-unreadable" in codes(a)
    assert a.cell is None or a.cell.row != "antibody positive, no prior IS, index ≤ 1.5"
    alone = with_index(text, call=None)
    assert not alone.complete and "could not be read" in alone.missing[0].message


def test_a_unicode_comparator_in_a_quantity_is_read_as_the_fhir_code() -> None:
    a = chart(observation("q", JCV_ANTIBODY, **POSITIVE),
              observation("i", JCV_INDEX, valueQuantity={"value": Decimal("1.51"),
                                                          "comparator": "≥"}))
    assert a.per_1000 == Decimal("8.8")
    b = chart(observation("q", JCV_ANTIBODY, **POSITIVE),
              observation("i", JCV_INDEX, valueQuantity={"value": Decimal("1.5"),
                                                          "comparator": "ad"}))
    assert "antibody-unreadable" in codes(b)


NOTATIONS = {
    "<": ["<", "＜", "less than ", "Less Than", "less  than "],
    "<=": ["<=", "≤", "⩽", "≦", "＜＝", "less than or equal to ", "LESS THAN OR EQUAL TO"],
    ">": [">", "＞", "greater than ", "more than ", "GREATER THAN"],
    ">=": [">=", "≥", "⩾", "≧", "＞＝", "greater than or equal to "],
}
CALLS = {"positive": POSITIVE, "negative": NEGATIVE, "none": None}


@settings(max_examples=40, deadline=None)
@given(
    comparator=st.sampled_from(sorted(NOTATIONS)),
    written=st.integers(min_value=0, max_value=10**6),
    value=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3"), places=2),
    space=st.sampled_from(["", " ", "  "]),
    call=st.sampled_from(sorted(CALLS)),
)
def test_a_comparator_in_any_notation_gives_the_same_row(
    comparator: str, written: int, value: Decimal, space: str, call: str
) -> None:
    """ASCII, Unicode and words say the same bound: the same status, row and figure."""
    forms = NOTATIONS[comparator]
    notation = forms[written % len(forms)]
    ascii_form = with_index(f"{comparator}{value}", CALLS[call])
    other = with_index(f"{notation}{space}{value}", CALLS[call])
    assert parse_number(f"{notation}{space}{value}") == (comparator, value)
    assert other.antibody.status is ascii_form.antibody.status
    assert other.cell == ascii_form.cell
    assert codes(other) == codes(ascii_form)


# --- the window of three days and contradicting calls --------------------------------------------


@pytest.mark.parametrize("days", [0, 1, 2, 3])
@pytest.mark.parametrize("order", ["call first", "index first"])
def test_contradicting_results_up_to_exactly_three_days_apart_give_no_estimate(
    days: int, order: str
) -> None:
    """Negative call and index 2.0, 3 days apart, are still "within 3 days": no estimate."""
    index_on, call_on = TESTED_PAIR(days, order)
    a = run(inputs([lab(Antibody.NEGATIVE, on=call_on), lab(index="2.0", on=index_on)],
                   infusions(30)))
    assert not a.complete
    said = finding(a, "antibody-discordant").message
    assert call_on.isoformat() in said and index_on.isoformat() in said


@pytest.mark.parametrize("order", ["call first", "index first"])
def test_results_four_days_apart_are_two_tests_and_the_latest_decides(order: str) -> None:
    index_on, call_on = TESTED_PAIR(4, order)
    a = run(inputs([lab(Antibody.NEGATIVE, on=call_on), lab(index="2.0", on=index_on)],
                   infusions(30)))
    assert a.complete and "antibody-discordant" not in codes(a)
    expected = Antibody.NEGATIVE if call_on > index_on else Antibody.POSITIVE
    assert a.antibody.status is expected


def TESTED_PAIR(days: int, order: str) -> tuple[date, date]:  # noqa: N802 - a fixture table
    """(index date, call date), ``days`` apart, the latest on 2026-09-15."""
    latest, earlier = date(2026, 9, 15), date(2026, 9, 15) - timedelta(days=days)
    return (earlier, latest) if order == "index first" else (latest, earlier)


@pytest.mark.parametrize("days", [1, 2, 3])
@pytest.mark.parametrize("first", [Antibody.POSITIVE, Antibody.NEGATIVE])
def test_a_positive_and_a_negative_call_on_different_dates_within_the_window_contradict(
    days: int, first: Antibody
) -> None:
    second = Antibody.NEGATIVE if first is Antibody.POSITIVE else Antibody.POSITIVE
    earlier, latest = date(2026, 9, 15) - timedelta(days=days), date(2026, 9, 15)
    a = run(inputs([lab(first, on=earlier), lab(second, on=latest)], infusions(30)))
    assert not a.complete
    said = finding(a, "antibody-discordant").message
    assert f"qualitative {first.value} of {earlier.isoformat()}" in said
    assert f"qualitative {second.value} of {latest.isoformat()}" in said
    beyond = run(inputs([lab(first, on=latest - timedelta(days=4)), lab(second, on=latest)],
                        infusions(30)))
    assert beyond.complete and beyond.antibody.status is second


CONTRADICTING = {
    "negative with an index above 0.40": [lab(Antibody.NEGATIVE), lab(index="0.41")],
    "positive with an index below 0.20": [lab(Antibody.POSITIVE), lab(index="0.19")],
    "a positive and a negative call": [lab(Antibody.POSITIVE, on=date(2026, 9, 13)),
                                       lab(Antibody.NEGATIVE)],
    "two different calls of one date": [lab(Antibody.INDETERMINATE), lab(Antibody.POSITIVE)],
}


@pytest.mark.parametrize("case", list(CONTRADICTING))
def test_results_that_cannot_both_be_true_give_no_estimate(case: str) -> None:
    a = run(inputs(CONTRADICTING[case], infusions(30)))
    assert not a.complete and a.antibody.discordant


@pytest.mark.parametrize(("call", "index"), [(Antibody.NEGATIVE, "0.40"),
                                             (Antibody.POSITIVE, "0.20"),
                                             (Antibody.NEGATIVE, "0.19"),
                                             (Antibody.POSITIVE, "0.41")])
def test_results_that_agree_at_the_cut_offs_are_one_test(call: Antibody, index: str) -> None:
    a = run(inputs([lab(call), lab(index=index)], infusions(30)))
    assert a.complete and a.antibody.status is call and not a.antibody.discordant


def test_an_indeterminate_screen_followed_by_a_call_is_the_confirmatory_step() -> None:
    a = run(inputs([lab(Antibody.INDETERMINATE, on=date(2026, 9, 13)),
                    lab(Antibody.POSITIVE)], infusions(30)))
    assert a.complete and a.antibody.status is Antibody.POSITIVE


# --- several index values of one date --------------------------------------------------------


def test_two_identical_index_values_of_one_date_give_no_several_values_warning() -> None:
    a = run(inputs([lab(Antibody.POSITIVE), lab(index="2.0"), lab(index="2.00")], infusions(30)))
    assert a.per_1000 == Decimal("8.8")
    assert "index-duplicate" not in codes(a)


def test_two_different_index_values_of_one_date_use_the_higher_and_warn() -> None:
    a = run(inputs([lab(Antibody.POSITIVE), lab(index="1.2"), lab(index="1.6")], infusions(30)))
    assert a.antibody.index == Decimal("1.6") and a.per_1000 == Decimal("8.8")
    assert "1.2, 1.6" in finding(a, "index-duplicate").message


# --- the assessment date -----------------------------------------------------------------------


def test_a_result_dated_on_the_assessment_date_is_used() -> None:
    """"Records dated later are not used": a result of the assessment date itself is not
    later. Leaving out the index 2.0 of that date would give 0.2 (the older negative)."""
    older = antibody_test(Antibody.NEGATIVE, "0.1", on=date(2026, 9, 15))
    today = antibody_test(Antibody.POSITIVE, "2.0", on=AT)
    a = run(inputs([*older, *today], infusions(30)), at=AT)
    assert a.antibody.tested_on == AT and a.per_1000 == Decimal("8.8")
    assert "after-assessment-date" not in codes(a)
    # With a result of the next day left out, the one of the assessment date is still used.
    tomorrow = antibody_test(Antibody.NEGATIVE, "0.1", on=AT + timedelta(days=1))
    b = run(inputs([*older, *today, *tomorrow], infusions(30)), at=AT)
    assert b.antibody.tested_on == AT and b.per_1000 == Decimal("8.8")
    assert finding(b, "after-assessment-date").sources == tuple(r.source for r in tomorrow)
    before = run(inputs([*older, *today], infusions(30)), at=AT - timedelta(days=1))
    assert before.per_1000 == Decimal("0.2")
    assert "after-assessment-date" in codes(before)
