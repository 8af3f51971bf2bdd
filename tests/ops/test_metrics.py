"""``GET /metrics`` on ``pml-risk serve`` with two gunicorn workers: what an operator scrapes.

A launch, a what-if, a save and a CDS call move the counters, summed over both workers
(prometheus_client's multi-process mode), and no label carries a patient, launch or user id.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict

import pytest
import requests

from .conftest import Deployment, DeploymentFactory
from .harness import ROOT, browser, launch

PATIENT = "ex05-index-1-51-25-infusions"
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    d = make_deployment(redis=False, cds=True)
    d.start(d.port_a, "a", workers=2, threads=4)
    return d


def scrape(base: str, **headers: str) -> requests.Response:
    return requests.get(f"{base}/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(LABEL.findall(match.group("labels") or ""))
        found[(match.group("name"), labels)] += float(match.group("value"))
    return found


def total(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return sum(v for (n, ls), v in found.items()
               if n == name and set(labels.items()) <= set(ls))


def _csrf(page_html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page_html)
    assert match
    return match.group(1)


def test_a_visit_and_a_cds_call_move_the_counters_summed_over_both_workers(
    deployment: Deployment,
) -> None:
    d = deployment
    before = samples(scrape(d.base).text)

    http = browser()
    page = launch(http, d.ehr, PATIENT)
    launch_id = page.rsplit("/", 1)[1]
    html = http.get(page, timeout=30).text
    assert http.get(page + "/assessment", timeout=30).json()["status"] == "ok"
    assert http.get(page + "/assessment", params={"infusions": "12"},
                    timeout=30).status_code == 200  # a what-if
    saved = http.post(page + "/assessment", headers={"X-CSRF-Token": _csrf(html)}, json={},
                      timeout=30)
    assert saved.status_code in (200, 201), saved.text
    fired = requests.post(f"{d.ehr}/sandbox/_cds",
                          json={"hook": "patient-view", "patient": PATIENT}, timeout=60)
    assert fired.status_code == 200 and fired.json()["status"] == 200, fired.text
    refused = requests.post(f"{d.base}/cds-services/pml-risk-patient-view", json={},
                            headers={"Authorization": "Bearer not-a-jwt"}, timeout=10)
    assert refused.status_code == 401

    # Whichever worker answers a scrape sums every worker's samples: twenty scrapes (both
    # workers answer some) all count the one launch, though one worker alone handled it.
    after: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for _ in range(20):
        resp = scrape(d.base)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        after = samples(resp.text)
        assert (total(after, "pml_risk_launches_total", outcome="established")
                - total(before, "pml_risk_launches_total", outcome="established")) == 1

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("pml_risk_launches_total", outcome="established") == 1
    assert moved("pml_risk_assessments_total", status="estimate") >= 3  # page, JSON, what-if
    assert moved("pml_risk_writebacks_total", rung="riskassessment", outcome="saved") == 1
    assert moved("pml_risk_cds_calls_total", service="pml-risk-patient-view",
                 outcome="cards") == 1
    assert moved("pml_risk_cds_calls_total", outcome="refused") == 1
    assert moved("pml_risk_cds_jwt_refusals_total") == 1
    assert moved("pml_risk_cds_call_seconds_count", service="pml-risk-patient-view") == 2
    assert moved("pml_risk_ehr_requests_total", resource="Observation", status_class="2xx") >= 1
    assert moved("pml_risk_ehr_requests_total", resource="RiskAssessment") >= 1
    assert moved("pml_risk_ehr_request_seconds_count", resource="Observation") >= 1
    assert moved("pml_risk_session_store_seconds_count", operation="get") >= 1

    # No label value is an id: not the patient's, the launch's, the user's, nor a request's.
    text = scrape(d.base).text
    for forbidden in (PATIENT, launch_id, "dr-ada", "Practitioner/"):
        assert forbidden not in text, forbidden
    for (_, labels) in after:
        for _, value in labels:
            assert len(value) <= 40 and not re.search(r"[0-9a-f]{16}", value), value


def test_metrics_are_refused_through_an_untrusted_proxy(deployment: Deployment) -> None:
    """A reverse proxy on the same host forwards internet traffic from loopback: a request
    that carries forwarding headers is not a local scraper's."""
    assert scrape(deployment.base).status_code == 200
    assert scrape(deployment.base, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    assert scrape(deployment.base, Forwarded="for=203.0.113.9").status_code == 404


def test_metrics_are_refused_to_addresses_outside_the_allowlist(
    make_deployment: DeploymentFactory,
) -> None:
    d = make_deployment(redis=False, extra={"metrics": {"allow": ["192.0.2.0/24"]}})
    d.start(d.port_b, "b", workers=1)
    assert scrape(f"http://127.0.0.1:{d.port_b}").status_code == 404
    assert requests.get(f"http://127.0.0.1:{d.port_b}/healthz", timeout=5).status_code == 200


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)


