"""Save to chart as a plain form post (no script): CSRF as a form field, back to the page on
success, a page that says why (with the summary to paste) when nothing was saved."""

from __future__ import annotations

import re

import pytest

from .conftest import StackFactory
from .test_writeback import PATIENT, Tab

pytestmark = pytest.mark.integration


def _form(tab: Tab) -> dict[str, str]:
    form = tab.html.split('id="save-form"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))


def test_the_form_post_saves_once_and_returns_to_the_page(make_stack: StackFactory) -> None:
    stack = make_stack()
    tab = Tab(stack)
    fields = _form(tab)
    assert fields["csrf_token"] == tab.csrf and fields["identifier"] == tab.identifier
    for _ in range(2):
        resp = tab.browser.post(tab.url + "/assessment", data=fields, allow_redirects=False,
                                timeout=60)
        assert resp.status_code == 303 and resp.headers["Location"].endswith(
            tab.url.split(stack.base, 1)[1])
    assert len(tab.saved(PATIENT)) == 1
    page = tab.browser.get(tab.url, timeout=30).text
    assert "Already in the chart" in page
    refused = tab.browser.post(tab.url + "/assessment", data={**fields, "csrf_token": "no"},
                               allow_redirects=False, timeout=30)
    assert refused.status_code == 403 and "security token" in refused.text


def test_a_refused_form_save_says_why_and_offers_the_summary(make_stack: StackFactory) -> None:
    stack = make_stack(sandbox={"ehr_profile": "read-only"})
    tab = Tab(stack)
    resp = tab.browser.post(tab.url + "/assessment", data=_form(tab), allow_redirects=False,
                            timeout=60)
    assert resp.status_code == 403
    assert "Read-only" in resp.text and "1.1 per 1,000" in resp.text  # the summary to paste
    assert "Back to the result" in resp.text
