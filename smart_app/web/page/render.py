"""What the launch page's templates read: the assessment JSON, regrouped for a clinician.

No figure is computed here: numbers come from the engine's JSON (``present.assessment_json``)
and the table; this module only groups findings by the input they concern, formats counts and
dates for reading, and records what was shown so "Save to chart" writes exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from importlib import metadata
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from ...fhir.note import note_text
from ...risk.dates import months_between
from ..services import Services
from .assessment import LaunchAssessment
from .handout import raises_extended_interval
from .history import NOTE_OVERRIDE_MARK
from .overrides import to_params

#: Which input a finding belongs to, by code prefix (codes: ``smart_app.risk.result.Code``).
SECTIONS = (
    ("antibody-", "antibody"),
    ("index-", "antibody"),
    ("exposure-", "exposure"),
    ("prior-is-", "prior"),
    ("other-ms-therapy", "prior"),
    ("records-not-counted", "prior"),
    ("sources-", "sources"),
)
#: "high" is the EMA/PRAC "higher risk" groups (docs/clinical-basis.md, the result).
QUALITATIVE = {"low": "Low risk", "moderate": "Moderate risk",
               "high": "High risk (EMA/PRAC higher-risk group)"}


def period_words(band: str) -> str:
    """"for infusions 25–48 (about months 25–48 of treatment at 4-weekly dosing)": the band in
    time. The source analyses count one infusion as about one month of treatment (Bloomgren et
    al., N Engl J Med 2012), which holds at 4-weekly dosing only."""
    span = band.removesuffix(" infusions").strip()
    if span.endswith("+"):
        low = span[:-1]
        return (f"for infusion {low} onwards (about month {low} of treatment onwards at 4-weekly "
                "dosing)")
    low_text, _, high = span.partition("–")
    low = str(max(int(low_text), 1)) if low_text.isdigit() else low_text
    return (f"for infusions {low}–{high} (about months {low}–{high} of treatment at 4-weekly "
            "dosing)")


def section_of(code: str) -> str:
    return next((name for prefix, name in SECTIONS if code.startswith(prefix)), "result")


def cell_parts(row: str, band: str) -> list[str]:
    """The table cell in words, one part per dimension ("antibody positive", "25–48 …")."""
    words = row.replace("prior IS", "prior immunosuppressant").split(", ")
    return [*words, band]


def ago(day: str | None, today: str) -> str | None:
    """"8 months ago", "13 days ago" or "today" for an ISO date; None without a date."""
    if not day:
        return None
    months = months_between(date.fromisoformat(day), date.fromisoformat(today))
    if months >= 1:
        return f"{months} month{'s' if months != 1 else ''} ago"
    days = (date.fromisoformat(today) - date.fromisoformat(day)).days
    return f"{days} day{'s' if days != 1 else ''} ago" if days > 0 else "today"


def one_in(value: int | None) -> str | None:
    return f"{value:,}" if value else None


#: What a clinician calls each kind of source record; the FHIR id is shown only on demand.
SOURCE_WORDS = {
    "Observation": "Lab result",
    "MedicationAdministration": "Infusion record",
    "MedicationStatement": "Medication list entry",
    "MedicationRequest": "Medication order",
    "Medication": "Medication",
    "RiskAssessment": "Saved assessment",
}


def app_version() -> str:
    """The installed version, printed on paper so a printout names what produced it."""
    try:
        return metadata.version("pml-risk")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "unknown"


def clock(instant: str | None, timezone: str) -> str | None:
    """"2026-11-26 00:47 CST": an instant as every date on the page reads (ISO order, 24-hour
    clock), in the clinic's time zone; None when the EHR gave no parseable time."""
    if not instant:
        return None
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def source_words(reference: str) -> str:
    """"Lab result" for ``Observation/123``: readable in a card, with the id behind it."""
    kind = reference.split("/", 1)[0]
    return SOURCE_WORDS.get(kind, "Record")


def plural(count: int, one: str, many: str | None = None) -> str:
    """"1 result", "2 results": counts on the page and in chart descriptions."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def said_elsewhere(sentence: str, fact: str | None) -> bool:
    """True when ``fact`` (e.g. a due date) already appears in ``sentence``, so the page does not
    say it twice."""
    return fact is not None and fact != "" and fact in sentence


def conflict_rows(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both sides of a discordant antibody result (every record the finding names), so the
    input card shows what disagrees, not only the half the summary kept."""
    ab = payload["inputs"]["antibody"]
    if not ab.get("discordant"):
        return []
    named = {s for w in payload["warnings"] if w["code"] == "antibody-discordant"
             for s in w.get("sources", [])}
    rows = [r for r in ab.get("history", []) if r["source"] in named]
    return rows or list(ab.get("history", []))