_APP = """
import sys
from smart_app.app import create_app
from smart_app.config import Settings, Tenant
app = create_app(Settings(secret_key="s" * 40, session_store="memory://", tenants=(
    Tenant(name="t", iss="http://127.0.0.1:9/fhir", client_id="c", auth="public"),)))
client = app.test_client()
assert client.get("/healthz?patient=ex05").status_code == 200
assert client.get("/launches/f00dfeed/assessment?index=2").status_code in (401, 404)
loaded = sorted(m for m, module in sys.modules.items()
                if m.startswith("opentelemetry") and module is not None)
print("LOADED", loaded)
"""


def test_traces_with_the_otel_extra_carry_no_query_string_and_no_ids() -> None:
    pytest.importorskip("opentelemetry.instrumentation.flask")
    done = _run(_APP, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none", OTEL_SERVICE_NAME="pml-risk")
    assert done.returncode == 0, done.stderr[-3000:]
    spans = done.stdout + done.stderr
    assert '"name": "GET /healthz"' in spans
    assert '"name": "GET /launches/<launch_id>/assessment"' in spans
    assert "/launches/{id}/assessment" in spans
    for leaked in ("patient=ex05", "index=2", "f00dfeed"):
        assert leaked not in spans, leaked


_LAUNCH = """
import pathlib
import requests
from smart_app.app import create_app
from smart_app.config import from_mapping
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import LateApp, follow_launch, mounted, serve_in_thread
late = LateApp()
with serve_in_thread(late) as base:
    app = create_app(from_mapping({"base_url": base, "secret_key": "s" * 40,
        "session_store": "memory://", "tenants": [{"name": "t", "iss": base + "/sandbox/fhir",
        "client_id": "c", "auth": "public"}]}))
    sandbox = create_sandbox(SandboxConfig(fixtures_dir=pathlib.Path(ROOT, "fhir_fixtures"),
        clients=(SandboxClient(client_id="c", auth="public",
                               redirect_uris=(base + "/callback",)),),
        launch_url="/launch"))
    late.target = mounted(sandbox, app)
    http = requests.Session()
    http.trust_env = False
    url, resp = follow_launch(http, base + "/sandbox/launch?patient=PATIENT")
    assert resp.status_code == 200 and "/launches/" in url, (resp.status_code, url)
    print("LAUNCH", url)
"""


def test_a_traced_launch_has_spans_for_the_callback_each_fhir_search_and_the_page() -> None:
    pytest.importorskip("opentelemetry.instrumentation.requests")
    code = _LAUNCH.replace("ROOT", repr(str(ROOT))).replace("PATIENT", PATIENT)
    done = _run(code, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none", OTEL_BSP_SCHEDULE_DELAY="100")
    assert done.returncode == 0, done.stderr[-3000:]
    spans = done.stdout  # the console exporter's (the test server's access log is stderr)
    launch_id = re.search(r"LAUNCH \S+/launches/(\w+)", spans)
    assert launch_id
    assert '"name": "GET /callback"' in spans
    assert '"name": "GET /launches/<launch_id>"' in spans
    for search in ("/sandbox/fhir/Observation", "/sandbox/fhir/MedicationAdministration"):
        assert f'"http.url": "{search}' in spans or search in spans, search
    for leaked in (f"patient={PATIENT}", f"Patient/{PATIENT}", launch_id.group(1), "code="):
        assert leaked not in spans.replace(f"LAUNCH {launch_id.group(0)[7:]}", ""), leaked


def test_without_otel_settings_nothing_of_opentelemetry_is_imported() -> None:
    done = _run(_APP)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout


def test_without_the_extra_the_app_runs_untraced() -> None:
    """OTEL_* set, but OpenTelemetry not installed (simulated by refusing its import)."""
    blocker = "import sys; sys.modules['opentelemetry'] = None  # as if not installed\n"
    done = _run(blocker + _APP, OTEL_TRACES_EXPORTER="console")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout
    assert '"name"' not in done.stdout + done.stderr


def test_label_values_are_codes_never_free_text() -> None:
    from smart_app.ops.metrics import _code, resource_of

    assert resource_of("https://ehr/fhir/Patient/ex05") == "Patient"
    assert resource_of("https://ehr/fhir/Observation?patient=ex05") == "Observation"
    assert resource_of("https://ehr/fhir/ex05") == "other"
    assert resource_of("https://ehr/oauth2/token") == "token"
    assert _code("unknown-iss") == "unknown-iss"
    assert _code("internal:KeyError") == "internal"
    assert _code("Patient ex05 not found") == "other"
    assert _code("pml-risk-patient-view", {"pml-risk-order"}) == "other"

