"""The clinical note a result becomes on EHRs that take notes only: valid R4, escaped HTML."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from smart_app.fhir.note import (
    MARKER,
    InvalidNote,
    author_reference,
    build_note,
    is_own_note,
    note_html,
    note_profile,
    note_summary,
    note_text,
    validate,
)
from smart_app.risk.tables import load_table

WHEN = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
SUMMARY = ("PML risk (natalizumab) for Patient/p1, assessed 2026-11-25\n"
           "Inputs:\n  Anti-JCV antibody: positive <b>index</b> 1.6 & more\nMonitoring:\n"
           "  Brain MRI every 3-4 months.\n")


def _note(**extra: object) -> dict[str, object]:
    args = {"text": note_text(SUMMARY, load_table("berger-fox-2016")), "identifier": "abc",
            "patient": "Patient/p1", "description": "PML risk 1.1 per 1,000", "when": WHEN,
            "note_type": "http://loinc.org|11506-3", "note_type_display": "Progress note"}
    return build_note(**{**args, **extra})  # type: ignore[arg-type]


def test_the_note_text_is_the_summary_then_table_sources_and_version() -> None:
    text = note_text(SUMMARY, load_table("berger-fox-2016"))
    assert text.startswith(SUMMARY)
    tail = text[len(SUMMARY):]
    assert tail.startswith("Risk table: ") and "\nSources:\n  " in tail
    assert "Written by pml-risk " in tail


def test_a_plain_text_note_round_trips_and_carries_no_html_unless_asked() -> None:
    note = _note(author="Practitioner/dr-ada", encounter="Encounter/e1")
    assert note["date"] == "2026-11-25T14:05:00+00:00"
    assert [c["attachment"]["contentType"] for c in note["content"]] == [  # type: ignore[index]
        "text/plain; charset=utf-8"]
    assert note_summary(note) == note_text(SUMMARY, load_table("berger-fox-2016")) + (
        f"{MARKER}abc\n")
    assert note["author"] == [{"reference": "Practitioner/dr-ada"}]
    assert note["context"] == {"encounter": [{"reference": "Encounter/e1"}]}


def test_the_html_copy_escapes_what_came_from_the_chart() -> None:
    page = note_html(SUMMARY)
    assert "<b>index</b>" not in page and "&lt;b&gt;index&lt;/b&gt; 1.6 &amp; more" in page
    assert "<h2>Inputs</h2><ul><li>" in page
    note = _note(with_html=True)
    [content] = note["content"]  # type: ignore[misc]  # one attachment: the HTML replaces the text
    html_part = content["attachment"]
    assert html_part["contentType"] == "text/html; charset=utf-8"
    assert base64.b64decode(html_part["data"]).decode() == note_html(str(
        note_summary(_note())))
    assert is_own_note({**note, "id": "n1"}, "abc", "http://loinc.org|11506-3")


def test_a_broken_note_is_refused_before_it_leaves() -> None:
    note = _note()
    with pytest.raises(InvalidNote):
        validate({**note, "status": "final"})  # not a DocumentReference status
    with pytest.raises(InvalidNote):
        validate({k: v for k, v in note.items() if k != "content"})
    with pytest.raises(InvalidNote):
        validate({**note, "content": [{"attachment": {"contentType": "text/plain"}}]})


def test_the_author_is_the_launching_practitioner_however_the_ehr_names_them() -> None:
    assert author_reference("Practitioner/dr-ada") == "Practitioner/dr-ada"
    assert author_reference("https://ehr.example/fhir/PractitionerRole/r1") == "PractitionerRole/r1"
    assert author_reference("Patient/p1") is None and author_reference(None) is None


def test_oracle_notes_carry_only_the_create_fields_oracle_lists() -> None:
    note = _note(profile=note_profile("oracle"), encounter="Encounter/e1", with_html=False)
    assert not {"identifier", "category", "date", "description"} & set(note)
    [content] = note["content"]  # type: ignore[misc]
    assert content["attachment"]["contentType"] == "text/plain;charset=utf-8"
    assert set(content["attachment"]) == {"contentType", "data"}
    assert note["context"] == {"encounter": [{"reference": "Encounter/e1"}],
                               "period": {"end": "2026-11-25T14:05:00+00:00"}}
    html_note = _note(profile=note_profile("oracle"), encounter="Encounter/e1", with_html=True)
    assert [c["attachment"]["contentType"] for c in html_note["content"]] == [  # type: ignore
        "text/html;charset=utf-8"]


def test_a_note_without_identifier_is_recognised_by_type_and_text_only() -> None:
    note = {**_note(profile=note_profile("epic")), "id": "n1"}
    dropped = {k: v for k, v in note.items() if k != "identifier"}  # as Epic files it
    loinc = "http://loinc.org|11506-3"
    assert is_own_note(dropped, "abc", loinc)
    assert not is_own_note(dropped, "ab", loinc)  # a prefix of the identifier is another result
    assert not is_own_note(dropped, "abcd", loinc)
    assert not is_own_note(dropped, "abc", "http://loinc.org|34133-9")  # another note type
    assert not is_own_note({**dropped, "status": "entered-in-error"}, "abc", loinc)
