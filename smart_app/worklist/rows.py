"""One worklist row per patient: the assessment the app would show, reduced to what a nurse or
REMS coordinator sorts and filters by.

Nothing is recomputed here: the figure, category, retest date and MRI advice come from the one
``smart_app.service.assess_chart`` call the app and ``pml-risk assess`` also make. The only
things a row adds are the run-to-run comparison (24 infusions crossed since the last run) and
the classification of the retest date against the run's date.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ..risk import monitoring
from ..risk.result import Assessment, Code, MriState, Severity

#: Table band edge the REMS materials and the EMA "higher risk" groups use: more than 24.
INFUSION_THRESHOLD = 24
#: Findings that mean "the chart lacks something or it is out of date" (besides the blocking
#: ones): the nurse's "chase this" column. Other warnings go in ``warnings``.
STALE_OR_MISSING = frozenset({
    Code.ANTIBODY_STALE, Code.ANTIBODY_UNDATED, Code.ANTIBODY_PRELIMINARY, Code.INDEX_MISSING,
    Code.EXPOSURE_NONE, Code.EXPOSURE_UNDATED, Code.EXPOSURE_UNDERCOUNT,
    Code.MEDICATION_UNRESOLVED, Code.PRIOR_IS_UNDATED, Code.ANTIBODY_UNREAD, Code.EXPOSURE_UNREAD,
    Code.PRIOR_IS_UNREAD,
})
MRI_INTERVALS = {
    monitoring.MRI_HIGHER_RISK: "every 3–4 months",
    monitoring.MRI_NEGATIVE: "every 12 months",
    monitoring.MRI_POSITIVE_EARLY: "every 12 months (3–4 months from 18 infusions)",
}
NO_MRI_INTERVAL = "depends on the antibody result"

ESTIMATE, NO_ESTIMATE = "estimate", "no estimate"
OVERDUE, DUE_THIS_MONTH, SCHEDULED, NOT_NEEDED = (
    "overdue", "due this month", "scheduled", "not needed")
CROSSED, NOT_CROSSED, FIRST_RUN, UNKNOWN = "yes", "no", "first run", "unknown"

#: CSV column order; the first seven are the ones the worklist's users asked for by name.
COLUMNS = (
    "patient", "status", "per_1000", "category", "infusions", "retest_due", "mri_interval",
    "name", "mrn", "reason", "one_in", "crossed_24", "previous_infusions", "antibody",
    "antibody_index", "antibody_date", "retest", "missing_or_stale", "warnings", "data_notes",
    "link", "mri_last", "mri_due", "mri",
)


@dataclass(frozen=True)
class Row:
    patient: str  # the FHIR Patient id
    name: str
    mrn: str
    status: str  # ESTIMATE | NO_ESTIMATE
    reason: str  # why there is no estimate ("" when there is one)
    per_1000: str  # as the table prints it, e.g. "1.1"; "" without an estimate
    one_in: int | None
    category: str  # low | moderate | high | ""
    #: None when the natalizumab administrations could not be read: unknown, never 0
    infusions: int | None
    previous_infusions: int | None  # from the previous run's worklist.json; None: unknown
    crossed_24: str  # CROSSED | NOT_CROSSED | FIRST_RUN | UNKNOWN
    antibody: str  # positive | negative | indeterminate | unknown
    antibody_index: str
    antibody_date: str
    retest_due: str  # ISO date, "" when retesting does not change the stratum
    retest: str  # OVERDUE | DUE_THIS_MONTH | SCHEDULED | NOT_NEEDED
    mri_interval: str
    missing_or_stale: tuple[str, ...]  # finding codes
    warnings: tuple[str, ...]  # finding codes
    findings: tuple[tuple[str, str], ...]  # (code, message) of both lists above, for the HTML
    data_notes: str  # how the data was obtained, when not simply from the export
    link: str  # launches the app for this patient ("" without a tenant)
    mri_last: str = ""  # ISO date of the last brain MRI on record
    mri_due: str = ""  # ISO date the next brain MRI is due
    mri: str = ""  # OVERDUE | DUE_THIS_MONTH | SCHEDULED | "no brain MRI on record" | "unknown"

    @property
    def due_this_month(self) -> bool:
        """An anti-JCV retest or a brain MRI is due this month or overdue."""
        return self.retest in (OVERDUE, DUE_THIS_MONTH) or self.mri in (OVERDUE, DUE_THIS_MONTH)

    def csv_values(self) -> list[str]:
        data = self.as_json()
        out = []
        for column in COLUMNS:
            value = data[column]
            if isinstance(value, list):
                value = " ".join(value)
            out.append("" if value is None else str(value))
        return out

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing_or_stale"] = list(self.missing_or_stale)
        data["warnings"] = list(self.warnings)
        data["findings"] = [{"code": c, "message": m} for c, m in self.findings]
        return data


def _number(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def display_name(patient: Mapping[str, Any] | None) -> str:
    """``name.text``, else given + family of the first (preferably official/usual) name."""
    names: Any = patient.get("name") if patient else None
    if not isinstance(names, list):
        return ""
    ranked = sorted((n for n in names if isinstance(n, Mapping)),
                    key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    for name in ranked:
        if isinstance(name.get("text"), str) and name["text"].strip():
            return str(name["text"]).strip()
        given: Any = name.get("given") if isinstance(name.get("given"), list) else []
        parts = [str(g) for g in given if isinstance(g, str)]
        if isinstance(name.get("family"), str):
            parts.append(name["family"])
        if parts:
            return " ".join(parts)
    return ""


def mrn(patient: Mapping[str, Any] | None) -> str:
    """The identifier typed MR (HL7 v2-0203) or labelled MRN; else the first identifier."""
    identifiers: Any = patient.get("identifier") if patient else None
    if not isinstance(identifiers, list):
        return ""
    values = [i for i in identifiers if isinstance(i, Mapping) and isinstance(i.get("value"), str)]
    for ident in values:
        kind = ident.get("type")
        if isinstance(kind, Mapping):
            codings: Any = kind.get("coding") if isinstance(kind.get("coding"), list) else []
            if any(isinstance(c, Mapping) and c.get("code") == "MR" for c in codings):
                return str(ident["value"])
            if str(kind.get("text", "")).strip().upper() == "MRN":
                return str(ident["value"])
    return str(values[0]["value"]) if values else ""


def retest_status(due: date | None, at: date) -> str:
    if due is None:
        return NOT_NEEDED
    if due < at:
        return OVERDUE
    month_end = date(at.year, at.month, calendar.monthrange(at.year, at.month)[1])
    return DUE_THIS_MONTH if due <= month_end else SCHEDULED


def mri_status(a: Assessment, at: date) -> tuple[str, str, str]:
    """(last, due, status) of the brain MRI; an unreadable history is "unknown", never "none"."""
    sched = a.monitoring.mri_schedule
    if sched is None or sched.state is MriState.UNKNOWN:
        return "", "", "unknown"
    if sched.state is MriState.NONE_ON_RECORD:
        return "", "", "no brain MRI on record"
    last = sched.last.isoformat() if sched.last else ""
    if sched.due is None:
        return last, "", NOT_NEEDED
    status = OVERDUE if sched.state is MriState.OVERDUE else (
        DUE_THIS_MONTH if sched.state is MriState.DUE else retest_status(sched.due, at))
    return last, sched.due.isoformat(), status


def crossed(previous: int | None, now: int | None) -> str:
    """Whether the count went past 24 since the last run; never claimed from an unknown."""
    if now is None:
        return UNKNOWN
    if previous is None:
        return FIRST_RUN
    return CROSSED if previous <= INFUSION_THRESHOLD < now else NOT_CROSSED


def row_for(
    assessment: Assessment,
    *,
    patient_id: str,
    patient: Mapping[str, Any] | None,
    at: date,
    previous_infusions: int | None = None,
    data_notes: str = "",
    link: str = "",
) -> Row:
    """The row of one assessed patient."""
    a = assessment
    findings = [f for f in a.findings
                if f.severity is Severity.MISSING or f.code in STALE_OR_MISSING
                or f.severity is Severity.WARNING]
    missing = tuple(dict.fromkeys(
        f.code.value for f in findings
        if f.severity is Severity.MISSING or f.code in STALE_OR_MISSING))
    warnings = tuple(dict.fromkeys(f.code.value for f in findings if f.code.value not in missing))
    reason = "" if a.complete else (a.missing[0].message if a.missing else "no estimate")
    # A count of administrations the app could not read is unknown, not 0 (nor a low count).
    unread_exposure = any(f.code is Code.EXPOSURE_UNREAD for f in a.findings)
    infusions = None if unread_exposure else a.exposure.infusions
    mri_last, mri_due, mri = mri_status(a, at)
    return Row(
        patient=patient_id,
        name=display_name(patient),
        mrn=mrn(patient),
        status=ESTIMATE if a.complete else NO_ESTIMATE,
        reason=reason,
        per_1000=_number(a.per_1000),
        one_in=a.one_in,
        category=a.qualitative or "",
        infusions=infusions,
        previous_infusions=previous_infusions,
        crossed_24=crossed(previous_infusions, infusions),
        antibody=a.antibody.status.value,
        antibody_index=a.antibody.index_text,  # ">1.5" stays a bound, never "1.5"
        antibody_date=a.antibody.tested_on.isoformat() if a.antibody.tested_on else "",
        retest_due=(a.monitoring.antibody_retest_due.isoformat()
                    if a.monitoring.antibody_retest_due else ""),
        retest=retest_status(a.monitoring.antibody_retest_due, at),
        mri_interval=MRI_INTERVALS.get(a.monitoring.mri, NO_MRI_INTERVAL) if a.complete
        else NO_MRI_INTERVAL,
        missing_or_stale=missing,
        warnings=warnings,
        findings=tuple((f.code.value, f.message) for f in findings),
        data_notes=data_notes,
        link=link,
        mri_last=mri_last,
        mri_due=mri_due,
        mri=mri,
    )


def unread_row(
    *,
    patient_id: str,
    patient: Mapping[str, Any] | None,
    at: date,
    reason: str,
    previous_infusions: int | None = None,
    link: str = "",
) -> Row:
    """A patient whose chart could not be read completely: no figure, and why (never a lower
    figure from partial data)."""
    return Row(
        patient=patient_id, name=display_name(patient), mrn=mrn(patient), status=NO_ESTIMATE,
        reason=reason, per_1000="", one_in=None, category="", infusions=None,
        previous_infusions=previous_infusions, crossed_24=UNKNOWN, antibody="unknown",
        antibody_index="", antibody_date="",
        retest_due="", retest=NOT_NEEDED, mri_interval=NO_MRI_INTERVAL,
        missing_or_stale=("chart-unread",), warnings=(), findings=(("chart-unread", reason),),
        data_notes=reason, link=link, mri="unknown",
    )


def sort_key(row: Row) -> tuple[int, Decimal, str]:
    """Default order: no estimate first (something to chase), then highest risk first."""
    figure = Decimal(row.per_1000) if row.per_1000 else Decimal(0)
    return (0 if row.status == NO_ESTIMATE else 1, -figure, row.name or row.patient)


def previous_infusions(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Patient id → infusions, from an earlier run's ``worklist.json`` rows."""
    found: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        patient, infusions = row.get("patient"), row.get("infusions")
        gaps = row.get("missing_or_stale") or []
        unread = "chart-unread" in gaps or "exposure-unread" in gaps  # count unknown then
        if isinstance(patient, str) and isinstance(infusions, int) and not unread:
            found[patient] = infusions
    return found


