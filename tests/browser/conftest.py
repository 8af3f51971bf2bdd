"""Real Chromium (Debian's, at /usr/bin/chromium; never a downloaded one) against the app and
the sandbox EHR served over loopback, as in tests/integration.

One stack per session keeps the suite fast: each test starts with ``reset`` + ``reset_data``
(sandbox tokens, switches and created RiskAssessments dropped) and launches its own patient.
The fixtures directory is a copy of ``fhir_fixtures`` plus one hostile patient whose names,
displays and labels carry markup, for the escaping test.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Page
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from smart_app.app import create_app
from smart_app.config import from_mapping
from smart_app.fhir.riskassessment import IDENTIFIER_SYSTEM
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, serve_in_thread
from smart_app.smart import keys
from smart_app.web.services import EXTENSION, Services

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
CLIENT_ID = "pml-risk-browser"
HOSTILE_ID = "xss-patient"
HOSTILE_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">Eve'
READ_ONLY_SCOPES = (
    "launch openid fhirUser online_access patient/Patient.r patient/Observation.rs "
    "patient/MedicationAdministration.rs patient/MedicationStatement.rs "
    "patient/MedicationRequest.rs patient/Medication.rs patient/RiskAssessment.rs"
)

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (.ci/run installs it)")
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1024, "height": 768}}


@dataclass
class Stack:
    base: str
    app: Flask
    sandbox: Flask

    @property
    def iss(self) -> str:
        return f"{self.base}/sandbox/fhir"

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions[EXTENSION]
        return found

    def control(self, **changes: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.base}/sandbox/_control", json=changes, timeout=10)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def token(self, launch_url: str) -> str:
        launch = self.services.repo.get(launch_url.split("?")[0].rstrip("/").rsplit("/", 1)[1])
        assert launch is not None
        return launch.tokens.access_token

    def risk_assessments(self, launch_url: str, patient: str) -> list[dict[str, Any]]:
        """This app's RiskAssessments for ``patient``, read through the sandbox's FHIR API."""
        return self.results(launch_url, patient, "RiskAssessment")

    def results(self, launch_url: str, patient: str, rtype: str) -> list[dict[str, Any]]:
        """This app's results of ``rtype`` (RiskAssessment or DocumentReference)."""
        resp = requests.get(
            f"{self.iss}/{rtype}",
            params={"patient": patient, "identifier": f"{IDENTIFIER_SYSTEM}|"},
            headers={"Authorization": f"Bearer {self.token(launch_url)}"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return [e["resource"] for e in resp.json().get("entry", [])]

    def posts(self) -> list[dict[str, Any]]:
        log = requests.get(f"{self.base}/sandbox/_control", timeout=10).json()["requests"]
        return [r for r in log if r["method"] == "POST" and r["path"].endswith("/RiskAssessment")]


def _hostile_fixture(directory: Path) -> None:
    """ex05 under another id, with markup in every free-text field the page shows."""
    text = (FIXTURES / "ex05-index-1-51-25-infusions.json").read_text(encoding="utf-8")
    bundle = json.loads(text.replace("ex05-index-1-51-25-infusions", HOSTILE_ID))
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            resource["name"] = [{"text": HOSTILE_NAME}]
            resource["identifier"][0]["value"] = "<b>MRN</b>"
        for key in ("medicationCodeableConcept", "code"):
            if isinstance(resource.get(key), dict) and resource["resourceType"] in (
                "MedicationStatement", "MedicationRequest"
            ):
                resource[key]["text"] = resource[key].get("text", "") + (
                    " </textarea><script>window.__xss = 3</script>"
                )
    (directory / f"{HOSTILE_ID}.json").write_text(json.dumps(bundle), encoding="utf-8")


def _fixtures(directory: Path) -> Path:
    directory.mkdir()
    for path in FIXTURES.glob("*.json"):
        shutil.copy(path, directory / path.name)
    _hostile_fixture(directory)
    return directory


def build_stack(tmp: Path, *, scopes: str = "v2", ehr_profile: str = "full") -> Iterator[Stack]:
    signing = keys.generate()
    late = LateApp()
    with serve_in_thread(late) as base:
        keys_file = tmp / "jwks-private.json"
        keys.save(signing, keys_file)
        settings = from_mapping({
            "base_url": base,
            "secret_key": secrets.token_urlsafe(40),
            "session_store": f"sqlite:///{tmp / 'sessions.sqlite3'}",
            "keys_file": str(keys_file),
            "tenants": [{"name": "Sandbox", "iss": f"{base}/sandbox/fhir",
                         "client_id": CLIENT_ID, "auth": "private_key_jwt",
                         "signing_alg": "ES384", "scopes": scopes,
                         "clinic_phone": "(555) 010-0123"}],
        })
        app = create_app(settings, keys=signing)
        sandbox = create_sandbox(SandboxConfig(
            fixtures_dir=_fixtures(tmp / "fixtures"),
            clients=(SandboxClient(client_id=CLIENT_ID, auth="private_key_jwt",
                                   redirect_uris=(f"{base}/callback",),
                                   jwks=signing.public_jwks()),),
            launch_url="/launch",
            allow_control=True,
            ehr_profile=ehr_profile,
        ))
        late.target = DispatcherMiddleware(app, {"/sandbox": sandbox})
        yield Stack(base=base, app=app, sandbox=sandbox)


@pytest.fixture(scope="session")
def stack_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from build_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture
def stack(stack_session: Stack) -> Stack:
    stack_session.control(reset=True, reset_data=True)
    return stack_session


@pytest.fixture(scope="session")
def read_only_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from build_stack(tmp_path_factory.mktemp("ro"), scopes=READ_ONLY_SCOPES)


# -- helpers ------------------------------------------------------------------------------


def launch(page: Page, stack: Stack, patient: str, **params: str) -> str:
    """EHR launch from the sandbox, as the EHR's launch button would; returns the page URL."""
    query = "&".join(f"{k}={v}" for k, v in {"patient": patient, **params}.items())
    page.goto(f"{stack.base}/sandbox/launch?{query}")
    page.wait_for_url("**/launches/**")
    page.wait_for_load_state("load")
    return page.url


def shot(page: Page, name: str, selector: str | None = None) -> None:
    """artifacts/screenshots/<name>.png: the whole page, or only ``selector``'s element."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SCREENSHOTS / f"{name}.png")
    if selector:
        page.locator(selector).first.screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)


def pdf_pages(page: Page, paper: str) -> int:
    """How many pages the browser's own print to PDF makes of the current page."""
    data = page.pdf(format=paper, print_background=True)
    counts = re.findall(rb"/Type\s*/Pages\b[^>]*?/Count (\d+)|/Count (\d+)[^>]*?/Type\s*/Pages\b",
                        data)
    assert counts, "no page tree in the PDF"
    return max(int(a or b) for a, b in counts)


def shown_text(page: Page, selector: str = "body") -> str:
    """The text a reader sees (closed <details> and hidden elements left out)."""
    return str(page.locator(selector).first.inner_text())


def watch_console(page: Page) -> list[str]:
    """Console errors (CSP violations, script errors) collected for the assertions."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def axe_violations(page: Page, stack: Stack) -> list[dict[str, Any]]:
    """WCAG 2.1 A/AA violations at every impact level (minor to critical), axe-core served from
    the app's origin (so the page's CSP stays on: ``script-src 'self'``)."""
    url = f"{stack.base}/__test__/axe.min.js"
    page.route(url, lambda route: route.fulfill(path=str(AXE),
                                                 content_type="application/javascript"))
    page.add_script_tag(url=url)
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    found: list[dict[str, Any]] = result
    return found
