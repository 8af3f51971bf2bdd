"""The result as a clinical note: a FHIR R4 DocumentReference, for EHRs that take notes only.

Many production EHRs accept no RiskAssessment but do accept clinical notes (US Core clinical
notes; the proposed US Core "writing clinical notes" guidance). The note carries the same
human summary the page shows and the same deterministic identifier as the RiskAssessment, so
saving twice, or the same result as either resource, is recognisably one result.

What goes in: figure, table cell, inputs with dates and sources, warnings, monitoring (the
text summary of ``present.text_summary``), then the risk table with its sources and the app's
version. The text is inline base64 ``text/plain``; a ``text/html`` rendering of the same lines
is added where the tenant allows HTML notes.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference

from ..ops import build
from ..risk.table import RiskTable
from .riskassessment import IDENTIFIER_SYSTEM

NOTE_CATEGORY = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "code": "clinical-note",
    "display": "Clinical Note",
}
TITLE = "PML risk assessment (natalizumab)"


class InvalidNote(ValueError):
    """The built DocumentReference broke a FHIR rule; it must never be written to a chart."""


def app_version() -> str:
    """The installed version of pml-risk and the build's commit where known, written into every
    note (what produced it: a later rule fix can find the notes it affected)."""
    return build.describe()


def note_text(summary: str, table: RiskTable) -> str:
    """The text summary, then the table the figure came from, its sources and the app version."""
    lines = [summary.rstrip("\n"), f"Risk table: {table.title} ({table.id}, version "
             f"{table.version}). Estimates are period risk per 1,000 patients, not lifetime risk."]
    if table.sources:
        lines.append("Sources:")
        lines += [f"  {source}" for source in table.sources]
    lines.append(f"Written by pml-risk {app_version()}; review before acting on it.")
    return "\n".join(lines) + "\n"


def note_html(text: str) -> str:
    """The same lines as HTML: a heading, paragraphs, and the indented items as lists.

    Every line is escaped: the summary holds text from the chart (labels, displays).
    """
    out: list[str] = []
    in_list = False
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        if line.startswith("  "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(line.strip())}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if n == 0:
            out.append(f"<h1>{html.escape(line)}</h1>")
        elif line.endswith(":"):
            out.append(f"<h2>{html.escape(line[:-1])}</h2>")
        else:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_list:
        out.append("</ul>")
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
            f"{html.escape(TITLE)}</title></head><body>{''.join(out)}</body></html>")


def _attachment(content_type: str, body: str, created: str) -> dict[str, Any]:
    return {"attachment": {
        "contentType": content_type,
        "language": "en",
        "data": base64.b64encode(body.encode("utf-8")).decode("ascii"),
        "title": TITLE,
        "creation": created,
    }}


#: The R4 value sets fhir.resources does not check (it checks structure and cardinality).
STATUSES = frozenset({"current", "superseded", "entered-in-error"})
DOC_STATUSES = frozenset({"preliminary", "final", "amended", "entered-in-error"})


def author_reference(fhir_user: str | None) -> str | None:
    """``Practitioner/x`` (or ``PractitionerRole/x``) from the launch's fhirUser, which some
    EHRs send as an absolute URL; None for a Patient or anything else."""
    parts = (fhir_user or "").rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] in ("Practitioner", "PractitionerRole") and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


def validate(resource: dict[str, Any]) -> None:
    """R4 structure (fhir.resources.R4B), the required status codes, and content a reader can
    open: every attachment inline, with its type."""
    try:
        DocumentReference.model_validate(resource)
    except Exception as exc:  # fhir-core raises ValidationError, KeyError or TypeError
        raise InvalidNote(f"DocumentReference failed R4 validation: {exc}") from exc
    if resource.get("status") not in STATUSES:
        raise InvalidNote(f"DocumentReference.status must be one of {sorted(STATUSES)}")
    if resource.get("docStatus", "final") not in DOC_STATUSES:
        raise InvalidNote(f"DocumentReference.docStatus must be one of {sorted(DOC_STATUSES)}")
    for n, content in enumerate(resource["content"]):
        attachment = content.get("attachment", {})
        if not attachment.get("contentType") or not attachment.get("data"):
            raise InvalidNote(f"content[{n}].attachment needs contentType and inline data")


def build_note(
    *,
    text: str,
    identifier: str,
    patient: str,
    description: str,
    when: datetime,
    note_type: str,
    note_type_display: str,
    encounter: str | None = None,
    author: str | None = None,
    with_html: bool = False,
) -> dict[str, Any]:
    """The DocumentReference for a result, as validated FHIR R4 JSON.

    ``note_type`` is "system|code" (the tenant's, LOINC 11506-3 Progress note by default);
    ``author`` the launching Practitioner (or PractitionerRole) reference; ``when`` the
    moment of writing (an aware datetime: ``date`` is an instant).
    """
    system, code = note_type.split("|", 1)
    stamp = when.isoformat(timespec="seconds")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": system, "code": code, "display": note_type_display}],
                 "text": note_type_display},
        "category": [{"coding": [NOTE_CATEGORY], "text": NOTE_CATEGORY["display"]}],
        "subject": {"reference": patient},
        "date": stamp,
        "description": description,
        "content": [_attachment("text/plain; charset=utf-8", text, stamp)],
    }
    if with_html:
        resource["content"].append(_attachment("text/html; charset=utf-8", note_html(text),
                                               stamp))
    if author:
        resource["author"] = [{"reference": author}]
    if encounter:
        resource["context"] = {"encounter": [{"reference": encounter}]}
    validate(resource)
    return resource


def note_summary(resource: dict[str, Any]) -> str | None:
    """The text/plain content of a note, decoded (``None`` when there is none readable)."""
    for content in resource.get("content", []) or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        kind = attachment.get("contentType")
        data = attachment.get("data")
        if isinstance(kind, str) and kind.startswith("text/plain") and isinstance(data, str):
            try:
                return base64.b64decode(data, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
    return None
