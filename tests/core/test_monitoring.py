"""Monitoring advice (docs/clinical-basis.md §6) and calendar-month arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from smart_app.risk import Antibody
from smart_app.risk.dates import add_months, months_between

from .builders import BEFORE_NATALIZUMAB, antibody_test, infusions, inputs, lab, medication, run

MRI_3_4 = "every 3–4 months with FLAIR and DWI"


@pytest.mark.parametrize(("n", "frequent"), [(0, False), (17, False), (18, True), (60, True)])
def test_mri_interval_for_antibody_positive(n: int, frequent: bool) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), infusions(n)))
    assert a.monitoring.mri.startswith(
        "Brain MRI every 3–4 months" if frequent else "Brain MRI every 12 months"
    )
    assert MRI_3_4 in a.monitoring.mri  # early: says when it becomes 3–4 monthly


@pytest.mark.parametrize("n", [0, 18, 60])
def test_mri_every_12_months_when_negative(n: int) -> None:
    a = run(inputs(antibody_test(Antibody.NEGATIVE, "0.1"), infusions(n)))
    assert a.monitoring.mri == "Brain MRI every 12 months (antibody negative)."
    assert "3–4 months" not in a.monitoring.mri


@pytest.mark.parametrize(
    ("tested", "due"),
    [
        (date(2026, 9, 15), date(2027, 3, 15)),
        (date(2026, 8, 31), date(2027, 2, 28)),
        (date(2027, 8, 31), date(2028, 2, 29)),
        (date(2026, 3, 31), date(2026, 9, 30)),
    ],
)
def test_negative_retest_due_six_calendar_months_after_the_latest_test(
    tested: date, due: date
) -> None:
    a = run(inputs(antibody_test(Antibody.NEGATIVE, "0.1", on=tested), infusions(10)),
            at=max(tested, date(2026, 11, 25)))
    assert a.monitoring.antibody_retest_due == due
    at = max(tested, date(2026, 11, 25))
    said = f"next due {due}" if due >= at else f"overdue since {due}: retest now"
    assert said in a.monitoring.antibody_retest
    assert "every 6 months" in a.monitoring.antibody_retest


def test_retest_due_counts_from_the_latest_test_not_an_older_one() -> None:
    labs = [*antibody_test(Antibody.NEGATIVE, "0.1", on=date(2025, 1, 31)),
            *antibody_test(Antibody.NEGATIVE, "0.1", on=date(2026, 8, 31))]
    a = run(inputs(labs, infusions(10)))
    assert a.monitoring.antibody_retest_due == date(2027, 2, 28)


def test_positive_low_index_retest_due() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.2", on=date(2026, 8, 31)), infusions(30)))
    assert a.monitoring.antibody_retest_due == date(2027, 2, 28)
    assert "next due 2027-02-28" in a.monitoring.antibody_retest


@pytest.mark.parametrize("prior_is,index", [(False, "2.0"), (True, "0.9")])
def test_no_index_retest_when_it_cannot_change_the_stratum(prior_is: bool, index: str) -> None:
    meds = [medication("azathioprine", BEFORE_NATALIZUMAB)] if prior_is else []
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(30), meds))
    assert a.monitoring.antibody_retest_due is None
    assert "does not change the stratum" in a.monitoring.antibody_retest


def test_indeterminate_asks_for_the_confirmatory_test_now() -> None:
    a = run(inputs([lab(index="0.3")], infusions(30)))
    assert a.monitoring.antibody_retest_due == date(2026, 11, 25)
    assert "confirmatory test" in a.monitoring.antibody_retest
    assert "until the antibody result is resolved" in a.monitoring.mri


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2027, 8, 31), 6, date(2028, 2, 29)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 9, 15), -18, date(2025, 3, 15)),
    ],
)
def test_add_months_clamps_to_the_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (date(2026, 3, 25), date(2026, 11, 25), 8),
        (date(2026, 3, 26), date(2026, 11, 25), 7),
        (date(2026, 8, 31), date(2027, 2, 28), 6),
        (date(2026, 11, 25), date(2026, 11, 1), 0),
    ],
)
def test_months_between_counts_whole_months(start: date, end: date, months: int) -> None:
    assert months_between(start, end) == months
