"""The launch page's first render after the callback: server time, page weight and paint.

Run: ``python bench/page_bench.py [--runs 7] [--latency 50] [--no-browser]``.

The app and the sandbox EHR run on loopback as in ``pml-risk demo``; the sandbox adds
``--latency`` ms to each FHIR call. For each patient the page ``/launches/<id>`` is requested
right after the callback, and the bench reports:

* **server total**: wall time of that request (chart read + engine + template);
* **after data**: the part after the chart data arrived, i.e. total minus the time spent in
  ``FhirClient.read_chart`` (measured in-process by wrapping it; the app is not changed);
* **page weight**: the HTML plus every asset the page loads (CSS, per-launch style, app.js,
  Chart.js), uncompressed, as served;
* with Chromium (Debian's, /usr/bin/chromium): **first contentful paint** and **charts drawn**
  (the ``pml-charts-drawn`` mark app.js sets), both counted from the moment the HTML response
  started to arrive: with a cold cache (a new browser profile's first launch) and warm (the next
  launch in that profile; the versioned static assets are then cached).

Targets (the issue): first meaningful paint < 300 ms after the data arrives (server "after
data" + browser paint), page weight < 300 KB.
"""

from __future__ import annotations

import argparse
import logging
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smart_app.app import create_app  # noqa: E402
from smart_app.config import from_mapping  # noqa: E402
from smart_app.fhir.client import FhirClient  # noqa: E402
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox  # noqa: E402
from smart_app.sandbox.testing import follow_launch, serve_in_thread  # noqa: E402
from smart_app.smart import keys  # noqa: E402

PATIENTS = (("light (ex05)", "ex05-index-1-51-25-infusions"), ("heavy", "heavy"),
            ("incomplete", "no-antibody-result"))
CLIENT_ID = "pml-risk-page-bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]
_reads = threading.local()


def _instrument() -> None:
    """Time ``FhirClient.read_chart`` per thread: the data-arrival point inside a request."""
    original: Callable[..., Any] = FhirClient.read_chart

    def timed(self: FhirClient, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _reads.last = time.perf_counter() - start
            READS.append(_reads.last)

    FhirClient.read_chart = timed  # type: ignore[method-assign]


READS: list[float] = []


class LateApp:
    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


def build(late: LateApp, base: str, instance: Path, latency: int) -> None:
    signing = keys.generate()
    settings = from_mapping({
        "base_url": base,
        "secret_key": secrets.token_urlsafe(40),
        "session_store": f"sqlite:///{instance / 'sessions.sqlite3'}",
        "keys_file": str(instance / "jwks.json"),
        "tenants": [{"iss": f"{base}/sandbox/fhir", "client_id": CLIENT_ID,
                     "auth": "private_key_jwt", "signing_alg": "ES384"}],
    })
    app = create_app(settings, keys=signing)
    sandbox = create_sandbox(SandboxConfig(
        fixtures_dir=ROOT / "fhir_fixtures",
        clients=(SandboxClient(client_id=CLIENT_ID, auth="private_key_jwt",
                               redirect_uris=(f"{base}/callback",),
                               jwks=signing.public_jwks()),),
        launch_url=f"{base}/launch", allow_control=True, latency_ms=latency,
    ))
    late.target = DispatcherMiddleware(app, {"/sandbox": sandbox})


def _to_page(browser: requests.Session, base: str, patient: str) -> str:
    """Follow the launch up to (not including) the page request; returns the page URL."""
    url, _ = follow_launch(browser, f"{base}/sandbox/launch?patient={patient}",
                           stop_at="/launches/")
    if "/launches/" not in url:
        raise RuntimeError(f"launch stopped at {url}")
    return url

def server_run(base: str, patient: str) -> dict[str, float]:
    browser = requests.Session()
    browser.trust_env = False
    page = _to_page(browser, base, patient)
    READS.clear()
    start = time.perf_counter()
    resp = browser.get(page, timeout=60)
    total = time.perf_counter() - start
    assert resp.status_code == 200, resp.status_code
    read = READS[-1] if READS else 0.0
    assets = re.findall(r'(?:href|src)="(/(?:static|launches)/[^"?]+\.(?:css|js)'
                        r'(?:\?[^"]*)?)"', resp.text)
    weight = len(resp.content) + sum(
        len(browser.get(base + a, timeout=30).content) for a in assets)
    return {"total_ms": total * 1000, "after_data_ms": (total - read) * 1000,
            "html_kb": len(resp.content) / 1024, "weight_kb": weight / 1024}


TIMING = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const charts = performance.getEntriesByName('pml-charts-drawn')[0];
    return {fcp: fcp ? fcp.startTime - nav.responseStart : null,
            charts: charts ? charts.startTime - nav.responseStart : null};
}"""


def _paint(page: Any, base: str, patient: str) -> dict[str, float | None]:
    page.goto(f"{base}/sandbox/launch?patient={patient}")
    page.wait_for_url("**/launches/**")
    page.wait_for_load_state("load")
    page.wait_for_function(
        "() => performance.getEntriesByName('pml-charts-drawn').length > 0 || "
        "!document.querySelector('canvas[data-chart]')", timeout=10000)
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length > 0",
        timeout=10000)
    timing: dict[str, float | None] = page.evaluate(TIMING)
    return timing


def browser_runs(base: str, patient: str, runs: int) -> dict[str, list[dict[str, Any]]]:
    """Per run: a fresh browser profile (cold cache), then a relaunch in it (warm cache)."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            context = chromium.new_context(viewport={"width": 1024, "height": 768})
            page = context.new_page()
            results["cold"].append(_paint(page, base, patient))
            results["warm"].append(_paint(page, base, patient))
            context.close()
        chromium.close()
    return results


def _median(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return "-"
    return f"{statistics.median(found):.0f} ms ({min(found):.0f}-{max(found):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--latency", type=int, default=50, help="sandbox FHIR latency (ms)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium figures")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("pml_risk.audit").setLevel(logging.WARNING)
    _instrument()
    use_browser = not args.no_browser and Path(CHROMIUM).exists()
    print(f"sandbox FHIR latency {args.latency} ms, {args.runs} runs per patient "
          "(median, min-max); paint figures from the HTML response start, cold cache")
    print(f"{'patient':<14} {'server total':>20} {'after data':>18} {'HTML':>8} "
          f"{'page weight':>12}" + (f" {'paint cold':>18} {'charts cold':>18}"
                                    f" {'paint warm':>18} {'charts warm':>18}"
                                    if use_browser else ""))
    late = LateApp()
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(late) as base:
        build(late, base, Path(tmp), args.latency)
        server_run(base, PATIENTS[0][1])  # warm-up: discovery, JWKS, capability, templates
        for label, patient in PATIENTS:
            runs = [server_run(base, patient) for _ in range(args.runs)]
            line = (f"{label:<14} {_median([r['total_ms'] for r in runs]):>20} "
                    f"{_median([r['after_data_ms'] for r in runs]):>18} "
                    f"{runs[0]['html_kb']:>6.1f}KB {runs[0]['weight_kb']:>10.1f}KB")
            if use_browser:
                paints = browser_runs(base, patient, args.runs)
                for kind in ("cold", "warm"):
                    line += (f" {_median([p['fcp'] for p in paints[kind]]):>18}"
                             f" {_median([p['charts'] for p in paints[kind]]):>18}")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
