"""The page's presentation pieces without a server: the handout's rounding and icon array, the
what-if field checks, the clinical-basis renderer's escaping, chart descriptions, times."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smart_app.web.page import doc, handout, overrides, render


@pytest.mark.parametrize(("per_1000", "total", "count"), [
    ("8.8", 1000, 9), ("13", 1000, 13), ("1.4", 1000, 1), ("0.5", 1000, 1),
    ("0.49", 10000, 5), ("0.2", 10000, 2), ("0.06", 10000, 1), ("0.02", 10000, 0),
])
def test_icon_array_shows_the_figure_people_read(per_1000: str, total: int, count: int) -> None:
    icons = handout.icon_array(Decimal(per_1000))
    assert (icons.total, icons.count) == (total, count)
    assert icons.rows * icons.columns == total
    spots = icons.positions()
    assert len(spots) == count == len(set(spots))
    assert all(0 <= x < icons.width and 0 <= y < icons.height for x, y in spots)


def test_handout_strings_are_one_table_per_language() -> None:
    english = handout.strings("en")
    assert english["lang"] == "en" and len(english["months"]) == 12
    assert "{n}" in english["risk_per_1000"]
    assert all(isinstance(line, str) and line for line in english["symptoms"])


@pytest.mark.parametrize(("band", "infusions", "words"), [
    ("0–24 infusions", 20, "your first 24 infusions"),
    ("25–48 infusions", 25, "infusions 25 to 48"),
    ("25+ infusions", 30, "the time after your first 24 infusions"),
    ("49–72 infusions", 100, "the time after infusion 72"),
])
def test_stage_in_plain_words(band: str, infusions: int, words: str) -> None:
    assert handout._stage(band, infusions, handout.strings()).startswith(words)


def test_what_if_fields_are_checked_one_by_one() -> None:
    chosen, errors = overrides.check({"index": "abc", "infusions": "30", "prior_is": "maybe"})
    assert set(errors) == {"index", "prior_is"}
    assert chosen.infusion_count == 30 and chosen.index is None
    assert overrides.check({"index": "1.2"})[1] == {}


def test_clinical_basis_renderer_escapes_and_keeps_safe_links() -> None:
    html = str(doc.render(
        "# Title <b>\n\nText with <script>x</script> and [a link](https://example.org) and "
        "[bad](javascript:alert(1)) and [file](docs/x.md).\n\n- one\n- two **bold**\n\n"
        "| a | b |\n|---|---|\n| 1 | <i>2</i> |\n"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://example.org">a link</a>' in html
    assert "javascript:" not in html and ">file<" not in html and "file" in html
    assert "<li>two <strong>bold</strong></li>" in html
    assert "<td>&lt;i&gt;2&lt;/i&gt;</td>" in html
    assert '<h1 id="title-b">Title &lt;b&gt;</h1>' in html


def test_clock_reads_iso_in_the_clinic_zone() -> None:
    assert render.clock("2026-11-26T06:47:25Z", "America/Chicago") == "2026-11-26 00:47 CST"
    assert render.clock("2026-11-26T06:47:25+00:00", "UTC") == "2026-11-26 06:47 UTC"
    assert render.clock("yesterday", "UTC") is None and render.clock(None, "UTC") is None


def test_retest_date_is_not_repeated_when_the_advice_names_it() -> None:
    assert render.said_elsewhere("Retest every 6 months; next due 2027-03-15.", "2027-03-15")
    assert not render.said_elsewhere("Confirmatory test due now.", "2026-11-26")
    assert render.plural(1, "result") == "1 result" and render.plural(2, "result") == "2 results"


def test_period_in_time() -> None:
    assert render.period_words("25–48 infusions") == (
        "for infusions 25–48 (about months 25–48 of treatment at 4-weekly dosing)")
    assert render.period_words("0–24 infusions").startswith("for infusions 1–24 (about months 1–24")
    assert render.period_words("25+ infusions").startswith("for infusion 25 onwards")


def test_patient_text_reads_a_bound_in_words() -> None:
    s = handout.strings()
    assert handout.index_words(">1.5", s) == "above 1.5"
    assert handout.index_words("<0.2", s) == "below 0.2"
    assert handout.index_words("1.51", s) == "1.51"


def test_few_coloured_dots_sit_apart_in_the_middle_of_ten_thousand() -> None:
    icons = handout.icon_array(Decimal("0.49"))
    spots = icons.positions()
    assert len(spots) == 5 and {y for _, y in spots} == {icons.height // 2}
    gaps = [b[0] - a[0] for a, b in zip(spots, spots[1:], strict=False)]
    assert min(gaps) >= 25  # rings of radius 11 do not overlap
    assert all(30 <= x <= icons.width - 30 for x, _ in spots)  # whole rings, away from the edge
