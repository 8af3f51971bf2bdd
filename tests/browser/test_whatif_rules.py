"""What-if values that cannot mislead, in Chromium: entered values follow the antibody rules and
are the clinician's, and Save waits for the reason (docs/clinical-basis.md §3)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Stack, axe_violations, launch

pytestmark = pytest.mark.browser
PATIENT = "ex05-index-1-51-25-infusions"  # positive, index 1.51 of 2026-09-15: 8.8 per 1,000


def test_a_contradicting_what_if_gives_no_estimate_and_says_why(page: Page, stack: Stack) -> None:
    """What-if "negative" with index 2.5 showed "0.2 per 1,000, Low" with Save on."""
    launch(page, stack, PATIENT)
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")
    page.fill("#wi-reason", "result from another laboratory")
    page.select_option("#wi-antibody", "negative")
    page.fill("#wi-index", "2.5")
    page.locator("#wi-index").press("Enter")
    expect(page.locator("#summary h2").first).to_have_text("No estimate")
    expect(page.locator(".missing-list")).to_contain_text(
        "The what-if values contradict each other (antibody negative with index 2.5, entered "
        "by the clinician)")
    expect(page.locator(".risk-figure")).to_have_count(0)
    expect(page.locator("#save-button")).to_have_count(0)
    expect(page.locator("#save")).to_contain_text("Nothing can be saved")
    # An entered index in the confirmatory zone is the clinician's, not the lab's of Sept 15.
    page.select_option("#wi-antibody", "")
    page.fill("#wi-index", "0.3")
    page.locator("#wi-index").press("Enter")
    missing = page.locator(".missing-list")
    expect(missing).to_contain_text("The entered anti-JCV index 0.3 (what-if) is indeterminate")
    expect(missing).not_to_contain_text("2026-09-15 is indeterminate")
    assert axe_violations(page, stack) == []
