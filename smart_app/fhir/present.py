"""Assessment → what people read: the JSON the page and API show, and the CLI's text summary.

Both show every input with the resource it came from, and every finding; neither recomputes.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ..risk.immunosuppressant import sources_in_words
from ..risk.records import LabResult, MedicationEvidence
from ..risk.result import Assessment, Finding, MriSchedule, NextBand


def _num(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _lab(r: LabResult) -> dict[str, Any]:
    return {
        "source": r.source,
        "date": _day(r.effective),
        "status": r.status,
        "result": r.qualitative.value if r.qualitative else None,
        "index": _num(r.index),
        "indexText": r.index_text or None,
        "label": r.label,
        "matchedByName": r.matched_by_text,
    }


def _med(m: MedicationEvidence) -> dict[str, Any]:
    found = {"source": m.source, "agent": m.agent, "date": _day(m.when), "status": m.status,
             "label": m.label}
    if m.excluded:
        found["notCounted"] = m.excluded
    return found


def next_band_json(nb: NextBand | None) -> dict[str, Any] | None:
    if nb is None:
        return None
    return {"infusion": nb.infusion, "band": nb.band, "per1000": _num(nb.per_1000),
            "beyondPublished": nb.beyond_published, "ifIndexAbove": _num(nb.if_index_above),
            "per1000IfAbove": _num(nb.per_1000_if_above), "text": nb.text}


def mri_line(s: MriSchedule | None) -> str:
    """"Last brain MRI 2026-10-15; due 2027-01-15", or what is known instead."""
    if s is None:
        return ""
    if s.last is None:
        return s.text[0].upper() + s.text[1:] + "."
    if s.due is None:
        return s.text[0].upper() + s.text[1:] + "."
    return f"Last brain MRI {s.last.isoformat()}; {s.text}."


def finding_json(f: Finding) -> dict[str, Any]:
    return {"code": f.code.value, "severity": f.severity.value, "message": f.message,
            "sources": list(f.sources)}


def assessment_json(a: Assessment) -> dict[str, Any]:
    ab, ex, pi = a.antibody, a.exposure, a.prior_immunosuppressant
    result = None
    if a.cell is not None:
        result = {
            "per1000": _num(a.cell.per_1000),
            "oneIn": a.one_in,
            "qualitative": a.qualitative,
            "cell": {"row": a.cell.row, "band": a.cell.band, "words": a.cell.words},
            "categoryReason": a.category_reason,
            "nextBand": next_band_json(a.next_band),
            "advice": [{"text": x.text, "sources": list(x.sources)} for x in a.advice],
        }
    mri = a.monitoring.mri_schedule
    return {
        "result": result,
        "table": {"id": a.table_id, "title": a.table_title, "version": a.table_version},
        "assessedOn": a.assessed_on.isoformat(),
        "inputs": {
            "patient": a.patient,
            "antibody": {
                "status": ab.status.value,
                "index": _num(ab.index),
                # An earlier test's index (a repeat positive without one) names its own date.
                "indexText": (f"{ab.index_text} (test of {_day(ab.index_from)})"
                              if ab.index_from else f"{ab.index_text} (entered by the clinician)"
                              if a.overrides.index is not None else ab.index_text or None),
                "discordant": ab.discordant,
                "testedOn": _day(ab.tested_on),
                "sources": list(ab.sources),
                "overridden": ab.overridden,
                "history": [_lab(r) for r in ab.history],
                "notUsed": [_lab(r) for r in ab.not_used],
            },
            "exposure": {
                "infusions": ex.infusions,
                "firstInfusion": _day(ex.first),
                "lastInfusion": _day(ex.last),
                "calendarMonths": ex.calendar_months,
                "meanIntervalDays": _num(ex.mean_interval_days),
                "extendedInterval": ex.extended_interval,
                "overridden": ex.overridden,
                "unknown": ex.unknown or None,
                "sources": [i.source for i in ex.counted],
            },
            "priorImmunosuppressant": {
                "value": pi.value,
                "onRecord": pi.on_record,
                "overridden": pi.overridden,
                "evidence": [_med(m) for m in pi.evidence],
                "concomitant": [_med(m) for m in pi.concomitant],
                "otherTherapies": [_med(m) for m in pi.other_therapies],
                "notCounted": [_med(m) for m in pi.not_counted],
                "unknown": pi.unknown,
                "unreadSources": list(pi.unread_sources),
                "unidentified": list(pi.unidentified),
            },
        },
        "sources": {"unread": list(a.unread), "notOffered": list(a.not_offered)},
        "monitoring": {
            "mri": a.monitoring.mri,
            "antibodyRetest": a.monitoring.antibody_retest,
            "antibodyRetestDue": _day(a.monitoring.antibody_retest_due),
            "provisional": a.monitoring.provisional or None,
            "mriLast": _day(mri.last) if mri else None,
            "mriDue": _day(mri.due) if mri else None,
            "mriState": mri.state.value if mri else None,
            "mriStatus": mri.text if mri else None,
            "mriLine": mri_line(mri) or None,
            "mriSources": list(mri.sources) if mri else [],
        },
        "warnings": [finding_json(f) for f in a.findings],
        "basis": list(a.basis),
    }


def text_summary(a: Assessment) -> str:
    """A plain summary a clinician can read or paste into a note."""
    ab, ex, pi = a.antibody, a.exposure, a.prior_immunosuppressant
    lines = [f"PML risk (natalizumab) for {a.patient}, assessed {a.assessed_on.isoformat()}"]
    if a.cell is not None:
        lines += [
            f"Risk: {_num(a.cell.per_1000)} per 1,000 (about 1 in {a.one_in:,}) for the exposure "
            f"period; category {a.qualitative}",
            f"Table cell: {a.cell.words} [{a.table_id}]",
            f"Category: {a.category_reason}",
        ]
        if a.next_band is not None:
            lines.append(a.next_band.text)
    else:
        lines.append("Risk: NO ESTIMATE — " + "; ".join(f.message for f in a.missing))
    index = f", index {ab.index_text}" if ab.index is not None else ", no index"
    if ab.index_from:
        index += f" of {_day(ab.index_from)}"
    tested = f" (tested {_day(ab.tested_on)}" + (
        f"; {', '.join(ab.sources)})" if ab.sources else ")"
    ) if ab.tested_on else ""
    if not ab.index_from and a.overrides.index is not None:
        # The clinician's index, not the lab result of the chart's latest test.
        index += " (entered by the clinician)"
        tested = f"; the chart's latest test {_day(ab.tested_on)}" + (
            f" ({', '.join(ab.sources)})" if ab.sources else ""
        ) if ab.tested_on else ""
    first_last = (
        f" (first {_day(ex.first)}, last {_day(ex.last)})" if ex.first and ex.last else ""
    )
    interval = (
        f"; mean interval {_num(ex.mean_interval_days)} days"
        + (" (extended-interval dosing)" if ex.extended_interval else "")
        if ex.mean_interval_days is not None
        else ""
    )
    on_record = ", ".join(
        f"{m.agent} {_day(m.when) or 'undated'} [{m.source}]" for m in pi.evidence
    )
    if pi.overridden:
        prior = ("yes" if pi.value else "no") + (
            f" (chart: {on_record})" if on_record else " (chart: none on record)"
        )
    elif pi.evidence:
        prior = f"yes ({on_record})"
    elif pi.unknown:
        why = [f"{sources_in_words(pi.unread_sources)} could not be read"] if (
            pi.unread_sources) else []
        if pi.unidentified:
            why.append(f"{len(pi.unidentified)} earlier medication record(s) could not be "
                       "identified")
        prior = f"unknown ({'; '.join(why)}; the 'no prior immunosuppressant' row is used)"
    else:
        prior = "no (none on record)"
    mark = " [overridden by clinician]"
    lines += [
        "Inputs:",
        f"  Anti-JCV antibody: "
        f"{'results disagree' if ab.discordant and not ab.overridden else ab.status.value}"
        f"{index}{tested}"
        + (mark if ab.overridden else ""),
        "  Natalizumab infusions: "
        + (f"unknown ({ex.unknown})" if ex.unknown else f"{ex.infusions}{first_last}{interval}")
        + (mark if ex.overridden else ""),
        f"  Prior immunosuppressant: {prior}" + (mark if pi.overridden else ""),
        "Monitoring:",
        f"  {a.monitoring.mri}",
        f"  {a.monitoring.antibody_retest}",
    ]
    mri_text = mri_line(a.monitoring.mri_schedule)
    if mri_text:
        sched = a.monitoring.mri_schedule
        refs = f" [{', '.join(sched.sources)}]" if sched and sched.sources else ""
        lines.append(f"  {mri_text}{refs}")
    if a.advice:
        lines.append("Higher-risk group: what the prescriber is asked to do:")
        lines += [f"  - {x.text} ({'; '.join(x.sources)})" for x in a.advice]
    if a.findings:
        lines.append("Warnings:")
        lines += [f"  [{f.severity.value}] {f.message}" for f in a.findings]
    return "\n".join(lines) + "\n"
