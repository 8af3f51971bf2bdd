"""The clinician's view in Chromium: the risk, the inputs, the charts, the layouts, a11y."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import HOSTILE_ID, HOSTILE_NAME, Stack, axe_violations, launch, shot, watch_console

pytestmark = pytest.mark.browser


def test_main_view_shows_risk_inputs_charts_and_monitoring(page: Page, stack: Stack) -> None:
    errors = watch_console(page)
    launch(page, stack, "ex05-index-1-51-25-infusions")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    expect(page.locator(".risk-one-in")).to_have_text("about 1 in 114")
    expect(page.locator(".risk-category")).to_have_text(
        "High risk (EMA/PRAC higher-risk group)")
    cell = page.locator("p.cell")
    for part in ("antibody positive", "no prior immunosuppressant", "index > 1.5",
                 "25–48 infusions"):
        expect(cell).to_contain_text(part)
    # Banner: name, birth date, sex, MRN.
    banner = page.locator("header.banner")
    for text in ("Priya Raman", "1990-05-08", "female", "E100005"):
        expect(banner).to_contain_text(text)
    # Inputs with value, date and source in words; the FHIR ids one click away.
    antibody = page.locator("#input-antibody")
    expect(antibody).to_contain_text("1.51")
    source = antibody.locator("dd details.src")
    expect(source.locator("summary")).to_have_text("2 lab results, 2026-09-15")
    expect(source.locator(".ref")).to_be_hidden()
    source.locator("summary").click()
    expect(source.locator(".ref")).to_contain_text("Observation/")
    # The warning stands once, under "Read with care"; the card points there.
    expect(page.locator(".attention")).to_contain_text("near the 1.5 cut-off")
    pointer = antibody.locator(".flag.pointer a")
    expect(pointer).to_contain_text("Read with care")
    assert pointer.get_attribute("href") == "#finding-1"
    assert page.locator("#finding-1").inner_text().startswith("Index 1.51 is near")
    exposure = page.locator("#input-exposure")
    expect(exposure).to_contain_text("25")
    expect(exposure).to_contain_text("standard (every 4 weeks)")
    expect(page.locator("#input-prior")).to_contain_text("Other prior MS therapy")
    # Table name and sources in "How this is estimated".
    expect(page.locator("#evidence")).to_contain_text("Berger JR, Fox RJ")
    # Monitoring.
    expect(page.locator(".monitoring")).to_contain_text("every 3–4 months")
    # Both charts drawn by Chart.js (not just canvases on the page).
    drawn = page.evaluate(
        "() => ['chart-strata', 'chart-index'].map(id => !!Chart.getChart(id))")
    assert drawn == [True, True]
    here = page.evaluate("""() => Chart.getChart('chart-strata').data.datasets
        .find(d => d.label.startsWith('You are here')).data""")
    assert here == [None, 8.8, None]
    shot(page, "01-main-1024x768")
    assert axe_violations(page, stack) == []
    assert errors == []  # no CSP violation, no script error


def test_missing_stale_and_preliminary_inputs_stand_out(page: Page, stack: Stack) -> None:
    launch(page, stack, "stale-result")
    expect(page.locator(".attention")).to_contain_text("retest due since")
    expect(page.locator(".attention")).to_contain_text("months ago")
    expect(page.locator("#input-antibody .flag.warning.pointer")).to_be_visible()
    launch(page, stack, "preliminary-latest")
    expect(page.locator(".attention")).to_contain_text("shown but not used")


def test_incomplete_patient_says_what_is_missing_and_offers_no_save(
    page: Page, stack: Stack
) -> None:
    launch(page, stack, "no-antibody-result")
    expect(page.locator("#summary h2").first).to_have_text("No estimate")
    expect(page.locator(".missing-list")).to_contain_text(
        "No final anti-JCV antibody result on record")
    expect(page.locator("#save-button")).to_have_count(0)
    expect(page.locator("#save")).to_contain_text("Nothing can be saved")
    shot(page, "02-incomplete")
    assert axe_violations(page, stack) == []


def test_narrow_side_panel_inside_the_ehr_frame(page: Page, stack: Stack) -> None:
    """400 px wide, in an iframe of a page on an allowed origin ('self' here)."""
    host = f"{stack.base}/__test__/ehr.html"
    page.route(host, lambda route: route.fulfill(
        content_type="text/html",
        body=("<!doctype html><title>EHR</title><iframe title='PML risk' width='400' "
              "height='1400' src='/sandbox/launch?patient=ex12-eid-40-over-60-months'>"
              "</iframe>")))
    page.goto(host)
    frame = page.frame_locator("iframe")
    expect(frame.locator(".risk-figure")).to_have_text("8.8 per 1,000", timeout=15000)
    expect(frame.locator("#input-exposure")).to_contain_text("extended-interval dosing")
    inner = next(f for f in page.frames if "/launches/" in f.url)
    overflow = inner.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the side panel scrolls sideways"
    assert inner.evaluate("() => !!Chart.getChart('chart-strata')")
    shot(page, "03-side-panel-400")


def test_narrow_viewport_is_accessible(page: Page, stack: Stack) -> None:
    page.set_viewport_size({"width": 400, "height": 900})
    launch(page, stack, "ex07-prior-is-azathioprine-48")
    expect(page.locator(".risk-figure")).to_have_text("12 per 1,000")
    width = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert width <= 0
    assert axe_violations(page, stack) == []


def test_untrusted_text_from_the_ehr_is_escaped(page: Page, stack: Stack) -> None:
    errors = watch_console(page)
    launch(page, stack, HOSTILE_ID)
    expect(page.locator(".banner-name")).to_have_text(HOSTILE_NAME)
    expect(page.locator(".banner")).to_contain_text("<b>MRN</b>")
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("header.banner img, header.banner script, header.banner b").count() == 0
    expect(page.locator("#input-prior")).to_contain_text("</textarea><script>window.__xss = 3")
    assert page.locator("#input-prior script").count() == 0
    assert errors == []


def test_heavy_chart_index_over_time_with_cutoffs(page: Page, stack: Stack) -> None:
    launch(page, stack, "heavy")
    expect(page.locator(".risk-figure")).to_have_text("10.1 per 1,000")
    expect(page.locator(".attention")).to_contain_text("beyond published data")
    expect(page.locator(".attention")).to_contain_text("rising")
    chart = page.evaluate("""() => Chart.getChart('chart-index').data.datasets
        .map(d => [d.label, d.data.length, d.data.length ? d.data[0].y : null])""")
    used = next(d for d in chart if d[0] == "Final results")
    assert used[1] >= 10 and used[2] == 0.45  # the first of the rising series
    cutoffs = sorted(d[2] for d in chart if d[0].startswith(("1.5", "0.9")))
    assert cutoffs == [0.9, 1.5]
    shot(page, "09-heavy-index-history")
