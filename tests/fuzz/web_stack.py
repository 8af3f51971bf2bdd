"""One app + sandbox EHR over real HTTP for a whole fuzz module, with an overlay for raw answers.

The integration tests build a stack per test; a property test runs hundreds of examples, so the
stack (and one launch per fixture patient) is built once per module and each example only
changes what the EHR answers.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from smart_app.app import create_app
from smart_app.config import from_mapping
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, Overlay, serve_in_thread, submit_auto_form

from .mutations import FIXTURES, dumps

CLIENT_ID = "pml-risk-fuzz"
SEARCHED = ("Observation", "MedicationAdministration", "MedicationStatement",
            "MedicationRequest")


@dataclass
class Tab:
    """A launched page in a browser: its URL and the CSRF token the page carries."""

    browser: requests.Session
    page: str
    csrf: str


@dataclass
class WebStack:
    base: str
    app: Any
    sandbox: Any
    overlay: Overlay
    tabs: dict[str, Tab] = field(default_factory=dict)

    @property
    def iss(self) -> str:
        return f"{self.base}/sandbox/fhir"

    def browser(self) -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        return http

    def tab(self, patient: str) -> Tab:
        """A launch for ``patient`` (made once, then reused)."""
        if patient not in self.tabs:
            browser = self.browser()
            url = f"{self.base}/sandbox/launch?patient={patient}"
            for _ in range(10):
                resp = submit_auto_form(
                    browser, browser.get(url, allow_redirects=False, timeout=30), url)
                assert resp.status_code in (302, 303), resp.text[:300]
                url = urljoin(url, resp.headers["Location"])
                if urlsplit(url).path.startswith("/launches/"):
                    break
            self.overlay.clear()
            html = browser.get(url, timeout=30).text
            found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
            assert found is not None, html[:500]
            self.tabs[patient] = Tab(browser, url, found.group(1))
        return self.tabs[patient]

    def serve_chart(self, patient: str, doc: Any) -> None:
        """Answer the chart's reads from the (mutated) Bundle ``doc``, raw markers included."""
        self.overlay.clear()
        entries = doc.get("entry") if isinstance(doc, dict) else None
        if not isinstance(entries, list):  # the Bundle itself is broken: serve it as a search
            self.overlay.answer("/fhir/Observation", dumps(doc))
            return
        groups: dict[str, list[Any]] = {t: [] for t in SEARCHED}
        patient_body: Any = None
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else entry
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            if rtype == "Patient" and patient_body is None:
                patient_body = resource
                continue
            searched = isinstance(rtype, str) and rtype in groups
            target = rtype if searched and isinstance(rtype, str) else "MedicationAdministration"
            mode = "match" if searched else "include"
            groups[target].append({"resource": resource, "search": {"mode": mode}}
                                  if isinstance(entry, dict) else entry)
        for rtype, found in groups.items():
            self.overlay.answer(f"/fhir/{rtype}", dumps({
                "resourceType": "Bundle", "type": "searchset", "entry": found}))
        if patient_body is not None:
            self.overlay.answer(f"/fhir/Patient/{patient}", dumps(patient_body))

    def saved_count(self) -> int:
        """RiskAssessments the EHR has been asked to create so far."""
        log = requests.get(f"{self.base}/sandbox/_control", timeout=30).json()["requests"]
        return sum(1 for r in log if r["method"] == "POST"
                   and r["path"] == "/sandbox/fhir/RiskAssessment")


def web_stack(tmp: Path) -> Iterator[WebStack]:
    """A context-managed ``WebStack`` (use with ``contextlib.contextmanager``)."""
    with ExitStack() as stack:
        late = LateApp()
        base = stack.enter_context(serve_in_thread(late))
        settings = from_mapping({
            "base_url": base,
            "secret_key": secrets.token_urlsafe(40),
            "session_store": f"sqlite:///{tmp / 'sessions.sqlite3'}",
            "keys_file": str(tmp / "jwks-private.json"),
            "fhir_timeout": 5.0,
            "tenants": [{"name": "Sandbox", "iss": f"{base}/sandbox/fhir",
                         "client_id": CLIENT_ID, "auth": "public"}],
        })
        app = create_app(settings)
        sandbox = create_sandbox(SandboxConfig(
            fixtures_dir=FIXTURES,
            clients=(SandboxClient(client_id=CLIENT_ID, auth="public",
                                   redirect_uris=(f"{base}/callback",)),),
            launch_url="/launch",
            allow_control=True,
        ))
        overlay = Overlay(sandbox)
        late.target = DispatcherMiddleware(app, {"/sandbox": overlay})
        yield WebStack(base=base, app=app, sandbox=sandbox, overlay=overlay)


def patient_of(name: str) -> str:
    """The Patient id of fixture file ``name``."""
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return next(e["resource"]["id"] for e in doc["entry"]
                if e["resource"]["resourceType"] == "Patient")
