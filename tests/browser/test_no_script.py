"""The page in a browser that runs no script, as some embedded EHR browsers (an old IE engine in
MPages or older PowerChart) effectively do: sign-in, charts as tables, what-if and save."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, expect

from .conftest import Stack, launch

PATIENT = "ex03-index-0-90"


def test_sign_in_what_if_and_save_work_without_script(
    browser: Browser, browser_context_args: dict[str, Any], stack: Stack
) -> None:
    context = browser.new_context(**browser_context_args, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{stack.base}/sandbox/launch?patient={PATIENT}")
        # The authorize request is a form POST (the sandbox advertises authorize-post); with no
        # script to submit it, its button does.
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url("**/launches/**")
        url = page.url
        assert page.locator('meta[http-equiv="X-UA-Compatible"]').get_attribute(
            "content") == "IE=edge"
        # Charts degrade to their tables.
        expect(page.locator("#chart-strata")).to_be_hidden()
        expect(page.locator("details.chart-table table").first).to_be_visible()
        expect(page.locator("details.chart-table table").nth(1)).to_be_visible()
        # What-if: a plain GET form.
        page.fill("#wi-infusions", "10")
        page.fill("#wi-reason", "infusions given elsewhere")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url("**infusions=10**")
        expect(page.locator("#save-form input[name=infusions]")).to_have_value("10")
        # Save: a plain form POST with the CSRF token, then back to the page.
        page.locator("#save-button").click()
        page.wait_for_load_state("load")
        expect(page.locator("#save-button")).to_have_text("Already in the chart")
        saved = stack.risk_assessments(url, PATIENT)
        assert len(saved) == 1
        notes = " ".join(n["text"] for n in saved[0].get("note", []))
        assert "infusions given elsewhere" in notes
        # The same form posted again (a reload, a second click) creates nothing more.
        form = {name: str(page.locator(f"#save-form input[name={name}]").get_attribute("value"))
                for name in ("csrf_token", "identifier", "infusions", "reason")}
        again = context.request.post(url.split("?")[0] + "/assessment", form=form,
                                     max_redirects=0)
        assert again.status == 303
        assert len(stack.risk_assessments(url, PATIENT)) == 1
        forged = context.request.post(url.split("?")[0] + "/assessment",
                                      form={**form, "csrf_token": "x"}, max_redirects=0)
        assert forged.status == 403
    finally:
        context.close()


def test_save_posts_the_form_where_fetch_and_promise_are_missing(
    browser: Browser, browser_context_args: dict[str, Any], stack: Stack
) -> None:
    """An IE10-era engine (Oracle Health MPages): the script runs, but without fetch or Promise
    the Save click must stay a form post, never a cancelled click that saves nothing."""
    context = browser.new_context(**browser_context_args)
    context.add_init_script("delete window.fetch; delete window.Promise;")
    page = context.new_page()
    patient = "ex04-index-1-50-24-infusions"  # saved by no other test of this session
    try:
        url = launch(page, stack, patient)
        assert page.evaluate("typeof window.fetch + typeof window.Promise") == (
            "undefinedundefined")
        assert stack.risk_assessments(url, patient) == []
        page.locator("#save-button").click()
        page.wait_for_url(url)
        page.wait_for_load_state("load")
        expect(page.locator("#save-button")).to_have_text("Already in the chart")
        assert len(stack.risk_assessments(url, patient)) == 1
    finally:
        context.close()
