"""Each write-back rung in Chromium, one sandbox EHR profile each: where the result will go is
said before the click, and what the EHR holds afterwards is read through its own FHIR API."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from playwright.sync_api import Page, expect

from .conftest import FIXTURES, Stack, axe_violations, build_stack, launch, shot

pytestmark = pytest.mark.browser
PATIENT = "ex03-index-0-90"


@pytest.fixture(scope="session")
def profile_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    """One app + sandbox per EHR profile (the app caches each EHR's CapabilityStatement)."""
    with ExitStack() as stacks:
        yield {
            name: stacks.enter_context(contextmanager(build_stack)(
                tmp_path_factory.mktemp(name), ehr_profile=name))
            for name in ("notes-only", "no-conditional-create", "read-only")
        }


@pytest.fixture
def notes_only(profile_stacks: dict[str, Stack]) -> Stack:
    stack = profile_stacks["notes-only"]
    stack.control(reset=True, reset_data=True)
    return stack


@pytest.fixture
def no_conditional(profile_stacks: dict[str, Stack]) -> Stack:
    stack = profile_stacks["no-conditional-create"]
    stack.control(reset=True, reset_data=True)
    return stack


def test_notes_only_saves_one_progress_note(page: Page, notes_only: Stack) -> None:
    url = launch(page, notes_only, PATIENT)
    expect(page.locator("#save-destination")).to_contain_text(
        "Saves a progress note with this result to the chart")
    page.click("#save-button")
    status = page.locator("#save-status")
    expect(status).to_contain_text("Saved to the chart as a note.")
    expect(status).to_contain_text("DocumentReference/")
    expect(page.locator("#history")).to_contain_text("DocumentReference/")
    expect(page.locator("#history .badge", has_text="this result")).to_be_visible()
    shot(page, "09-saved-as-note")
    assert axe_violations(page, notes_only) == []
    # Another tab of another launch, saving the same result: still one note.
    other = page.context.new_page()
    launch(other, notes_only, PATIENT)
    expect(other.locator("#save-button")).to_have_text("Already in the chart")
    notes = notes_only.results(url, PATIENT, "DocumentReference")
    assert len(notes) == 1 and notes[0]["type"]["coding"][0]["code"] == "11506-3"
    assert notes_only.results(url, PATIENT, "RiskAssessment") == []


def test_two_tabs_saving_at_once_without_conditional_create_make_one(
    page: Page, no_conditional: Stack
) -> None:
    url = launch(page, no_conditional, PATIENT)
    other = page.context.new_page()
    launch(other, no_conditional, PATIENT)
    expect(page.locator("#save-destination")).to_contain_text("as a RiskAssessment")
    page.click("#save-button")
    other.click("#save-button")
    for tab in (page, other):  # one created it, the other found it
        expect(tab.locator("#save-status")).to_contain_text(
            re.compile("Saved to the chart|Already in the chart"))
    assert len(no_conditional.results(url, PATIENT, "RiskAssessment")) == 1


def test_read_only_says_why_and_offers_print_download_and_copy(
    page: Page, profile_stacks: dict[str, Stack]
) -> None:
    stack = profile_stacks["read-only"]
    launch(page, stack, PATIENT)
    button = page.locator("#save-button")
    expect(button).to_be_disabled()
    expect(page.locator("#save-reason")).to_contain_text(
        "neither a RiskAssessment nor a clinical note can be saved")
    expect(page.locator("#print-button")).to_be_visible()
    expect(page.locator("#download-json")).to_be_visible()
    expect(page.locator("#copy-summary")).to_be_visible()
    shot(page, "10-read-only-ehr")
    assert axe_violations(page, stack) == []


def test_a_chart_changed_since_opening_is_not_saved_and_is_shown_again(
    page: Page, stack: Stack
) -> None:
    url = launch(page, stack, PATIENT)
    expect(page.locator(".risk-figure")).to_have_text("1.1 per 1,000")
    bundle = json.loads((FIXTURES / f"{PATIENT}.json").read_text(encoding="utf-8"))
    index = copy.deepcopy(next(e["resource"] for e in bundle["entry"]
                               if e["resource"]["id"] == f"{PATIENT}-jcvidx-001"))
    index["valueQuantity"]["value"] = 1.6  # the lab amends the index while the page is open
    stack.control(put_resources=[index])
    page.click("#save-button")
    status = page.locator("#save-status")
    expect(status).to_contain_text("the chart changed since you opened it: review and save again",
                                   ignore_case=True)
    expect(page.locator("#input-antibody")).to_contain_text("1.6")
    assert stack.risk_assessments(url, PATIENT) == []
    shot(page, "11-chart-changed")
    page.click("#save-button")
    expect(status).to_contain_text("Saved to the chart.")
    saved = stack.risk_assessments(url, PATIENT)
    assert len(saved) == 1 and saved[0]["identifier"][0]["value"] == page.locator(
        "#save").get_attribute("data-identifier")
