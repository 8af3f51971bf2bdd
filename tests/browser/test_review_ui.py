"""What a clinical review of the page and the handout found, in the browser: the handout never
shows what-if values as the patient's results, the what-if form recovers when an invalid value
is erased, the stale headline stays readable, the action sits next to the figure, a bound is
drawn as a bound, and the printout names who printed it and which saved record it is."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import Stack, axe_violations, launch, pdf_pages, shown_text
from .test_views import assert_legend_matches_marks, at, chart_state, no_sideways_scroll

pytestmark = pytest.mark.browser
EX05 = "ex05-index-1-51-25-infusions"

#: The contrast of each text in the headline, its colour blended with every ancestor's opacity
#: over the lighter and the darker stripe of the stale background (WCAG 2.x formula).
CONTRASTS = """() => {
    const rgb = s => s.match(/[\\d.]+/g).map(Number);
    const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255;
        return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
    const ratio = (a, b) => { const [h, l] = [lum(a), lum(b)].sort((x, y) => y - x);
        return (h + 0.05) / (l + 0.05); };
    const out = [];
    document.querySelectorAll('#summary .headline *').forEach(el => {
        if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) return;
        if (el.closest('.stale-note')) return;
        let alpha = 1;
        for (let e = el; e; e = e.parentElement) alpha *= Number(getComputedStyle(e).opacity);
        const c = rgb(getComputedStyle(el).color);
        alpha *= c.length > 3 ? c[3] : 1;
        for (const bg of [[255, 255, 255], [244, 245, 247]]) {
            const mixed = c.slice(0, 3).map((x, i) => x * alpha + bg[i] * (1 - alpha));
            out.push({text: el.textContent.trim().slice(0, 30), ratio: ratio(mixed, bg)});
        }
    });
    return out;
}"""


def test_patient_handout_shows_the_charts_values_not_the_what_if(page: Page,
                                                                 stack: Stack) -> None:
    launch(page, stack, EX05)
    page.fill("#wi-index", "0.5")
    page.fill("#wi-infusions", "12")
    page.press("#wi-infusions", "Enter")
    expect(page.locator(".risk-figure")).not_to_have_text("8.8 per 1,000")
    page.get_by_role("link", name="Patient handout", exact=True).click()
    page.wait_for_url("**/handout")
    text = shown_text(page, "article.handout")
    assert "About 9 in 1,000" in text  # the chart's 8.8 per 1,000, the figure that is saved
    assert "The level (called the index) was 1.51" in text
    assert "You have had 25 infusions" in text
    assert "0.5" not in text and "12 infusions" not in text and "Example" not in text
    assert page.title() == "Your PML risk on natalizumab"
    # The same URL with the what-if values in it is an example, marked as such.
    page.goto(page.url + "?index=0.5&infusions=12")
    assert page.title() == "Example, not your results: Your PML risk on natalizumab"
    expect(page.locator("#example-mark")).to_be_visible()
    assert axe_violations(page, stack) == []


def test_what_if_form_recovers_when_an_invalid_value_is_erased(page: Page, stack: Stack) -> None:
    launch(page, stack, EX05)
    page.fill("#wi-index", "abc")
    page.press("#wi-index", "Enter")
    expect(page.locator("#summary .stale-note")).to_be_visible()
    expect(page.locator("#save-button")).to_be_disabled()
    page.fill("#wi-index", "")
    page.press("#wi-index", "Enter")
    expect(page.locator("#summary .stale-note")).to_have_count(0)
    expect(page.locator("#wi-index-error")).to_be_hidden()
    expect(page.locator("#save-button")).to_be_enabled()
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")


@pytest.mark.parametrize("patient", [EX05, "ex03-index-0-90", "ex01-negative-30"])
def test_stale_headline_stays_readable(page: Page, stack: Stack, patient: str) -> None:
    launch(page, stack, patient)
    page.fill("#wi-infusions", "many")
    page.press("#wi-infusions", "Enter")
    expect(page.locator("#summary .headline.stale")).to_be_visible()
    low = [c for c in page.evaluate(CONTRASTS) if c["ratio"] < 4.5]
    assert low == [], low


@pytest.mark.parametrize("width", [1280, 400])
def test_monitoring_stands_next_to_the_figure(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    launch(page, stack, EX05)
    order = page.evaluate(
        "() => [...document.querySelectorAll('#summary-h, #monitoring-h, #save-h, #whatif-h, "
        "#inputs-h, #charts-h')].map(h => h.id)")
    assert order[:2] == ["summary-h", "monitoring-h"], order
    top = page.locator("#monitoring-h").bounding_box()
    assert top is not None
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert top["y"] < 0.3 * height, (top["y"], height)
    expect(page.locator("#monitoring")).to_contain_text("every 3–4 months")


def test_a_bound_is_drawn_as_an_arrow_not_a_point_on_the_line(page: Page, stack: Stack) -> None:
    launch(page, stack, "index-bound-above-cutoff")
    drawn = {d["label"]: d for d in chart_state(page, "chart-index")["datasets"]}
    arrow = drawn["Reported as above a value (true index higher)"]
    assert arrow["pointStyle"] == "arrowUp" and not arrow["line"]
    points = page.evaluate(
        """() => Object.fromEntries(Chart.getChart('chart-index').data.datasets
                 .map(d => [d.label, d.data.length]))""")
    assert points["Reported as above a value (true index higher)"] == 1
    assert "Final results" not in points  # no plain point sits on the 1.5 line
    assert_legend_matches_marks(page, "chart-index")
    expect(page.locator("#chart-index")).to_have_attribute(
        "aria-label", re.compile("latest final >1.5 on "))


@pytest.mark.parametrize("width", [1280, 400])
def test_clinical_basis_does_not_scroll_sideways(page: Page, stack: Stack, width: int) -> None:
    at(page, width)
    page.goto(stack.base + "/basis")
    no_sideways_scroll(page)


def test_sandbox_links_say_their_visible_text(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.base}/sandbox/")
    mismatched = page.evaluate(
        """() => [...document.querySelectorAll('a[aria-label]')]
            .filter(a => !a.getAttribute('aria-label').toLowerCase()
                          .includes(a.textContent.trim().toLowerCase()))
            .map(a => a.textContent.trim() + ' / ' + a.getAttribute('aria-label'))""")
    assert mismatched == []
    assert page.locator("a.launch-withheld").count() > 0


@pytest.mark.parametrize("patient", ["ex01-negative-30", "ex11-negative-prior-is-methotrexate"])
def test_ten_thousand_dots_show_their_coloured_ones_at_400_px(page: Page, stack: Stack,
                                                               patient: str) -> None:
    at(page, 400)
    launch(page, stack, patient)
    page.goto(page.url + "/handout")
    boxes = page.evaluate(
        """() => { const svg = document.querySelector('svg.icon-array').getBoundingClientRect();
            return [...document.querySelectorAll('svg.icon-array .icon-hit')].map(g => {
                const b = g.getBoundingClientRect();
                return {w: b.width, inside: b.left >= svg.left && b.right <= svg.right
                        && b.top >= svg.top && b.bottom <= svg.bottom}; }); }""")
    assert boxes and all(b["inside"] for b in boxes), boxes
    assert all(b["w"] >= 14 for b in boxes), boxes  # a ring the eye finds among the grey dots


def test_handout_fits_one_page_with_the_clinic_phone(page: Page, stack: Stack) -> None:
    launch(page, stack, "index-bound-above-cutoff")
    page.goto(page.url + "/handout")
    text = shown_text(page, "article.handout")
    assert "(called the index) was above 1.5" in text and ">" not in text
    symptoms = shown_text(page, ".symptoms")
    assert symptoms.index("Call your MS team right away") < symptoms.index(
        "Call (555) 010-0123.") < symptoms.index("Weakness on one side")
    page.emulate_media(media="print")
    for paper in ("A4", "Letter"):
        assert pdf_pages(page, paper) == 1, paper


def test_printout_names_the_clinician_and_the_saved_record(page: Page, stack: Stack) -> None:
    launch(page, stack, EX05)
    page.emulate_media(media="print")
    expect(page.locator(".print-footer")).to_contain_text("by Dr. Ada Lovelace")
    expect(page.locator("#print-record")).to_have_text("Not saved in the chart when printed")
    expect(page.locator("#print-record")).to_be_visible()
    page.emulate_media(media="screen")
    page.get_by_role("button", name="Save to chart").click()
    expect(page.locator("#save-status")).to_contain_text("Saved to the chart")
    saved = stack.risk_assessments(page.url, EX05)
    assert len(saved) == 1
    page.emulate_media(media="print")
    expect(page.locator("#print-record")).to_be_visible()
    expect(page.locator("#print-record")).to_contain_text(f"RiskAssessment/{saved[0]['id']}")
    for paper in ("A4", "Letter"):
        assert pdf_pages(page, paper) == 1, paper
