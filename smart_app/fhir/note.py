"""The result as a clinical note: a FHIR R4 DocumentReference, for EHRs that take notes only.

Many production EHRs accept no RiskAssessment but do accept clinical notes (US Core clinical
notes; the proposed US Core "writing clinical notes" guidance). The note carries the same
human summary the page shows and the same deterministic identifier as the RiskAssessment, so
saving twice, or the same result as either resource, is recognisably one result.

What goes in: figure, table cell, inputs with dates and sources, warnings, monitoring (the
text summary of ``present.text_summary``), then the risk table with its sources, the app's
version and the result's identifier. The text is one inline base64 attachment: ``text/plain``,
or its ``text/html`` rendering where the tenant allows HTML notes (never both: Epic files only
the first attachment and Oracle Health accepts exactly one).

Vendors accept different notes (``NoteProfile``, chosen by the tenant's ``vendor``): Oracle
Health's DocumentReference create takes no ``identifier``, ``category``, ``date`` or
``description``, needs ``context.period.end`` and one of its listed content types written
exactly; Epic and Oracle Health file a note only against an encounter of the same patient and
keep no ``identifier``. Where the identifier is not kept, the app recognises its own notes by
the note type and the identifier line in the text (``is_own_note``), which every vendor keeps.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
#: The line that names the result in every note's text: how the app finds its own notes on EHRs
#: that drop ``identifier`` (the text is what a note is for, so every EHR keeps it).
MARKER = "pml-risk result identifier: "


@dataclass(frozen=True)
class NoteProfile:
    """What one EHR vendor's DocumentReference create accepts, so a note is never refused for
    its shape (sources: docs/deploy.md, "Epic" and "Oracle Health").

    ``keeps_identifier``: the EHR stores ``identifier`` and can search it; when False the app's
    notes are recognised by type and text (``is_own_note``) and the create is never conditional.
    """

    name: str
    plain_type: str = "text/plain; charset=utf-8"
    html_type: str = "text/html; charset=utf-8"
    sends_identifier: bool = True
    sends_category: bool = True
    sends_date: bool = True
    sends_description: bool = True
    attachment_details: bool = True  # language, title, creation on the attachment
    period_end: bool = False  # context.period.end (the time the note documents)
    needs_encounter: bool = False  # refused without context.encounter of the same patient
    keeps_identifier: bool = True


NOTE_PROFILES: Mapping[str, NoteProfile] = {
    "": NoteProfile("standard"),
    # Epic, DocumentReference.Create (Clinical Notes): an encounter is required; the
    # identifier is not stored.
    "epic": NoteProfile("epic", needs_encounter=True, keeps_identifier=False),
    # Oracle Health Millennium R4, DocumentReference create: the listed create fields only
    # (anything else is "422 Body contained unsupported fields"), context.period.end and an
    # encounter required, one attachment with a contentType exactly as listed.
    "oracle": NoteProfile(
        "oracle", plain_type="text/plain;charset=utf-8", html_type="text/html;charset=utf-8",
        sends_identifier=False, sends_category=False, sends_date=False,
        sends_description=False, attachment_details=False, period_end=True,
        needs_encounter=True, keeps_identifier=False),
}


def note_profile(vendor: str) -> NoteProfile:
    """The note profile of a tenant's ``vendor`` (any other SMART server: the standard one)."""
    return NOTE_PROFILES.get(vendor, NOTE_PROFILES[""])


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