def card_notes(findings: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """An input card's findings: notes in full; warnings and missing inputs only as pointers to
    the headline, where the full sentence stands once."""
    items = findings or []
    return {
        "notes": [f for f in items if f["severity"] == "info"],
        "pointers": [f for f in items if f["severity"] in ("warning", "missing")],
    }


def context(svc: Services, la: LaunchAssessment) -> dict[str, Any]:
    """The template variables of ``launch.html`` and ``_regions.html``."""
    payload = la.api_json()
    by_section: dict[str, list[dict[str, Any]]] = {}
    for finding in payload["warnings"]:
        by_section.setdefault(section_of(finding["code"]), []).append(finding)
    for number, finding in enumerate(payload["warnings"]):
        finding["anchor"] = f"finding-{number + 1}"
    result = payload["result"]
    params = to_params(la.overrides)
    monitoring = payload["monitoring"]
    saved = next((h for h in payload["history"]["items"] if h["current"]), None)
    timezone = svc.settings.timezone
    return {
        "a": payload,
        "la": la,
        "result": result,
        "qualitative_label": QUALITATIVE.get(result["qualitative"], "") if result else "",
        "cell_parts": cell_parts(result["cell"]["row"], result["cell"]["band"]) if result else [],
        "one_in": one_in(result["oneIn"]) if result else None,
        "missing": [w for w in payload["warnings"] if w["severity"] == "missing"],
        "attention": [w for w in payload["warnings"] if w["severity"] == "warning"],
        "info": [w for w in payload["warnings"] if w["severity"] == "info"],
        "by_section": by_section,
        "table": la.table,
        "history": payload["history"],
        "charts": payload["charts"],
        "save": la.save,
        "overrides": params,
        "overrides_json": json.dumps(params, separators=(",", ":")),
        "override_query": urlencode(params),
        "ago": lambda day: ago(day, payload["assessedOn"]),
        "source_words": source_words,
        "already_saved": saved,
        "clock": lambda instant: clock(instant, timezone),
        "plural": plural,
        "card_notes": card_notes,
        "period": period_words(result["cell"]["band"]) if result else None,
        "mri_text": str(monitoring["mri"]),
        "raises_eid": raises_extended_interval(payload),
        "extended_interval": bool(payload["inputs"]["exposure"].get("extendedInterval")),
        "conflict": conflict_rows(payload),
        "user_name": la.launch.user_name if la.launch.user_status == "verified" else None,
        "retest_due_row": not said_elsewhere(str(monitoring["antibodyRetest"]),
                                             monitoring["antibodyRetestDue"]),
        "chart_json": lambda chart: json.dumps(chart, separators=(",", ":")),
    }


def remember_shown(svc: Services, la: LaunchAssessment) -> None:
    """Keep what a save wrote or refused (encrypted, for the launch's lifetime).

    A page render keeps nothing: the save, the download and the summary assess the visit's
    snapshot again with the same what-if values, which gives the same result (or a different
    identifier, when the chart was read again since: then nothing is written)."""
    ra, identifier = la.chart.risk_assessment, la.identifier
    if ra is None or identifier is None:
        return
    svc.repo.put_shown(la.launch.id, identifier, shown_record(la))


def shown_record(la: LaunchAssessment) -> dict[str, Any]:
    """What the page shows, as written on save: the RiskAssessment, or a note of the same
    summary (with the table, its sources and the app version) and a one-line description."""
    return {
        "resource": la.chart.risk_assessment,
        "summary": la.summary,
        "note_text": note_text(la.summary, la.table),
        "description": note_description(la),
        "patient": la.launch.context.patient,
        "overrides": to_params(la.overrides),
    }


def note_description(la: LaunchAssessment) -> str:
    """The note's one line (``DocumentReference.description``), what the history list shows."""
    a = la.chart.assessment
    if a.cell is None:
        return "PML risk (natalizumab): no estimate"
    text = (f"PML risk (natalizumab): {a.cell.per_1000.normalize():f} per 1,000 "
            f"({a.qualitative}), assessed {a.assessed_on.isoformat()}")
    return text + (f"; {NOTE_OVERRIDE_MARK}" if la.overrides.any() else "")


def patient_name(patient: Mapping[str, Any] | None) -> str | None:
    """A display name for the banner; the template escapes it."""
    if not patient:
        return None
    for name in patient.get("name", []) or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"]:
            return str(name["text"])
        given = " ".join(x for x in name.get("given", []) or [] if isinstance(x, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        text = f"{given} {family}".strip()
        if text:
            return text
    return None


def banner(patient: Mapping[str, Any] | None) -> dict[str, str | None]:
    """Name, birth date, sex and MRN for the patient banner (untrusted: the template escapes)."""
    if not patient:
        return {"name": None, "birthDate": None, "sex": None, "mrn": None}
    mrn = None
    for ident in patient.get("identifier", []) or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        kind = ident.get("type")
        codings = kind.get("coding") or [] if isinstance(kind, dict) else []
        if any(isinstance(c, dict) and c.get("code") == "MR" for c in codings):
            mrn = ident["value"]
            break
        mrn = mrn or ident["value"]
    birth = patient.get("birthDate")
    sex = patient.get("gender")
    return {
        "name": patient_name(patient),
        "birthDate": birth if isinstance(birth, str) else None,
        "sex": sex if isinstance(sex, str) else None,
        "mrn": mrn,
    }
