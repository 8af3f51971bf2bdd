"""Earlier results of this app in the chart, as rows for the history list.

A result is a RiskAssessment or, on EHRs that take notes only, a clinical note
(DocumentReference) with the same identifier system. The resources come from the EHR and are
untrusted: every field is type-checked here and the template escapes the text. Only this app's
resources are read (searched by its identifier system), newest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ...fhir.note import marker_identifier
from ...fhir.riskassessment import IDENTIFIER_SYSTEM

OVERRIDE_PREFIX = "Clinician override"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _per_1000(prediction: Mapping[str, Any]) -> str | None:
    percent = prediction.get("probabilityDecimal")
    if isinstance(percent, bool) or not isinstance(percent, int | float | str):
        return None
    try:
        value = Decimal(str(percent)) * 10  # probabilityDecimal is in percent (§7)
    except InvalidOperation:
        return None
    return f"{value.normalize():f}" if value.is_finite() else None


def identifier_of(resource: Mapping[str, Any]) -> str | None:
    """The result's identifier; for a note on an EHR that keeps none, the one its text names."""
    for ident in resource.get("identifier", []) or []:
        if isinstance(ident, dict) and ident.get("system") == IDENTIFIER_SYSTEM:
            return _str(ident.get("value"))
    if resource.get("resourceType") == "DocumentReference":
        return marker_identifier(resource)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


#: Put in a note's description when the result includes clinician overrides.
NOTE_OVERRIDE_MARK = "includes clinician overrides"


def _note_item(resource: Mapping[str, Any], current: str | None) -> dict[str, Any]:
    meta = _dict(resource.get("meta"))
    author = _dict((_list(resource.get("author")) or [{}])[0])
    ident = identifier_of(resource)
    description = _str(resource.get("description"))
    day = _str(resource.get("date"))
    return {
        "resourceType": "DocumentReference",
        "id": _str(resource.get("id")),
        "date": day[:10] if day else None,
        "savedAt": _str(meta.get("lastUpdated")) or day,
        "status": _str(resource.get("docStatus")) or _str(resource.get("status")),
        "per1000": None,
        "qualitative": None,
        "rationale": None,
        "description": description,
        "performer": _str(author.get("reference")),
        "overridden": description is not None and NOTE_OVERRIDE_MARK in description,
        "current": ident is not None and ident == current,
    }


def item(resource: Mapping[str, Any], current: str | None) -> dict[str, Any]:
    if resource.get("resourceType") == "DocumentReference":
        return _note_item(resource, current)
    first = _dict((_list(resource.get("prediction")) or [{}])[0])
    coding = _dict((_list(_dict(first.get("qualitativeRisk")).get("coding")) or [{}])[0])
    notes = _list(resource.get("note"))
    meta = _dict(resource.get("meta"))
    performer = _dict(resource.get("performer"))
    ident = identifier_of(resource)
    return {
        "resourceType": "RiskAssessment",
        "id": _str(resource.get("id")),
        "date": _str(resource.get("occurrenceDateTime")),
        "savedAt": _str(meta.get("lastUpdated")),
        "status": _str(resource.get("status")),
        "per1000": _per_1000(first),
        "qualitative": _str(coding.get("code")),
        "rationale": _str(first.get("rationale")),
        "description": None,
        "performer": _str(performer.get("reference")),
        "overridden": any(
            isinstance(n, dict) and str(n.get("text", "")).startswith(OVERRIDE_PREFIX)
            for n in notes
        ),
        "current": ident is not None and ident == current,
    }


def items(resources: Iterable[Mapping[str, Any]], current: str | None) -> list[dict[str, Any]]:
    rows = [item(r, current) for r in resources if identifier_of(r) is not None]
    # The EHR was asked for -date; sort again so a server that ignores _sort cannot mislead.
    rows.sort(key=lambda r: (r["date"] or "", r["savedAt"] or ""), reverse=True)
    return rows
