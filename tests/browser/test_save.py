"""What-if overrides and "Save to chart" in Chromium, checked against the sandbox's data."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import Stack, axe_violations, launch, shot

pytestmark = pytest.mark.browser
PATIENT = "ex03-index-0-90"


def test_what_if_updates_at_once_and_is_saved_with_the_override(
    page: Page, stack: Stack
) -> None:
    url = launch(page, stack, "ex05-index-1-51-25-infusions")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    page.select_option("#wi-prior", "yes")
    expect(page.locator(".risk-figure")).to_have_text("12 per 1,000")
    expect(page.locator("#input-prior .badge.override")).to_have_text("overridden by clinician")
    expect(page.locator("#summary")).to_contain_text("includes clinician overrides")
    page.fill("#wi-infusions", "60")
    page.fill("#wi-reason", "36 infusions given at another centre")
    expect(page.locator(".risk-figure")).to_have_text("13 per 1,000")
    expect(page.locator("#input-exposure .badge.override")).to_be_visible()
    assert "prior_is=yes" in page.url and "infusions=60" in page.url  # reload keeps it
    here = page.evaluate("""() => Chart.getChart('chart-strata').data.datasets
        .find(d => d.label.startsWith('You are here')).data""")
    assert here == [None, None, 13]
    shot(page, "04-what-if")
    assert axe_violations(page, stack) == []
    page.click("#save-button")
    expect(page.locator("#save-status")).to_contain_text("Saved to the chart.")
    saved = stack.risk_assessments(url, "ex05-index-1-51-25-infusions")
    assert len(saved) == 1
    assert saved[0]["prediction"][0]["probabilityDecimal"] == 1.3  # 13 per 1,000, in percent
    notes = " ".join(n["text"] for n in saved[0]["note"])
    assert "Clinician override" in notes and "completed infusions 60 (chart: 25)" in notes
    assert "another centre" in notes
    expect(page.locator("#history")).to_contain_text("with overrides")
    # Back to the chart's values: the original figure, no override marks.
    page.click("#whatif-reset")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    expect(page.locator("#details .badge.override")).to_have_count(1)  # the history entry


@pytest.mark.parametrize("width", [1280, 400])
def test_bad_what_if_values_are_marked_beside_their_fields(
    page: Page, stack: Stack, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    launch(page, stack, PATIENT)
    save = page.locator("#save-button")
    expect(save).to_be_enabled()
    page.fill("#wi-index", "abc")
    page.fill("#wi-infusions", "2.5")
    page.locator("#wi-infusions").press("Enter")
    index_error, count_error = page.locator("#wi-index-error"), page.locator("#wi-infusions-error")
    expect(index_error).to_have_text(
        "Enter a number from 0 to 20 with up to 3 decimals (for example 1.2), or “none”.")
    expect(count_error).to_have_text("Enter a whole number from 0 to 500.")
    expect(page.locator("#wi-index")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#wi-infusions")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#wi-prior_is-error")).to_be_hidden()
    # The old headline stays, marked stale; Save is off until the input is valid.
    expect(page.locator(".risk-figure")).to_have_text("1.1 per 1,000")
    expect(page.locator("#summary .headline.stale .stale-note")).to_contain_text("Not updated")
    expect(save).to_be_disabled()
    expect(page.locator("#save-reason")).to_contain_text("Correct the what-if value")
    expect(page.locator("#fallback")).to_have_count(0)  # nor offered as a download or note
    shot(page, f"12-what-if-invalid-{width}")
    assert axe_violations(page, stack) == []
    # One field fixed: the other still holds the page.
    page.fill("#wi-index", "1.8")
    expect(index_error).to_be_hidden()
    expect(count_error).to_be_visible()
    expect(save).to_be_disabled()
    # Both fixed: the new result, no stale mark, Save back on.
    page.fill("#wi-infusions", "30")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    expect(count_error).to_be_hidden()
    expect(page.locator("#wi-infusions")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#summary .stale-note")).to_have_count(0)
    # A result with what-if values is saved only with its reason, and the page says so.
    expect(save).to_be_disabled()
    expect(page.locator("#save-reason")).to_contain_text("Give the reason for the what-if")
    page.fill("#wi-reason", "index 1.8 from the reference laboratory")
    expect(save).to_be_enabled()


@pytest.mark.parametrize("width", [1280, 400])
def test_keyboard_save_then_reload_and_relaunch_show_it_saved(
    page: Page, stack: Stack, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    url = launch(page, stack, PATIENT)
    identifier = page.locator("#save").get_attribute("data-identifier")
    for _ in range(40):  # Tab through the page to the button, as a keyboard user would
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "save-button":
            break
    else:
        pytest.fail("the save button is not reachable with Tab")
    page.keyboard.press("Enter")
    status = page.locator("#save-status")
    expect(status).to_contain_text("Saved to the chart.")
    expect(status).to_contain_text("RiskAssessment/")
    expect(page.locator("#history .badge", has_text="this result")).to_be_visible()
    expect(status).to_be_focused()  # keyboard users land on the outcome
    # The time as every date on the page reads: ISO order, 24-hour clock, the clinic's zone.
    expect(status).to_contain_text(re.compile(r"· \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$"))
    assert not re.search(r"\d/\d|AM|PM", status.inner_text())
    expect(page.locator("#save-button")).to_have_text("Saved")
    shot(page, f"05-saved-{width}")
    assert axe_violations(page, stack) == []
    # After a reload the page knows this result is in the chart: it says so and offers no save.
    page.reload()
    button = page.locator("#save-button")
    expect(button).to_have_text("Already in the chart")
    expect(button).to_be_disabled()
    expect(page.locator("#save-reason")).to_contain_text(
        re.compile(r"already in the chart \(saved \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\)"))
    # A relaunch (new launch, new token) of the same patient: the same.
    url = launch(page, stack, PATIENT)
    expect(page.locator("#save-button")).to_have_text("Already in the chart")
    saved = stack.risk_assessments(url, PATIENT)
    assert len(saved) == 1
    assert saved[0]["identifier"][0]["value"] == identifier


def test_double_click_saves_once(page: Page, stack: Stack) -> None:
    url = launch(page, stack, "ex01-negative-30")
    stack.control(clear_requests=True)
    page.dblclick("#save-button")
    expect(page.locator("#save-status")).to_contain_text("Saved to the chart.")
    assert len(stack.posts()) == 1  # one request at a time
    assert len(stack.risk_assessments(url, "ex01-negative-30")) == 1


def test_read_only_when_the_scope_is_not_granted(page: Page, read_only_stack: Stack) -> None:
    launch(page, read_only_stack, PATIENT)
    button = page.locator("#save-button")
    expect(button).to_be_disabled()
    reason = page.locator("#save-reason")
    expect(reason).to_contain_text("did not grant this app permission to save")
    assert button.get_attribute("aria-describedby") == "save-reason"
    expect(page.locator("#download-json")).to_be_visible()
    expect(page.locator("#summary-text")).to_have_value(
        __import__("re").compile("PML risk \\(natalizumab\\)"))
    href = page.locator("#download-json").get_attribute("href") or ""
    download = page.request.get(read_only_stack.base + href)
    assert download.ok and download.json()["resourceType"] == "RiskAssessment"
    shot(page, "06-read-only")
    assert axe_violations(page, read_only_stack) == []


def test_rejected_write_offers_the_json_and_a_summary(page: Page, stack: Stack) -> None:
    url = launch(page, stack, PATIENT)
    stack.control(no_risk_assessment=True)  # the EHR now refuses RiskAssessment (404)
    page.click("#save-button")
    status = page.locator("#save-status")
    expect(status).to_contain_text("The EHR refused the RiskAssessment")
    expect(status).to_contain_text("404")
    expect(status).to_contain_text("Nothing was saved")
    expect(status.get_by_role("link", name="Download the RiskAssessment (JSON)")).to_be_visible()
    expect(status.get_by_role("button", name="Copy the summary for a note")).to_be_visible()
    expect(page.locator("#fallback")).to_have_attribute("open", "")
    shot(page, "07-rejected")
    assert axe_violations(page, stack) == []
    stack.control(no_risk_assessment=False)
    assert stack.risk_assessments(url, PATIENT) == []


def test_server_error_then_retry_keeps_the_identifier(page: Page, stack: Stack) -> None:
    url = launch(page, stack, PATIENT)
    identifier = page.locator("#save").get_attribute("data-identifier")
    stack.control(fail_next_write=[500, 500, 500], clear_requests=True)  # beyond the two retries
    page.click("#save-button")
    status = page.locator("#save-status")
    expect(status).to_contain_text("The EHR did not save it")
    expect(status).to_contain_text("same identifier")
    button = page.locator("#save-button")
    expect(button).to_have_text("Retry save")
    assert [p["status"] for p in stack.posts()] == [500, 500, 500]
    shot(page, "08-server-error")
    button.click()
    expect(status).to_contain_text("Saved to the chart.")
    saved = stack.risk_assessments(url, PATIENT)
    assert len(saved) == 1 and saved[0]["identifier"][0]["value"] == identifier
