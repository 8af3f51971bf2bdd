"""What a neurologist sees, at a desk (1280 px) and in the EHR's side panel (400 px): charts
that stay readable, legends that match their marks, each finding said once, sources in words,
one type family, the evidence panel, the printout, the patient handout and the sandbox's
patient list. Every view leaves a screenshot in artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from .conftest import Stack, axe_violations, launch, pdf_pages, shot, shown_text, watch_console

pytestmark = pytest.mark.browser
WIDTHS = [1280, 400]
EX05 = "ex05-index-1-51-25-infusions"
FHIR_ID = re.compile(r"\b(Observation|Medication\w*|Patient|RiskAssessment)/[A-Za-z0-9.-]+")
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def at(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


def no_sideways_scroll(page: Page) -> None:
    assert page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    ) <= 0


def chart_state(page: Page, canvas: str) -> dict[str, Any]:
    """The drawn chart as Chart.js holds it: plot area, axis titles, datasets, x ticks."""
    state: dict[str, Any] = page.evaluate(
        """(id) => {
            const c = Chart.getChart(id);
            const y = c.options.scales.y.title;
            c.ctx.font = '12px ' + Chart.defaults.font.family;
            return {
                plotHeight: c.chartArea.bottom - c.chartArea.top,
                plotWidth: c.chartArea.right - c.chartArea.left,
                yTitle: y.display ? y.text : null,
                yTitleWidth: y.display ? c.ctx.measureText(y.text).width : 0,
                font: Chart.defaults.font.family,
                datasets: c.data.datasets.map(d => ({
                    label: d.label, dash: d.borderDash || [],
                    pointStyle: d.pointStyle && d.pointStyle.dataset
                        ? d.pointStyle.dataset.marker : d.pointStyle,
                    color: d.borderColor, background: d.backgroundColor,
                    line: d.showLine !== false && d.borderWidth > 0})),
                xTicks: c.scales.x.ticks.map(t => t.label),
            };
        }""",
        canvas,
    )
    return state


def legend_of(page: Page, canvas: str) -> list[dict[str, Any]]:
    """The HTML legend under a chart: each item's label and the swatch's drawn attributes."""
    found: list[dict[str, Any]] = page.evaluate(
        """(id) => [...document.getElementById(id).closest('figure')
                      .querySelectorAll('.legend li')].map(li => {
            const svg = li.querySelector('svg');
            const line = svg.querySelector('line');
            return {label: li.textContent.trim(), marker: svg.dataset.marker,
                    color: svg.dataset.color,
                    dash: line && line.getAttribute('stroke-dasharray')
                          ? line.getAttribute('stroke-dasharray').split(' ').map(Number) : [],
                    line: !!line,
                    shapes: svg.querySelectorAll('circle, rect, polygon, path').length};
        })""",
        canvas,
    )
    return found


def assert_legend_matches_marks(page: Page, canvas: str) -> None:
    legend, drawn = legend_of(page, canvas), chart_state(page, canvas)["datasets"]
    assert [item["label"] for item in legend] == [d["label"] for d in drawn]
    for item, mark in zip(legend, drawn, strict=True):
        assert item["color"] == mark["color"], item["label"]
        assert item["dash"] == mark["dash"], item["label"]
        assert item["line"] == mark["line"], item["label"]
        if item["marker"] == "none":
            assert mark["pointStyle"] is False and item["shapes"] == 0, item["label"]
        elif item["marker"] == "circleOpen":  # a hollow circle: white inside, coloured ring
            assert mark["pointStyle"] == "circle" and mark["background"] == "#ffffff"
        else:
            assert mark["pointStyle"] == item["marker"] and item["shapes"] == 1, item["label"]


@pytest.mark.parametrize("width", WIDTHS)
def test_charts_stay_readable_and_legends_match_their_marks(
    page: Page, stack: Stack, width: int
) -> None:
    at(page, width)
    errors = watch_console(page)
    launch(page, stack, EX05)
    for canvas in ("chart-strata", "chart-index"):
        state = chart_state(page, canvas)
        assert state["plotHeight"] >= 150, f"{canvas}: plot {state['plotHeight']} px tall"
        assert state["plotWidth"] >= 250
        # An axis title is shown only where it fits the plot's height; the unit is in the heading.
        assert state["yTitleWidth"] < state["plotHeight"]
        assert_legend_matches_marks(page, canvas)
    expect(page.locator("#strata-h")).to_contain_text("Risk per 1,000")
    here = legend_of(page, "chart-strata")[0]
    assert here["marker"] == "triangle" and here["label"].startswith("You are here")
    assert legend_of(page, "chart-strata")[1]["label"].endswith("(this patient)")
    assert chart_state(page, "chart-strata")["font"] == page.evaluate(
        "() => getComputedStyle(document.body).fontFamily")
    no_sideways_scroll(page)
    shot(page, f"10-charts-{width}", "section.charts")
    assert errors == []


@pytest.mark.parametrize("patient", ["heavy", "ex01-negative-30", "preliminary-latest"])
@pytest.mark.parametrize("width", WIDTHS)
def test_index_chart_labels_real_test_dates(page: Page, stack: Stack, patient: str,
                                            width: int) -> None:
    at(page, width)
    launch(page, stack, patient)
    data = page.evaluate(
        "() => JSON.parse(document.getElementById('chart-index').dataset.chart)")
    test_dates = {p["date"] for p in data["points"]}
    ticks = chart_state(page, "chart-index")["xTicks"]
    assert ticks, "no date on the axis"
    assert all(ISO_DAY.match(t) for t in ticks)
    assert set(ticks) <= test_dates, set(ticks) - test_dates
    assert_legend_matches_marks(page, "chart-index")


@pytest.mark.parametrize("width", WIDTHS)
def test_no_estimate_index_chart_says_what_is_on_record(page: Page, stack: Stack,
                                                        width: int) -> None:
    at(page, width)
    launch(page, stack, "indeterminate")
    labels = [d["label"] for d in chart_state(page, "chart-index")["datasets"]]
    assert "Final results" in labels and not any("used)" in label for label in labels)
    aria = page.locator("#chart-index").get_attribute("aria-label") or ""
    assert "1 result " in aria or "1 result;" in aria
    assert "1 results" not in aria and "not available" not in aria
    assert "latest final 0.3 on 2026-09-15 (indeterminate: no estimate)" in aria
    assert_legend_matches_marks(page, "chart-index")


@pytest.mark.parametrize("width", WIDTHS)
def test_each_finding_is_said_once(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, "indeterminate")
    data = page.request.get(page.url + "/assessment").json()
    missing = [w["message"] for w in data["warnings"] if w["severity"] == "missing"]
    text = shown_text(page)
    assert missing and all(text.count(m) == 1 for m in missing)
    expect(page.locator("#input-antibody .flag.missing.pointer")).to_be_visible()
    shot(page, f"02-no-estimate-{width}")
    assert axe_violations(page, stack) == []
    # Low risk: the next retest date appears once, in the monitoring advice.
    launch(page, stack, "ex01-negative-30")
    due = page.request.get(page.url + "/assessment").json()["monitoring"]["antibodyRetestDue"]
    assert due and shown_text(page).count(due) == 1
    # A warning: once, under "Read with care" (the input card only points there).
    launch(page, stack, EX05)
    data = page.request.get(page.url + "/assessment").json()
    warnings = [w["message"] for w in data["warnings"] if w["severity"] == "warning"]
    assert warnings and all(shown_text(page).count(w) == 1 for w in warnings)


@pytest.mark.parametrize("width", WIDTHS)
def test_sources_read_in_words_with_the_id_on_demand(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, EX05)
    inputs = page.locator("section.inputs")
    assert not FHIR_ID.search(shown_text(page, "section.inputs"))
    expect(inputs).to_contain_text("2 lab results, 2026-09-15")
    expect(inputs).to_contain_text("Medication list entry: Tecfidera")
    source = page.locator("#input-antibody dd details.src")
    source.locator("summary").click()
    expect(source.locator(".ref")).to_have_text(re.compile(r"^Observation/\S+, Observation/\S+$"))
    lines = page.evaluate(
        """() => { const s = document.querySelector('#input-antibody dd details.src summary');
                   return Math.round(s.getBoundingClientRect().height /
                                     parseFloat(getComputedStyle(s).lineHeight)); }""")
    assert lines <= 2
    no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_one_type_family(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, EX05)
    families = page.evaluate(
        """() => [...new Set(['body', 'h1', 'h2', 'h3', '.risk-figure', '.facts dd', 'button',
                              'label', '.legend li', 'summary']
                  .map(s => getComputedStyle(document.querySelector(s)).fontFamily))]""")
    assert len(families) == 1, families


@pytest.mark.parametrize("width", WIDTHS)
def test_evidence_panel_explains_the_estimate(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, EX05)
    panel = page.locator("#evidence")
    expect(panel.get_by_role("heading", name="How this is estimated")).to_be_visible()
    expect(panel).to_contain_text("25–48 infusions")
    expect(panel).to_contain_text("period risk, not a lifetime or cumulative risk")
    expect(panel).to_contain_text("Berger JR, Fox RJ")
    panel.get_by_text("Pearls and pitfalls").click()
    for pearl in ("assay-specific", "0.20–0.40 is indeterminate", "Plasma exchange and IVIG"):
        expect(panel).to_contain_text(pearl)
    link = panel.get_by_role("link", name="The clinical basis")
    assert link.get_attribute("href") == "/basis"
    page.locator("#summary").get_by_role("link", name="How this is estimated").click()
    shot(page, f"11-evidence-{width}", "#evidence")
    assert axe_violations(page, stack) == []
    page.goto(stack.base + "/basis")  # where the link leads (a new tab)
    expect(page.locator("main")).to_contain_text("Berger JR, Fox RJ")
    assert axe_violations(page, stack) == []


PRINTED = (
    "Estimated PML risk", "per 1,000", "Table cell", "Tested", "Last infusion", "Monitoring",
    "How this is estimated", "Berger JR, Fox RJ", "Printed", "pml-risk ",
)


@pytest.mark.parametrize("patient", [EX05, "heavy", "indeterminate",
                                     "not-done-and-other-statuses"])
def test_prints_on_one_page_with_nothing_cut(page: Page, stack: Stack, patient: str) -> None:
    launch(page, stack, patient, need_patient_banner="false")
    expect(page.locator("header.banner")).to_be_hidden()  # the EHR shows its own on screen
    page.emulate_media(media="print")
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    # On paper the patient is named, and the page's other parts are there or gone.
    expect(page.locator("header.banner")).to_be_visible()
    expect(page.locator("header.banner")).to_contain_text("MRN")
    text = shown_text(page)
    for part in PRINTED if patient != "indeterminate" else ("No estimate", "Printed"):
        assert part.lower() in text.lower(), part
    for gone in ("#whatif", "#save", "#history .history-list", "#history-h", "#print-button"):
        expect(page.locator(gone)).to_be_hidden()
    assert re.search(r"Printed \d{4}-\d{2}-\d{2} \d{2}:\d{2}", text)
    # Laid out at A4's printable width (210 mm less 2 × 10 mm): nothing sticks out sideways,
    # and no card or chart would be split (they may not break, and the whole fits one page).
    page.set_viewport_size({"width": 718, "height": 900})
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    no_sideways_scroll(page)
    wide = page.evaluate(
        """() => [...document.querySelectorAll('.card, canvas, .legend, table')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(e => e.className || e.tagName)""")
    assert wide == []
    shot(page, f"13-print-{patient}")
    for paper in ("A4", "Letter"):
        assert pdf_pages(page, paper) == 1, f"{patient} on {paper}"
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('canvas')].map(c => c.width > 0 && c.height > 0)")
    assert all(drawn)


WORDS = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def syllables(word: str) -> int:
    """A plain English syllable estimate (vowel groups, silent final e), enough for a grade."""
    w = word.lower()
    groups = re.findall(r"[aeiouy]+", w)
    count = len(groups)
    if w.endswith("e") and not w.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def reading_grade(text: str) -> float:
    """Flesch–Kincaid grade level of ``text``."""
    sentences = [s for s in re.split(r"[.!?:]\s|\n", text) if WORDS.search(s)]
    words = WORDS.findall(text)
    syll = sum(syllables(w) for w in words)
    return 0.39 * len(words) / len(sentences) + 11.8 * syll / len(words) - 15.59


@pytest.mark.parametrize(("patient", "words", "total", "count"), [
    (EX05, "About 9 in 1,000 people like you", 1000, 9),
    ("ex08-prior-is-mitoxantrone-72", "About 13 in 1,000 people like you", 1000, 13),
    ("ex01-negative-30", "It is about 2 in 10,000", 10000, 2),
])
@pytest.mark.parametrize("width", WIDTHS)
def test_patient_handout(page: Page, stack: Stack, patient: str, words: str, total: int,
                         count: int, width: int) -> None:
    at(page, width)
    errors = watch_console(page)
    launch(page, stack, patient)
    page.get_by_role("link", name="Patient handout").click()
    page.wait_for_url("**/handout")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your PML risk on natalizumab")
    expect(page.locator("#risk-words")).to_contain_text(words)
    icons = page.locator("svg.icon-array")
    assert icons.get_attribute("data-total") == str(total)
    assert page.locator("svg.icon-array .icon-hit").count() == count
    expect(page.locator("#icons-caption")).to_contain_text(f"{count} of the {total:,}")
    text = shown_text(page, "article.handout")
    assert not FHIR_ID.search(text)
    for jargon in ("FHIR", "stratum", "Observation", "RiskAssessment", "EMA", "PRAC",
                   "per 1,000", "index >", "immunosuppressant", "seroconver", "FLAIR"):
        assert jargon not in text, jargon
    for needed in ("Call your MS team right away", "up to 6 months after your last dose",
                   "What makes the risk higher", "What keeps the risk lower",
                   "Your check-up plan", "brain scan (MRI)"):
        assert needed in text, needed
    assert reading_grade(text) <= 8.0, reading_grade(text)
    no_sideways_scroll(page)
    shot(page, f"14-handout-{patient}-{width}")
    assert axe_violations(page, stack) == []
    assert errors == []
    if width == 1280:
        page.emulate_media(media="print")
        expect(page.get_by_role("link", name="Back to the risk page")).to_be_hidden()
        for paper in ("A4", "Letter"):
            assert pdf_pages(page, paper) == 1, paper


def test_what_if_handout_is_an_example_on_every_page(page: Page, stack: Stack) -> None:
    launch(page, stack, EX05)
    page.select_option("#wi-prior", "yes")
    expect(page.locator(".risk-figure")).to_have_text("12 per 1,000")
    page.get_by_role("link", name="Example handout with these what-if values").click()
    page.wait_for_url("**/handout?prior_is=yes")
    assert page.title().startswith("Example, not your results")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Example, not your results: Your PML risk on natalizumab")
    expect(page.locator("#example-mark")).to_have_text("Example, not your results")
    page.emulate_media(media="print")
    # Fixed on paper: Chromium prints it at the top of every page (and the sheet is one page).
    assert page.evaluate(
        "() => getComputedStyle(document.getElementById('example-mark')).position") == "fixed"
    for paper in ("A4", "Letter"):
        assert pdf_pages(page, paper) == 1, paper
    page.emulate_media(media="screen")
    expect(page.locator("#risk-words")).to_contain_text("About 12 in 1,000")
    assert page.locator("svg.icon-array .icon-hit").count() == 12
    expect(page.locator("article.handout")).to_contain_text(
        "You took a drug that weakens the immune system")


def test_handout_without_an_estimate_says_why_in_plain_words(page: Page, stack: Stack) -> None:
    launch(page, stack, "no-antibody-result")
    page.goto(page.url + "/handout")
    text = shown_text(page, "article.handout")
    assert "We cannot give you a number yet" in text
    assert "JC virus blood test" in text
    assert page.locator("svg.icon-array").count() == 0
    assert reading_grade(text) <= 8.0


@pytest.mark.parametrize("width", WIDTHS)
def test_sandbox_patient_list_reads_like_an_ehr(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    errors = watch_console(page)
    page.goto(f"{stack.base}/sandbox/")
    assert page.locator('meta[name="viewport"]').count() == 1
    assert page.evaluate(
        "() => getComputedStyle(document.querySelector('.ehr-bar')).backgroundColor"
    ) != "rgba(0, 0, 0, 0)"  # the stylesheet is applied
    row = page.locator("tr", has_text="Priya Raman")
    expect(row).to_contain_text(re.compile(r"\d+ y · F"))
    expect(row).to_contain_text("E100005")
    expect(row).to_contain_text("25 natalizumab infusions · anti-JCV positive, index 1.51")
    lines = page.locator("td p.clinical").all_inner_texts()
    assert lines and all(len(line.strip()) > 10 for line in lines), "a patient without a summary"
    text = shown_text(page)
    for jargon in ("Reference §", "valueString", "contained #", "->", "IS)", "medicationReference"):
        assert jargon not in text, jargon
    no_sideways_scroll(page)
    shot(page, f"15-sandbox-patients-{width}")
    assert axe_violations(page, stack) == []
    # The technical note on demand.
    row.get_by_text("Test scenario").click()
    expect(row).to_contain_text("Worked example 5:")
    # Search as you type, and without script (a plain GET).
    page.fill("#q", "azathioprine")  # two on it, one with only a planned order
    expect(page.locator("tbody tr:visible")).to_have_count(3)
    expect(page.locator("#count")).to_have_text("3 patients")
    found = requests.get(f"{stack.base}/sandbox/", params={"q": "mitoxantrone"}, timeout=10)
    assert found.text.count("<tr data-search") == 2 and "Robert Nakamura" in found.text
    # A row opens the app for that patient.
    page.fill("#q", "Priya")
    row = page.locator("tr", has_text="Priya Raman")
    row.get_by_role("link", name=re.compile("^Open PML risk")).click()
    page.wait_for_url("**/launches/**")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    assert errors == []


@pytest.mark.parametrize("width", WIDTHS)
def test_main_view_at_each_width(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, EX05)
    no_sideways_scroll(page)
    shot(page, f"01-main-{width}")
    assert axe_violations(page, stack) == []
