"""What-if values over real HTTP against the sandbox: entered values follow the antibody rules
and are the clinician's, a saved override carries its reason, and a what-if parameter given
twice is refused (docs/clinical-basis.md §9)."""

from __future__ import annotations

import html
import re

import pytest

from .conftest import Stack
from .test_writeback import Tab

pytestmark = pytest.mark.integration

EX05 = "ex05-index-1-51-25-infusions"  # positive, index 1.51 of 2026-09-15: 8.8 per 1,000


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def save_off(page: str) -> bool:
    """The page's Save region says Save is off (no button, or a disabled one)."""
    section = page.split('<section id="save"', 1)[1].split("</section>", 1)[0]
    return 'data-enabled="false"' in section and not re.search(
        r'id="save-button"(?![^>]*disabled)[^>]*>', section)


def test_an_entered_negative_with_a_high_index_gives_no_estimate_and_no_save(
    stack: Stack,
) -> None:
    """What-if "negative" with index 2.5 gave "0.2 per 1,000, Low" with Save on."""
    tab = Tab(stack, EX05)
    what_if = {"antibody": "negative", "index": "2.5", "reason": "result from another lab"}
    data = tab.assessment(**what_if).json()
    assert (data["result"] or {}).get("per1000") is None
    assert data["save"]["enabled"] is False and data["save"]["reason"] == "no-estimate"
    page = tab.browser.get(tab.url, params=what_if, timeout=30)
    shown = text_of(page.text)
    assert "0.2 per 1,000" not in shown
    assert "contradict each other (antibody negative with index 2.5, entered by the clinician)" \
        in shown
    assert save_off(page.text)
    refused = tab.save({"overrides": what_if})
    assert refused.status_code == 409 and refused.json()["saved"] is False
    assert tab.saved(EX05) == []


def test_an_entered_index_is_not_attributed_to_the_charts_result(stack: Stack) -> None:
    tab = Tab(stack, EX05)
    shown = text_of(tab.browser.get(tab.url, params={"index": "0.3"}, timeout=30).text)
    assert "entered anti-JCV index 0.3 (what-if) is indeterminate" in shown
    assert "result of 2026-09-15 is indeterminate" not in shown


def test_a_saved_override_needs_its_reason(stack: Stack) -> None:
    tab = Tab(stack, EX05)
    data = tab.assessment(infusions="30").json()
    assert data["result"]["per1000"] == "8.8"
    assert data["save"]["enabled"] is False and data["save"]["reason"] == "reason-required"
    page = tab.browser.get(tab.url, params={"infusions": "30"}, timeout=30).text
    assert "Give the reason for the what-if values" in text_of(page)
    assert save_off(page)
    # The server checks it whatever the request says: the body's values, or the identifier
    # of a result shown with the what-if.
    for body in ({"overrides": {"infusions": "30"}},
                 {"identifier": data["save"]["identifier"], "overrides": {}},
                 {"identifier": data["save"]["identifier"],
                  "overrides": {"infusions": "30", "reason": "  "}}):
        refused = tab.save(body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "reason-required"
        assert "reason" in refused.json()["message"]
    form = tab.browser.post(tab.url + "/assessment", data={
        "csrf_token": tab.csrf, "identifier": data["save"]["identifier"], "infusions": "30"},
        allow_redirects=False, timeout=60)
    assert form.status_code == 400 and "Reason required" in form.text
    assert tab.saved(EX05) == []
    with_reason = tab.assessment(infusions="30", reason="infusion log of another centre").json()
    assert with_reason["save"]["enabled"] is True
    saved = tab.save({"identifier": with_reason["save"]["identifier"],
                      "overrides": with_reason["overrides"]})
    assert saved.json()["saved"] is True
    notes = " ".join(n["text"] for n in tab.saved(EX05)[0]["note"])
    assert "infusion log of another centre" in notes


@pytest.mark.parametrize("query", ["index=2.0&index=abc", "index=0.5&index=2.0",
                                   "infusions=12&infusions=12", "reason=a&reason=b&infusions=3"])
def test_a_what_if_value_given_twice_is_refused(stack: Stack, query: str) -> None:
    """The first used to win and a second, invalid one was ignored silently."""
    tab = Tab(stack, EX05)
    name = query.split("=", 1)[0]
    api = tab.browser.get(f"{tab.url}/assessment?{query}", timeout=30)
    assert api.status_code == 400 and api.json()["error"] == "bad-override"
    assert "given more than once" in api.json()["detail"] and name in api.json()["detail"]
    for path in ("/results", "", "/handout", "/summary.txt"):
        resp = tab.browser.get(f"{tab.url}{path}?{query}", timeout=30)
        assert resp.status_code == 400, path
    page = tab.browser.get(f"{tab.url}?{query}", timeout=30).text
    assert re.search(rf'id="wi-{name}-error">Given more than once', page)
    assert save_off(page)
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', tab.html))
    field, value = query.split("&", 1)[0].split("=")
    twice = tab.browser.post(tab.url + "/assessment",
                             data=[*form.items(), (field, value), (field, value)],
                             allow_redirects=False, timeout=60)
    assert twice.status_code == 400
    assert tab.saved(EX05) == []
