"""CDS Hooks in Chromium: the sandbox EHR opens a chart, shows the app's card beside it, and the
card's link launches the app (with the card's id as appContext); ordering natalizumab shows
the order card, and dismissing it sends feedback."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from smart_app.app import create_app
from smart_app.config import from_mapping
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, serve_in_thread
from smart_app.smart import keys

from .conftest import FIXTURES, shot, watch_console

pytestmark = pytest.mark.browser

CLIENT_ID = "pml-risk-cds-browser"
EX05_SUMMARY = "PML risk 8.8 per 1,000 (anti-JCV index 1.51, 25 infusions)"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cds-browser")
    signing = keys.generate()
    late = LateApp()
    with serve_in_thread(late) as root:
        keys.save(signing, tmp / "jwks-private.json")
        settings = from_mapping({
            "base_url": root, "secret_key": secrets.token_urlsafe(40),
            "session_store": f"sqlite:///{tmp / 'sessions.sqlite3'}",
            "keys_file": str(tmp / "jwks-private.json"),
            "tenants": [{"name": "Sandbox", "iss": f"{root}/sandbox/fhir",
                         "client_id": CLIENT_ID, "auth": "private_key_jwt",
                         "signing_alg": "ES384",
                         "cds": {"issuer": f"{root}/sandbox",
                                 "jwks_url": f"{root}/sandbox/cds/jwks.json",
                                 "jcv_order": "http://loinc.org|70173-0"}}],
        })
        app = create_app(settings, keys=signing)
        sandbox = create_sandbox(SandboxConfig(
            fixtures_dir=FIXTURES,
            clients=(SandboxClient(client_id=CLIENT_ID, auth="private_key_jwt",
                                   redirect_uris=(f"{root}/callback",),
                                   jwks=signing.public_jwks()),),
            launch_url="/launch", allow_control=True, cds_services="/cds-services"))
        late.target = DispatcherMiddleware(app, {"/sandbox": sandbox})
        yield root


def test_chart_card_then_launch_with_app_context(page: Page, base: str) -> None:
    errors = watch_console(page)
    page.goto(f"{base}/sandbox/")
    page.locator("tr", has_text="Priya Raman").locator("a.chart").click()
    expect(page.locator("#patient-name")).to_have_text("Priya Raman")
    card = page.locator("#cds-cards .cds-card")
    expect(card).to_have_count(1)
    expect(card.locator(".summary")).to_have_text(EX05_SUMMARY)
    expect(card).to_have_attribute("data-indicator", "warning")
    expect(card.locator(".source")).to_contain_text("pml-risk (table berger-fox-2016)")
    expect(card.locator(".detail table")).to_contain_text("Natalizumab infusions")
    card_id = card.get_attribute("data-uuid")
    assert card_id and re.fullmatch(r"[0-9a-f-]{36}", card_id)
    shot(page, "cds-chart-card")
    card.locator("a.card-link.smart").click()
    page.wait_for_url("**/launches/**")
    expect(page.locator(".risk-figure")).to_have_text("8.8 per 1,000")  # the card's figure
    data = page.request.get(page.url.split("?")[0] + "/assessment").json()
    assert data["launch"]["appContext"] == card_id
    assert data["launch"]["patient"] == "Patient/ex05-index-1-51-25-infusions"
    assert errors == []


def test_order_natalizumab_then_dismiss_with_a_reason(page: Page, base: str) -> None:
    errors = watch_console(page)
    page.goto(f"{base}/sandbox/chart/stale-result")
    page.locator("#order-natalizumab").click()
    card = page.locator("#cds-cards .cds-card")
    expect(page.locator("#cds-cards h2")).to_have_text("CDS: order-select")
    expect(card.locator(".suggestion")).to_have_text(
        "Suggestion: Order anti-JCV antibody test with index")
    page.locator("#sign-order").click()
    expect(page.locator("#cds-cards h2")).to_have_text("CDS: order-sign")
    card.locator("select[name=reason]").select_option("cds-not-applicable")
    card.get_by_role("button", name="Dismiss").click()
    expect(page.locator(".feedback-status")).to_have_text("Feedback sent: 200")
    shot(page, "cds-order-feedback")
    assert errors == []


def test_the_knobs_show_a_412_and_a_refused_jwt(page: Page, base: str) -> None:
    page.goto(f"{base}/sandbox/chart/ex01-negative-30")
    expect(page.locator(".cds-card .summary")).to_have_text(
        "PML risk 0.2 per 1,000 (anti-JCV negative, 30 infusions)")
    page.locator("select[name=prefetch]").select_option("absent")
    page.locator("select[name=fhir]").select_option("other")
    page.get_by_role("button", name="Reopen chart").click()
    expect(page.locator(".cds-error")).to_contain_text("answered 412")
    page.goto(f"{base}/sandbox/chart/ex01-negative-30?jwt=foreign-key")
    expect(page.locator(".cds-error")).to_have_text("The CDS service answered 401")
