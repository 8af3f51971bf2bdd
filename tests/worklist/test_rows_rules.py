"""The worklist row's own rules, at their edges: when a retest is due, whether the count crossed
24, who the patient is, which rows come first, and what a row carried over from the previous run
says. The round-trip tests show the same through a Bulk export; here each rule is stated alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from smart_app.risk import Antibody
from smart_app.risk.records import BrainMri
from smart_app.worklist import rows
from smart_app.worklist.rows import carried_row, row_for
from tests.core.builders import AT, antibody_test, infusions, inputs, run

NOV_30 = date(2026, 11, 30)


@pytest.mark.parametrize(("due", "at", "status"), [
    (None, AT, "not needed"),
    (date(2026, 11, 24), AT, "overdue"),          # the day before
    (AT, AT, "due this month"),                   # on the day: due, not yet overdue
    (NOV_30, AT, "due this month"),               # the month's last day
    (date(2026, 12, 1), AT, "scheduled"),         # next month
    (date(2027, 2, 28), date(2027, 2, 1), "due this month"),
    (date(2027, 3, 1), date(2027, 2, 28), "scheduled"),
])
def test_retest_status_by_due_date(due: date | None, at: date, status: str) -> None:
    assert rows.retest_status(due, at) == status


@pytest.mark.parametrize(("previous", "now", "said"), [
    (None, None, "unknown"), (24, None, "unknown"),   # never claimed from an unknown count
    (None, 30, "first run"),
    (24, 25, "yes"), (20, 30, "yes"),
    (23, 24, "no"), (25, 26, "no"), (24, 24, "no"),
])
def test_crossing_24_is_claimed_only_from_two_known_counts(previous: int | None,
                                                           now: int | None, said: str) -> None:
    assert rows.crossed(previous, now) == said


def test_the_name_is_the_official_one_else_usual_else_any() -> None:
    patient = {"name": [
        {"use": "nickname", "text": "Jo"},
        {"use": "usual", "given": ["Joanna"], "family": "Smith"},
        {"use": "official", "given": ["Joanna", "M"], "family": "Smith-Jones"},
    ]}
    assert rows.display_name(patient) == "Joanna M Smith-Jones"
    assert rows.display_name({"name": patient["name"][:2]}) == "Joanna Smith"
    assert rows.display_name({"name": [{"text": "  Jo  "}]}) == "Jo"
    assert rows.display_name({"name": [{"text": " "}, {"family": "Lee"}]}) == "Lee"
    assert rows.display_name({"name": [{"given": [3, "Ann"]}]}) == "Ann"
    assert rows.display_name({"name": "Jo"}) == rows.display_name(None) == ""


def test_the_mrn_is_the_identifier_typed_mr_else_labelled_mrn_else_the_first() -> None:
    ssn = {"type": {"coding": [{"code": "SS"}]}, "value": "123"}
    mr = {"type": {"coding": [{"code": "MR"}]}, "value": "M-1"}
    labelled = {"type": {"text": " mrn "}, "value": "M-2"}
    assert rows.mrn({"identifier": [ssn, mr, labelled]}) == "M-1"
    assert rows.mrn({"identifier": [ssn, labelled]}) == "M-2"
    assert rows.mrn({"identifier": [{"value": 7}, ssn]}) == "123"
    assert rows.mrn({"identifier": {"value": "x"}}) == rows.mrn(None) == ""


def test_rows_without_an_estimate_come_first_then_the_highest_figure() -> None:
    def row(name: str, status: str, per_1000: str) -> rows.Row:
        unread = rows.unread_row(patient_id=name, patient={"name": [{"text": name}]}, at=AT,
                                 reason="r")
        return replace(unread, status=status, per_1000=per_1000)

    listed = [row("Ann", "estimate", "1.1"), row("Bob", "estimate", "8.8"),
              row("Cy", "no estimate", ""), row("Al", "estimate", "1.1")]
    assert [r.name for r in sorted(listed, key=rows.sort_key)] == ["Cy", "Bob", "Al", "Ann"]
    assert rows.sort_key(listed[1])[1] == Decimal("-8.8")


def test_previous_counts_skip_charts_whose_count_was_unknown() -> None:
    earlier = [
        {"patient": "a", "infusions": 20, "missing_or_stale": []},
        {"patient": "b", "infusions": 20, "missing_or_stale": ["chart-unread"]},
        {"patient": "c", "infusions": 20, "missing_or_stale": ["exposure-unread"]},
        {"patient": "d", "infusions": None},
        {"patient": "e", "infusions": "20"},
        "garbage",
    ]
    assert rows.previous_infusions(earlier) == {"a": 20}  # type: ignore[arg-type]


# -- a row carried over from the previous run (the chart has not changed since) -------------

def previous(**changes: Any) -> dict[str, Any]:
    """The worklist.json row a previous run wrote for a quiet patient."""
    a = run(inputs(antibody_test(Antibody.NEGATIVE, on=date(2026, 9, 15)), infusions(30)))
    data = row_for(a, patient_id="p1", patient=None, at=date(2026, 10, 1)).as_json()
    data.update(changes)
    return data


def test_a_carried_row_keeps_the_assessment_and_says_where_it_came_from() -> None:
    data = previous()
    carried = carried_row(data, at=AT, since_run="2026-10-01T06:00:00Z")
    assert (carried.per_1000, carried.category, carried.infusions) == (
        data["per_1000"], data["category"], 30)
    assert carried.previous_infusions == 30 and carried.crossed_24 == "no"
    assert carried.data_notes == ("chart unchanged since the run of 2026-10-01T06:00:00Z: "
                                  "assessment carried over")
    assert carried.findings == tuple((f["code"], f["message"]) for f in data["findings"])


def test_a_carried_row_judges_the_retest_again_on_the_new_date() -> None:
    assert carried_row(previous(retest_due="2026-11-26"), at=AT, since_run="r").retest == (
        "due this month")
    assert carried_row(previous(retest_due="2026-11-24"), at=AT, since_run="r").retest == (
        "overdue")
    assert carried_row(previous(retest_due=""), at=AT, since_run="r").retest == "not needed"


def test_a_carried_mri_falling_due_since_the_last_run_is_due_this_month() -> None:
    # "overdue" waits for a re-read of the chart; either way the row is on this month's list.
    for due in ("2026-11-10", "2026-11-29"):
        carried = carried_row(previous(mri="scheduled", mri_due=due, mri_last="2025-11-10"),
                              at=AT, since_run="r")
        assert (carried.mri, carried.mri_due, carried.mri_last) == (
            "due this month", due, "2025-11-10")
        assert carried.due_this_month
    later = carried_row(previous(mri="scheduled", mri_due="2027-01-10"), at=AT, since_run="r")
    assert later.mri == "scheduled" and not later.due_this_month
    kept = carried_row(previous(mri="no brain MRI on record", mri_due=""), at=AT, since_run="r")
    assert kept.mri == "no brain MRI on record"


def test_a_row_from_before_mris_were_read_says_the_mri_is_unknown() -> None:
    data = {k: v for k, v in previous().items() if k not in ("mri", "mri_due", "mri_last")}
    carried = carried_row(data, at=AT, since_run="r")
    assert (carried.mri, carried.mri_due, carried.mri_last) == ("unknown", "", "")


def test_a_carried_row_with_an_unknown_count_never_claims_a_crossing() -> None:
    carried = carried_row(previous(infusions=None), at=AT, since_run="r")
    assert carried.infusions is None and carried.crossed_24 == "unknown"


def test_a_malformed_carried_row_is_refused() -> None:
    with pytest.raises((ValueError, KeyError)):
        carried_row(previous(retest_due="soon"), at=AT, since_run="r")
    with pytest.raises((ValueError, KeyError)):
        carried_row({"patient": "p1"}, at=AT, since_run="r")


def test_a_chart_that_could_not_be_read_is_listed_with_everything_unknown() -> None:
    patient = {"name": [{"text": "Ann Lee"}],
               "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "M-7"}]}
    row = rows.unread_row(patient_id="p9", patient=patient, at=AT, reason="the EHR answered 500",
                          previous_infusions=20, link="https://app.example/launch?p=p9")
    assert row.as_json() == {
        "patient": "p9", "name": "Ann Lee", "mrn": "M-7", "status": "no estimate",
        "reason": "the EHR answered 500", "per_1000": "", "one_in": None, "category": "",
        "infusions": None, "previous_infusions": 20, "crossed_24": "unknown",
        "antibody": "unknown", "antibody_index": "", "antibody_date": "", "retest_due": "",
        "retest": "not needed", "mri_interval": "depends on the antibody result",
        "missing_or_stale": ["chart-unread"], "warnings": [],
        "findings": [{"code": "chart-unread", "message": "the EHR answered 500"}],
        "data_notes": "the EHR answered 500", "link": "https://app.example/launch?p=p9",
        "mri_last": "", "mri_due": "", "mri": "unknown",
    }
    assert rows.unread_row(patient_id="p9", patient=None, at=AT, reason="r").link == ""
    assert rows.unread_row(patient_id="p9", patient=None, at=AT,
                           reason="r").previous_infusions is None


def test_the_csv_has_every_column_in_order_with_lists_as_words() -> None:
    row = replace(rows.unread_row(patient_id="p9", patient=None, at=AT, reason="r"),
                  missing_or_stale=("antibody-stale", "index-missing"), infusions=0)
    values = dict(zip(rows.COLUMNS, row.csv_values(), strict=True))
    assert values["missing_or_stale"] == "antibody-stale index-missing"
    assert values["warnings"] == "" and values["one_in"] == "" and values["infusions"] == "0"
    assert set(row.as_json()) == {*rows.COLUMNS, "findings"}


def test_rows_of_equal_standing_without_names_are_ordered_by_patient_id() -> None:
    def row(pid: str) -> rows.Row:
        return replace(rows.unread_row(patient_id=pid, patient=None, at=AT, reason="r"),
                       status="estimate", per_1000="1.1")
    assert [r.patient for r in sorted([row("p2"), row("p3"), row("p1")],
                                      key=rows.sort_key)] == ["p1", "p2", "p3"]


def test_a_carried_row_keeps_its_gaps_warnings_and_findings_as_they_were() -> None:
    data = previous(missing_or_stale=["antibody-stale"], warnings=["index-near-cutoff"],
                    findings=[{"code": "antibody-stale", "message": "Result older than 1 year"},
                              {"code": "index-near-cutoff", "message": "Index near 1.5"}])
    carried = carried_row(data, at=AT, since_run="r")
    assert carried.missing_or_stale == ("antibody-stale",)
    assert carried.warnings == ("index-near-cutoff",)
    assert carried.findings == (("antibody-stale", "Result older than 1 year"),
                                ("index-near-cutoff", "Index near 1.5"))
    assert carried.csv_values()[rows.COLUMNS.index("infusions")] == "30"


def test_a_carried_overdue_mri_stays_overdue() -> None:
    carried = carried_row(previous(mri="overdue", mri_due="2026-08-01", mri_last="2025-08-01"),
                          at=AT, since_run="r")
    assert carried.mri == "overdue" and carried.due_this_month
    unknown = carried_row(previous(mri="unknown", mri_due=""), at=AT, since_run="r")
    assert unknown.mri == "unknown"


# -- the row of an assessed chart ------------------------------------------------------------

def test_an_estimate_row_carries_the_figure_the_index_as_reported_and_its_date() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.2"), infusions(30)))
    row = row_for(a, patient_id="p1", patient=None, at=AT)
    assert (row.status, row.reason, row.per_1000, row.one_in, row.category) == (
        "estimate", "", "1.1", a.one_in, "moderate")
    assert a.one_in is not None
    assert (row.antibody, row.antibody_index, row.antibody_date) == (
        "positive", "1.2", "2026-09-15")
    assert (row.data_notes, row.link) == ("", "")


def test_stale_results_are_to_chase_warnings_are_listed_and_context_is_left_out() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.2", on=date(2024, 1, 1)),
                   infusions(30)))
    assert {(f.code.value, f.severity.value) for f in a.findings} == {
        ("antibody-stale", "warning"), ("prior-is-none-on-record", "info")}
    row = row_for(a, patient_id="p1", patient=None, at=AT)
    assert (row.missing_or_stale, row.warnings) == (("antibody-stale",), ())
    assert [code for code, _ in row.findings] == ["antibody-stale"]
    near = run(inputs(antibody_test(Antibody.POSITIVE, "1.45"), infusions(30)))
    listed = row_for(near, patient_id="p1", patient=None, at=AT)
    assert "index-near-cutoff" in listed.warnings
    assert "index-near-cutoff" not in listed.missing_or_stale


def test_a_row_without_an_estimate_says_why_in_the_engines_words() -> None:
    a = run(inputs((), infusions(30)))
    row = row_for(a, patient_id="p1", patient=None, at=AT)
    assert row.status == "no estimate" and row.reason == a.missing[0].message
    assert row.reason.startswith("No final anti-JCV antibody result on record")
    assert row.missing_or_stale == ("antibody-missing",)
    assert row.mri_interval == "depends on the antibody result"


@pytest.mark.parametrize(("last", "due", "status"), [
    (date(2026, 11, 1), "2027-02-01", "scheduled"),
    (date(2026, 8, 10), "2026-11-10", "due this month"),  # past 3 months, not yet 4
    (date(2026, 7, 1), "2026-10-01", "overdue"),           # past 4 months
])
def test_the_mri_columns_follow_the_3_to_4_monthly_interval(last: date, due: str,
                                                            status: str) -> None:
    a = run(replace(inputs(antibody_test(Antibody.POSITIVE, "1.2"), infusions(30)),
                    mris=(BrainMri("Procedure/m1", last, "procedure"),)))
    row = row_for(a, patient_id="p1", patient=None, at=AT)
    assert (row.mri_last, row.mri_due, row.mri) == (last.isoformat(), due, status)


def test_no_or_unreadable_mri_history_leaves_the_dates_empty() -> None:
    quiet = inputs(antibody_test(Antibody.NEGATIVE), infusions(30))
    none = row_for(run(quiet), patient_id="p1", patient=None, at=AT)
    assert (none.mri_last, none.mri_due, none.mri) == ("", "", "no brain MRI on record")
    unread = row_for(run(replace(quiet, unread=("DiagnosticReport",))), patient_id="p1",
                     patient=None, at=AT)
    assert (unread.mri_last, unread.mri_due, unread.mri) == ("", "", "unknown")