def _attachment(content_type: str, body: str, created: str,
                details: bool = True) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "contentType": content_type,
        "data": base64.b64encode(body.encode("utf-8")).decode("ascii"),
    }
    if details:
        attachment.update({"language": "en", "title": TITLE, "creation": created})
    return {"attachment": attachment}


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
    profile: NoteProfile | None = None,
) -> dict[str, Any]:
    """The DocumentReference for a result, as validated FHIR R4 JSON.

    ``note_type`` is "system|code" (the tenant's, LOINC 11506-3 Progress note by default);
    ``author`` the launching Practitioner (or PractitionerRole) reference; ``when`` the
    moment of writing (an aware datetime: ``date`` is an instant); ``profile`` what the
    tenant's EHR accepts (default: the standard profile). The text ends with the identifier
    line (``MARKER``) whatever the profile.
    """
    profile = profile or NOTE_PROFILES[""]
    system, code = note_type.split("|", 1)
    stamp = when.isoformat(timespec="seconds")
    text = text.rstrip("\n") + f"\n{MARKER}{identifier}\n"
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": system, "code": code, "display": note_type_display}],
                 "text": note_type_display},
        "subject": {"reference": patient},
    }
    if profile.sends_identifier:
        resource["identifier"] = [{"system": IDENTIFIER_SYSTEM, "value": identifier}]
    if profile.sends_category:
        resource["category"] = [{"coding": [NOTE_CATEGORY], "text": NOTE_CATEGORY["display"]}]
    if profile.sends_date:
        resource["date"] = stamp
    if profile.sends_description:
        resource["description"] = description
    if with_html:  # one attachment only: the HTML rendering replaces the plain text
        body = _attachment(profile.html_type, note_html(text), stamp, profile.attachment_details)
    else:
        body = _attachment(profile.plain_type, text, stamp, profile.attachment_details)
    resource["content"] = [body]
    if author:
        resource["author"] = [{"reference": author}]
    context: dict[str, Any] = {}
    if encounter:
        context["encounter"] = [{"reference": encounter}]
    if profile.period_end:
        context["period"] = {"end": stamp}
    if context:
        resource["context"] = context
    validate(resource)
    return resource


def _attachment_text(resource: Mapping[str, Any], kinds: str) -> str | None:
    """The decoded data of the first inline attachment whose contentType starts with
    ``kinds`` (``None`` when there is none readable)."""
    for content in resource.get("content", []) or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        kind = attachment.get("contentType")
        data = attachment.get("data")
        if isinstance(kind, str) and kind.startswith(kinds) and isinstance(data, str):
            try:
                return base64.b64decode(data, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def note_summary(resource: dict[str, Any]) -> str | None:
    """The text/plain content of a note, decoded (``None`` when there is none readable)."""
    return _attachment_text(resource, "text/plain")


def note_text_of(resource: Mapping[str, Any]) -> str | None:
    """The text of a note's first inline text attachment (HTML as its escaped source)."""
    text = _attachment_text(resource, "text/")
    return None if text is None else html.unescape(text)
    return None


def is_own_note(resource: Mapping[str, Any], identifier: str, note_type: str) -> bool:
    """Whether ``resource`` is the app's note of the result ``identifier``.

    By the identifier where the EHR kept it; else by the tenant's note type and the identifier
    line in the text (EHRs that drop ``identifier`` keep both). A note marked entered-in-error
    is not the result in the chart.
    """
    if resource.get("resourceType") != "DocumentReference" or resource.get("status") not in (
            "current", "superseded"):
        return False
    for ident in resource.get("identifier", []) or []:
        if (isinstance(ident, dict) and ident.get("system") == IDENTIFIER_SYSTEM
                and ident.get("value") == identifier):
            return True
    system, code = note_type.split("|", 1)
    kind = resource.get("type")
    codings = kind.get("coding") if isinstance(kind, dict) else None
    if not any(isinstance(c, dict) and c.get("system") == system and c.get("code") == code
               for c in codings or []):
        return False
    text = note_text_of(resource)
    line = re.escape(f"{MARKER}{identifier}") + r"(?![0-9A-Za-z])"
    return text is not None and re.search(line, text) is not None


_MARKED = re.compile(re.escape(MARKER) + r"([0-9A-Za-z][0-9A-Za-z._-]*)")


def marker_identifier(resource: Mapping[str, Any]) -> str | None:
    """The result identifier named in a note's text (the ``MARKER`` line), if any: how the app's
    notes are listed on EHRs that keep no ``identifier``."""
    text = note_text_of(resource)
    found = _MARKED.search(text) if text else None
    return found.group(1) if found else None
