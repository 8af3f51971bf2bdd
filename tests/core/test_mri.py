"""The brain-MRI due date (docs/clinical-basis.md §6): last MRI + the monitoring interval."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from smart_app.risk import Antibody
from smart_app.risk.mri import elapsed
from smart_app.risk.records import BrainMri, Inputs
from smart_app.risk.result import MriState

from .builders import AT, antibody_test, infusions, inputs, run

HIGHER = inputs(antibody_test(Antibody.POSITIVE, "1.51"), infusions(25))  # every 3–4 months
NEGATIVE = inputs(antibody_test(Antibody.NEGATIVE), infusions(25))  # every 12 months


def mri(on: date | None, kind: str = "report", ref: str = "DiagnosticReport/mri-1") -> BrainMri:
    return BrainMri(ref, on, kind, "final", "MR Brain W and WO contrast")


def schedule(data: Inputs, *mris: BrainMri, at: date = AT, **kw: tuple[str, ...]):  # type: ignore[no-untyped-def]
    a = run(replace(data, mris=mris, **kw), at=at)
    assert a.monitoring.mri_schedule is not None
    return a.monitoring.mri_schedule


def test_higher_risk_due_three_months_after_the_last_mri() -> None:
    s = schedule(HIGHER, mri(date(2026, 10, 15)))
    assert s.state is MriState.SCHEDULED
    assert s.last == date(2026, 10, 15) and s.due == date(2027, 1, 15)
    assert s.overdue_from == date(2027, 2, 15)
    assert s.text == "due 2027-01-15"
    assert s.sources == ("DiagnosticReport/mri-1",)


def test_between_three_and_four_months_is_due_not_overdue() -> None:
    s = schedule(HIGHER, mri(date(2026, 8, 1)))  # due 2026-11-01, overdue after 2026-12-01
    assert s.state is MriState.DUE and s.text == "due now (since 2026-11-01)"
    assert not s.actionable


def test_due_today() -> None:
    s = schedule(HIGHER, mri(date(2026, 8, 25)))
    assert s.state is MriState.DUE and s.text == "due today (2026-11-25)"


def test_after_four_months_overdue_counted_from_the_due_date() -> None:
    s = schedule(HIGHER, mri(date(2026, 7, 4)))  # due 2026-10-04; 52 days before AT
    assert s.state is MriState.OVERDUE and s.actionable
    assert s.text == "overdue by 7 weeks (due 2026-10-04)"


def test_the_latest_mri_of_every_kind_counts() -> None:
    s = schedule(HIGHER, mri(date(2026, 5, 1)),
                 mri(date(2026, 10, 15), "study", "ImagingStudy/s1"),
                 mri(date(2026, 9, 1), "procedure", "Procedure/p1"))
    assert s.last == date(2026, 10, 15) and s.sources == ("ImagingStudy/s1",)


def test_antibody_negative_due_after_twelve_months() -> None:
    s = schedule(NEGATIVE, mri(date(2026, 1, 10)))
    assert s.text == "due 2027-01-10"
    s = schedule(NEGATIVE, mri(date(2025, 8, 1)))
    assert s.state is MriState.OVERDUE and s.text == "overdue by 3 months (due 2026-08-01)"


def test_no_mri_on_record() -> None:
    s = schedule(HIGHER)
    assert s.state is MriState.NONE_ON_RECORD and s.text == "no brain MRI on record"


@pytest.mark.parametrize("unread", ["DiagnosticReport", "ImagingStudy", "Procedure"])
def test_an_unread_source_makes_the_history_unknown_never_none(unread: str) -> None:
    s = schedule(HIGHER, unread=(unread,))
    assert s.state is MriState.UNKNOWN and "no brain MRI on record" not in s.text
    assert "could not be read" in s.text and unread in s.text


def test_some_sources_not_offered_is_not_unknown() -> None:
    s = schedule(HIGHER, not_offered=("ImagingStudy",))
    assert s.state is MriState.NONE_ON_RECORD


def test_no_imaging_source_offered_is_unknown() -> None:
    s = schedule(HIGHER, not_offered=("DiagnosticReport", "ImagingStudy", "Procedure"))
    assert s.state is MriState.UNKNOWN and "no imaging records were available" in s.text


def test_found_mri_with_an_unread_source_says_a_later_one_may_be_missing() -> None:
    s = schedule(HIGHER, mri(date(2026, 10, 15)), unread=("Procedure",))
    assert s.text.startswith("due 2027-01-15") and "a later MRI may not be shown" in s.text


def test_undated_mri_only_is_unknown() -> None:
    s = schedule(HIGHER, mri(None))
    assert s.state is MriState.UNKNOWN and "no date" in s.text


def test_mri_after_the_assessment_date_is_not_yet_known() -> None:
    s = schedule(HIGHER, mri(date(2026, 12, 1)))
    assert s.state is MriState.NONE_ON_RECORD


def test_no_estimate_uses_the_cautious_interval_for_the_due_date() -> None:
    data = inputs(antibody_test(Antibody.INDETERMINATE), infusions(30))
    s = schedule(data, mri(date(2026, 10, 15)))
    assert s.due == date(2027, 1, 15)  # 3 months: the antibody could be positive


@pytest.mark.parametrize(("since", "words"), [
    (date(2026, 11, 24), "1 day"), (date(2026, 11, 12), "13 days"),
    (date(2026, 11, 11), "2 weeks"), (date(2026, 9, 24), "8 weeks"),
    (date(2026, 9, 23), "2 months"), (date(2025, 11, 25), "12 months"),
])
def test_elapsed_in_clinic_words(since: date, words: str) -> None:
    assert elapsed(since, AT) == words