def carried_row(data: Mapping[str, Any], *, at: date, since_run: str) -> Row:
    """A previous run's row for a patient whose chart has not changed since: the assessment
    stands, the retest status is judged again against ``at``. ``ValueError`` if malformed."""
    mri_fields = ("mri_last", "mri_due", "mri")  # absent from runs before MRIs were read
    fields: dict[str, Any] = {f: data[f] if f not in mri_fields else str(data.get(f, ""))
                              for f in Row.__dataclass_fields__}
    mri_due = str(fields["mri_due"])
    if not fields["mri"]:
        fields["mri"] = "unknown"
    elif fields["mri"] == SCHEDULED and mri_due:
        # Due since the last run; "overdue" waits for a re-read of the chart.
        fields["mri"] = retest_status(date.fromisoformat(mri_due), at).replace(
            OVERDUE, DUE_THIS_MONTH)
    due = date.fromisoformat(fields["retest_due"]) if fields["retest_due"] else None
    infusions = None if fields["infusions"] is None else int(fields["infusions"])
    fields.update(
        missing_or_stale=tuple(str(c) for c in fields["missing_or_stale"]),
        warnings=tuple(str(c) for c in fields["warnings"]),
        findings=tuple((str(f["code"]), str(f["message"])) for f in fields["findings"]),
        infusions=infusions,
        previous_infusions=infusions,
        crossed_24=NOT_CROSSED if infusions is not None else UNKNOWN,
        retest=retest_status(due, at),
        data_notes=f"chart unchanged since the run of {since_run}: assessment carried over",
    )
    return Row(**fields)

