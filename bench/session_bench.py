"""A clinician's visit: open the page, try 5 what-ifs, save; EHR requests and wall time per step.

Run: ``python bench/session_bench.py [--runs 5] [--latency 50]``.

Everything is on loopback in one process: the app at ``/`` and the sandbox EHR at ``/sandbox``
(as in ``pml-risk demo``), the sandbox's FHIR API delayed by ``--latency`` ms per request. The
steps are the requests the page's script makes:

* open: the EHR launch until the launch page has arrived (authorize, token, chart read, page);
* what-if: ``GET /launches/<id>/results?...`` with one more value changed each time;
* save: ``POST /launches/<id>/assessment`` of the result on screen (the fifth what-if).

"EHR requests" are the requests the sandbox's FHIR API received during the step (its
``/metadata`` included, ``.well-known`` discovery not). The CapabilityStatement is cached per
issuer, so a warm-up visit runs first and the figures are those of a clinician's everyday visit.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
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
from smart_app.sandbox.testing import LateApp, follow_launch, serve_in_thread  # noqa: E402
from smart_app.smart import keys  # noqa: E402

PATIENTS = (("typical", "ex05-index-1-51-25-infusions"), ("heavy", "heavy"))
CLIENT_ID = "pml-risk-bench"
#: Five what-ifs, each one more change on top of the last, as a clinician would try them.
WHAT_IFS = (
    {"prior_is": "yes"},
    {"prior_is": "yes", "infusions": "60"},
    {"prior_is": "yes", "infusions": "60", "index": "0.8"},
    {"prior_is": "yes", "infusions": "60", "index": "1.6"},
    {"prior_is": "yes", "infusions": "60", "index": "1.6", "reason": "given elsewhere"},
)


def build(late: LateApp, base: str, instance: Path, latency: int) -> None:
    signing = keys.generate()
    settings = from_mapping(
        {
            "base_url": base,
            "secret_key": secrets.token_urlsafe(40),
            "session_store": f"sqlite:///{instance / 'sessions.sqlite3'}",
            "keys_file": str(instance / "jwks.json"),
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
    if changes:
        resp = requests.post(f"{base}/sandbox/_control", json=changes, timeout=10)
    else:
        resp = requests.get(f"{base}/sandbox/_control", timeout=10)
    data: dict[str, Any] = resp.json()
    return data


def ehr_requests(base: str) -> int:
    """FHIR requests the sandbox received since the last call (the log is cleared)."""
    log = control(base)["requests"]
    control(base, clear_requests=True)
    return sum(1 for r in log if r["path"].startswith("/sandbox/fhir/")
               and ".well-known" not in r["path"])


def _save_body(page: str) -> dict[str, Any]:
    """What the page's script posts: the identifier and overrides of the result on screen."""
    section = re.search(r'<section id="save"[^>]*>', page)
    assert section, "the page has a save region"
    ident = re.search(r'data-identifier="([^"]*)"', section.group(0))
    overrides = re.search(r'data-overrides="([^"]*)"', section.group(0))
    return {
        "identifier": ident.group(1) if ident else None,
        "overrides": json.loads(html.unescape(overrides.group(1))) if overrides else {},
    }


def visit(base: str, patient: str) -> list[tuple[str, float, int]]:
    """One visit; ``(step, seconds, EHR requests)`` per step."""
    control(base, clear_requests=True, reset_data=True)
    browser = requests.Session()
    browser.trust_env = False
    steps: list[tuple[str, float, int]] = []
    start = time.perf_counter()
    url, page = follow_launch(browser, f"{base}/sandbox/launch?patient={patient}")
    steps.append(("open", time.perf_counter() - start, ehr_requests(base)))
    assert page.status_code == 200 and "/launches/" in url, (url, page.text[:300])
    url = url.split("?")[0]
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert csrf
    shown = page.text
    for n, values in enumerate(WHAT_IFS, 1):
        start = time.perf_counter()
        resp = browser.get(url + "/results", params=values, timeout=60)
        steps.append((f"what-if {n}", time.perf_counter() - start, ehr_requests(base)))
        assert resp.status_code == 200, resp.text[:300]
        shown = resp.text
    body = _save_body(shown)
    start = time.perf_counter()
    saved = browser.post(url + "/assessment", json=body, timeout=60,
                         headers={"X-CSRF-Token": csrf.group(1)})
    steps.append(("save", time.perf_counter() - start, ehr_requests(base)))
    answer = saved.json()
    assert saved.status_code == 200 and answer["saved"] is True, answer
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=int, default=50, help="sandbox FHIR latency (ms)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"sandbox FHIR latency {args.latency} ms; median of {args.runs} visits per patient")
    late = LateApp()
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(late) as base:
        build(late, base, Path(tmp), args.latency)
        visit(base, PATIENTS[0][1])  # warm-up: discovery, JWKS, CapabilityStatement, imports
        for label, patient in PATIENTS:
            runs = [visit(base, patient) for _ in range(args.runs)]
            report(label, runs)
    return 0


def report(label: str, runs: list[list[tuple[str, float, int]]]) -> None:
    print(f"\n{label}: {'step':<10} {'wall ms (median, min-max)':>28} {'EHR requests':>13}")
    total_ms = [sum(s[1] for s in run) * 1000 for run in runs]
    total_req = [sum(s[2] for s in run) for run in runs]
    for i, (step, _, _) in enumerate(runs[0]):
        ms = [run[i][1] * 1000 for run in runs]
        reqs = sorted({run[i][2] for run in runs})
        spread = f"{statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f})"
        print(f"{'':<{len(label) + 2}}{step:<10} {spread:>28} "
              f"{'/'.join(str(r) for r in reqs):>13}")
    spread = f"{statistics.median(total_ms):.0f} ({min(total_ms):.0f}-{max(total_ms):.0f})"
    print(f"{'':<{len(label) + 2}}{'visit':<10} {spread:>28} "
          f"{'/'.join(str(r) for r in sorted(set(total_req))):>13}")


if __name__ == "__main__":
    sys.exit(main())
