"""The worklist's brain-MRI columns: last MRI, due date, and "due this month" includes MRIs."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import date

from smart_app.risk import Antibody
from smart_app.risk.records import BrainMri
from smart_app.worklist.output import csv_text
from smart_app.worklist.rows import COLUMNS, row_for
from tests.core.builders import AT, antibody_test, infusions, inputs, run

# Antibody negative, retest not due this month: only the MRI can make the row due.
QUIET = inputs(antibody_test(Antibody.NEGATIVE, on=date(2026, 9, 15)), infusions(30))


def row(*mris: BrainMri, unread: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    a = run(replace(QUIET, mris=mris, unread=unread))
    return row_for(a, patient_id="p1", patient=None, at=AT)


def test_an_overdue_mri_puts_the_patient_in_due_this_month() -> None:
    r = row(BrainMri("Procedure/m1", date(2025, 8, 1), "procedure"))
    assert (r.mri_last, r.mri_due, r.mri) == ("2025-08-01", "2026-08-01", "overdue")
    assert r.retest == "scheduled" and r.due_this_month


def test_an_mri_due_later_this_month_is_due_this_month() -> None:
    r = row(BrainMri("Procedure/m1", date(2025, 11, 28), "procedure"))
    assert (r.mri_due, r.mri) == ("2026-11-28", "due this month") and r.due_this_month


def test_a_recent_mri_is_not_due() -> None:
    r = row(BrainMri("Procedure/m1", date(2026, 6, 1), "procedure"))
    assert r.mri == "scheduled" and not r.due_this_month


def test_unread_imaging_is_unknown_not_none() -> None:
    assert row(unread=("DiagnosticReport",)).mri == "unknown"
    assert row().mri == "no brain MRI on record"


def test_csv_has_the_mri_columns() -> None:
    r = row(BrainMri("Procedure/m1", date(2025, 8, 1), "procedure"))
    header, line = csv.reader(io.StringIO(csv_text([r])))
    assert "mri_last" in COLUMNS and "mri_due" in COLUMNS
    values = dict(zip(header, line, strict=True))
    assert (values["mri_last"], values["mri_due"]) == ("2025-08-01", "2026-08-01")
