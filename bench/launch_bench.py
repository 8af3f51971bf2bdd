"""Launch-to-assessment time and FHIR round trips, with the sandbox EHR at 50 ms latency.

Run: ``python bench/launch_bench.py [--runs 5] [--latency 50]``.

Everything is on loopback in one process: the app at ``/`` and the sandbox at ``/sandbox``, as
in ``pml-risk demo``. "Launch to assessment" is the wall time from the EHR launch
(``GET /sandbox/launch?patient=...``) until the launch page, which carries the assessment, has
arrived: launch redirect, discovery (cached after the first run), authorize, token exchange,
id_token check, chart read and risk engine. The sandbox's latency applies to its FHIR API
requests (not to its authorize/token endpoints), so the FHIR figures are the ones that show
how the wave design holds up over a slow network.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smart_app.app import create_app  # noqa: E402
from smart_app.config import from_mapping  # noqa: E402
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox  # noqa: E402
from smart_app.sandbox.testing import follow_launch, serve_in_thread  # noqa: E402
from smart_app.smart import keys  # noqa: E402

PATIENTS = (("light", "ex01-negative-30"), ("heavy", "heavy"))
CLIENT_ID = "pml-risk-bench"


class LateApp:
    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


def build(late: LateApp, base: str, instance: Path, latency: int, page_size: int) -> None:
    signing = keys.generate()
    settings = from_mapping(
        {
            "base_url": base,
            "secret_key": secrets.token_urlsafe(40),
            "session_store": f"sqlite:///{instance / 'sessions.sqlite3'}",
            "keys_file": str(instance / "jwks.json"),
            "fhir_page_size": page_size,
            "tenants": [{"iss": f"{base}/sandbox/fhir", "client_id": CLIENT_ID,
                         "auth": "private_key_jwt", "signing_alg": "ES384"}],
        }
    )
    app = create_app(settings, keys=signing)
    sandbox = create_sandbox(
        SandboxConfig(
            fixtures_dir=ROOT / "fhir_fixtures",
            clients=(SandboxClient(client_id=CLIENT_ID, auth="private_key_jwt",
                                   redirect_uris=(f"{base}/callback",),
                                   jwks=signing.public_jwks()),),
            launch_url=f"{base}/launch",
            allow_control=True,
            latency_ms=latency,
        )
    )
    late.target = DispatcherMiddleware(app, {"/sandbox": sandbox})


def control(base: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = requests.post(f"{base}/sandbox/_control", json=changes,
                                         timeout=10).json()
    return data


def one_run(base: str, patient: str) -> dict[str, float]:
    control(base, clear_requests=True)
    browser = requests.Session()
    browser.trust_env = False
    start = time.perf_counter()
    url, page = follow_launch(browser, f"{base}/sandbox/launch?patient={patient}")
    launch_s = time.perf_counter() - start
    assert page.status_code == 200 and "/launches/" in url, page.status_code
    log = control(base)["requests"]
    fhir = [r for r in log if r["path"].startswith("/sandbox/fhir/")
            and ".well-known" not in r["path"]]
    start = time.perf_counter()
    data = browser.get(page.url + "/assessment", timeout=60).json()
    json_s = time.perf_counter() - start
    assert data["status"] in ("ok", "incomplete")
    return {
        "launch_s": launch_s,
        "json_s": json_s,
        "round_trips": data["fhir"]["roundTrips"],
        "fhir_requests": len(fhir),
        "resources": sum(1 for _ in data.get("basis", [])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=int, default=50, help="sandbox FHIR latency (ms)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # per-request lines: noise here
    print(f"sandbox FHIR latency {args.latency} ms, {args.runs} runs per patient "
          "(median, min-max)")
    print(f"{'patient':<22} {'launch→assessment':>20} {'assessment JSON':>20} "
          f"{'round trips':>12} {'FHIR requests':>14}")
    cases = [(label, patient, 1000) for label, patient in PATIENTS]
    cases.append(("heavy, _count=50", "heavy", 50))  # an EHR that caps its page size
    for page_size in sorted({c[2] for c in cases}, reverse=True):
        late = LateApp()
        with tempfile.TemporaryDirectory() as tmp, serve_in_thread(late) as base:
            build(late, base, Path(tmp), args.latency, page_size)
            one_run(base, PATIENTS[0][1])  # warm-up: discovery, JWKS, imports
            for label, patient, size in cases:
                if size == page_size:
                    report(label, [one_run(base, patient) for _ in range(args.runs)])
    return 0


def report(label: str, runs: list[dict[str, float]]) -> None:
    launch = [r["launch_s"] * 1000 for r in runs]
    js = [r["json_s"] * 1000 for r in runs]
    spread = f"{statistics.median(launch):.0f} ms ({min(launch):.0f}-{max(launch):.0f})"
    spread_js = f"{statistics.median(js):.0f} ms ({min(js):.0f}-{max(js):.0f})"
    print(f"{label:<22} {spread:>20} {spread_js:>20} {runs[0]['round_trips']:>12.0f} "
          f"{runs[0]['fhir_requests']:>14.0f}")


if __name__ == "__main__":
    sys.exit(main())
