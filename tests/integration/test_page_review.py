"""The server-rendered page and handout after a clinical review: one vocabulary for risk groups,
the period in time, extended-interval dosing raised on the page when the handout raises it,
both sides of a discordant result, and the read-only reason in a clinician's words."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import requests

from .conftest import Stack

EX05 = "ex05-index-1-51-25-infusions"


class _Text(HTMLParser):
    """The text inside the element with ``element_id`` (all of the page with None)."""

    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "wbr", "source", "col"})

    def __init__(self, element_id: str | None) -> None:
        super().__init__()
        self.target, self.depth = element_id, 0 if element_id else 1
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.target:
            self.depth = 1
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        self.skip -= tag in ("script", "style")
        if self.depth and self.target:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and not self.skip:
            self.parts.append(data)


def text_of(page: str, element_id: str | None = None) -> str:
    """The readable text of the page, or of the element with ``element_id``."""
    parser = _Text(element_id)
    parser.feed(page)
    text = re.sub(r"\s+", " ", " ".join(parser.parts)).strip()
    assert text, f"no element {element_id}"
    return text


def _page(stack: Stack, patient: str) -> tuple[requests.Session, str]:
    browser = stack.browser()
    return browser, stack.launch(browser, patient)


def test_one_vocabulary_for_risk_groups(stack: Stack) -> None:
    browser, url = _page(stack, "ex03-index-0-90")
    page = browser.get(url, timeout=30).text
    assert "Moderate risk" in text_of(page, "summary")
    # The MRI schedule's reason, without calling a "Moderate" patient "higher risk".
    assert "Brain MRI every 3–4 months with FLAIR and DWI (antibody positive and 18 or more " \
        "infusions)" in text_of(page, "monitoring")
    for region in ("summary", "details"):
        assert "higher risk" not in text_of(page, region).lower()


def test_period_is_said_in_time(stack: Stack) -> None:
    browser, url = _page(stack, EX05)
    summary = text_of(browser.get(url, timeout=30).text, "summary")
    assert ("Period risk for infusions 25–48 (about months 25–48 of treatment at 4-weekly "
            "dosing), not lifetime risk.") in summary


def test_extended_interval_dosing_is_raised_on_the_page_when_the_handout_raises_it(
        stack: Stack) -> None:
    browser, url = _page(stack, EX05)
    monitoring = text_of(browser.get(url, timeout=30).text, "monitoring")
    handout = text_of(browser.get(url + "/handout", timeout=30).text)
    assert "infusions further apart, such as every 6 weeks" in handout
    assert "Extended-interval dosing (every 6 weeks) is an option to discuss" in monitoring
    assert "Ryerson" in monitoring and "The handout raises it with the patient" in monitoring
    # Antibody negative: neither the handout nor the page raises it.
    browser, url = _page(stack, "ex01-negative-30")
    assert "every 6 weeks" not in text_of(browser.get(url + "/handout", timeout=30).text)
    assert "Extended-interval" not in text_of(browser.get(url, timeout=30).text, "monitoring")


def test_discordant_card_shows_both_results_of_the_conflict(stack: Stack) -> None:
    browser, url = _page(stack, "discordant-negative-then-index")
    card = text_of(browser.get(url, timeout=30).text, "input-antibody")
    assert "From 1 lab result" not in card
    assert "the results disagree" in card
    assert "2 lab results that disagree:" in card
    assert "negative · 2026-10-01" in card and "index 2 · 2026-10-03" in card


def test_the_next_infusions_band_and_the_higher_risk_advice_stand_by_the_figure(
        stack: Stack) -> None:
    """ex04 has had 24 infusions: the one about to be given, the 25th, is in the next band
    (1.1 per 1,000, or 8.8 if the index retests above 1.5); ex05 is in an EMA higher-risk group:
    what the prescriber is asked to do, with its sources, beside the monitoring."""
    browser, url = _page(stack, "ex04-index-1-50-24-infusions")
    page = browser.get(url, timeout=30).text
    assert ("The next infusion, the 25th, begins the 25–48 band: 1.1 per 1,000; 8.8 if the "
            "index retests above 1.5.") in text_of(page, "next-band")
    assert "what the prescriber is asked to do" not in text_of(page, "monitoring")
    browser, url = _page(stack, EX05)
    page = browser.get(url, timeout=30).text
    assert "next-band" not in page  # 25 infusions: the next one stays in the 25–48 band
    monitoring = text_of(page, "monitoring")
    assert "Higher-risk group: what the prescriber is asked to do" in monitoring
    assert "Summary of Product Characteristics, section 4.4" in monitoring
