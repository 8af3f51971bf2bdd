"""The figure on a card equals the figure the app shows, for every fixture patient; and a card's
SMART link launches the app with the card's id as ``appContext``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import AuditLines, Stack, StackFactory, follow_to_app

pytestmark = pytest.mark.integration

FIGURE = re.compile(r"^PML risk ([0-9.]+) per 1,000 ")


def app_assessment(stack: Stack, patient: str, **launch: str) -> dict[str, Any]:
    query = urlencode({"patient": patient, **launch})
    browser, page = follow_to_app(stack.base, f"{stack.base}/sandbox/launch?{query}")
    resp = browser.get(page + "/assessment", timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    data: dict[str, Any] = resp.json()
    return data


#: Fixture patients with no natalizumab record at all: patient-view stays silent for them.
NOT_IN_CARE = {"no-infusions"}
ORDINAL = re.compile(r", (\d+)(st|nd|rd|th) infusion with this order")


def test_the_card_figure_is_the_apps_for_every_fixture_patient(
        stack: Stack, fixture_index: list[dict[str, Any]]) -> None:
    assert len(fixture_index) >= 20
    for item in fixture_index:
        patient = item["id"]
        if patient in NOT_IN_CARE:
            assert stack.fire("patient-view", patient)["body"] == {"cards": []}, patient
            continue
        card = stack.card("patient-view", patient)
        app = app_assessment(stack, patient)
        found = FIGURE.match(card["summary"])
        if app["result"] is None:
            assert found is None and card["summary"].startswith("No PML estimate"), patient
            assert card["indicator"] == "warning", patient
        else:
            assert found is not None, (patient, card["summary"])
            assert found.group(1) == app["result"]["per1000"], patient
            assert app["result"]["per1000"] in card["detail"], patient
        # The order card, answered from the same data, speaks of the infusion being ordered:
        # the chart's count plus one (its figure is that band's; see test_service).
        ordered = stack.card("order-sign", patient)["summary"]
        if found is not None:
            counted = ORDINAL.search(ordered)
            assert counted is not None, (patient, ordered)
            assert int(counted.group(1)) == app["inputs"]["exposure"]["infusions"] + 1, patient
        else:
            assert ordered.startswith("No PML estimate"), (patient, ordered)


@pytest.mark.parametrize("profile", ["epic-like", "oracle-like"])
def test_the_card_figure_is_the_apps_on_vendor_like_ehrs(
        make_stack: StackFactory, fixture_index: list[dict[str, Any]], profile: str) -> None:
    """Page caps, types not offered and _include limits make the EHR's prefetch partial or
    failed; the service then reads with the app's own plan, so the figure still agrees."""
    stack = make_stack(sandbox={"ehr_profile": profile})
    for item in fixture_index:
        patient = item["id"]
        if patient in NOT_IN_CARE:
            continue
        data = stack.fire("patient-view", patient)
        assert data["status"] == 200, (patient, data["body"])
        assert len(data["body"]["cards"]) == 1, (patient, data)
        (card,) = data["body"]["cards"]
        app = app_assessment(stack, patient)
        found = FIGURE.match(card["summary"])
        expected = app["result"]["per1000"] if app["result"] else None
        assert (found.group(1) if found else None) == expected, (patient, card["summary"])


def test_the_card_link_launches_the_app_with_the_cards_id(
        stack: Stack, audit_lines: AuditLines) -> None:
    card = stack.card("patient-view", "ex03-index-0-90")
    link = next(link for link in card["links"] if link["type"] == "smart")
    # The EHR (the sandbox) launches the link's URL with the link's appContext.
    start = f"{stack.base}/sandbox/cds/launch?" + urlencode({
        "patient": "ex03-index-0-90", "url": link["url"], "appContext": link["appContext"]})
    browser, page = follow_to_app(stack.base, start)
    data = browser.get(page + "/assessment", timeout=30).json()
    assert data["launch"]["appContext"] == card["uuid"]
    assert data["launch"]["patient"] == "Patient/ex03-index-0-90"
    established = audit_lines.events("launch.established")[-1]
    assert established["card"] == card["uuid"]
    call = next(e for e in audit_lines.events("cds.call") if e.get("card") == card["uuid"])
    assert call["patient"] == "ex03-index-0-90"  # the trail ties the launch to its card
    # The sandbox, like Oracle's "allowed links", launches only the registered app URL.
    bad = browser.get(f"{stack.base}/sandbox/cds/launch?" + urlencode({
        "patient": "ex03-index-0-90", "url": "https://elsewhere.example/launch"}), timeout=10,
        allow_redirects=False)
    assert bad.status_code == 400
