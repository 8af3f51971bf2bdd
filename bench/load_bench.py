"""Load: assessments per second with gunicorn, Redis sessions and the sandbox as the EHR.

Run: ``python bench/load_bench.py [--clinicians 50] [--launches 2] [--reads 3]``.

Three kinds of process on loopback, as in production: ``redis-server`` (started here on a free
port, no persistence), ``pml-risk serve`` (gunicorn, ``--workers`` x ``--threads``, sessions in
Redis, audit trail to a file) and the sandbox EHR in its own process (``--serve-sandbox``, a
threaded server). Every simulated clinician is a thread with its own cookie jar that, per
launch, goes through the EHR launch (sandbox launch -> /launch -> authorize -> /callback ->
launch page redirect) and then fetches the assessment JSON ``--reads`` times, with
``--think`` seconds between requests (0 = back to back: the worst case); clinicians arrive
spread over ``--ramp`` seconds, then all stay active until done. The number of
requests is bounded, and so is the time (``--max-seconds``).

By default the app sits behind nginx as docs/deploy.md §4 documents it (``--proxy nginx``:
loopback bind, request buffering, client timeouts, the public JWKS served from the file
``pml-risk serve --public-jwks`` writes), and the sandbox EHR fetches the app's JWKS by URL on
every token request (``--jwks uri``), as EHRs that do not cache it do: the case where a burst
of launches used to end in 502s while every app thread waited on a token exchange that waited
on the JWKS. ``--proxy none --jwks inline`` is the old set-up (no proxy, keys registered inline).

Reported: assessments per second over the measured run, p50/p99 latency of the assessment
JSON and of the launch sequence, and errors (any non-2xx/3xx, or exception). Everything shares
this machine's cores, the load generator included, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENT_ID = "pml-risk-load"
PATIENTS = (  # a mix of ordinary charts (the heavy fixture is bench/launch_bench.py's job)
    "ex01-negative-30", "ex03-index-0-90", "ex04-index-1-50-24-infusions",
    "ex05-index-1-51-25-infusions", "ex06-index-3-0-12-infusions",
    "ex07-prior-is-azathioprine-48", "ex09-index-1-2-72-infusions",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up, or slow on a busy host
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


# -- the sandbox process -------------------------------------------------------------------


def serve_sandbox(port: int, app_base: str, keys_file: str, use_gunicorn: bool,
                  jwks_by_url: bool) -> None:
    """The EHR: the sandbox mounted at /sandbox, in one process (gunicorn, 32 threads; or
    werkzeug's threaded development server)."""
    import logging

    from werkzeug.serving import make_server

    from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
    from smart_app.sandbox.testing import mounted
    from smart_app.smart import keys

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    public = keys.load(keys_file).public_jwks()
    sandbox = create_sandbox(SandboxConfig(
        fixtures_dir=ROOT / "fhir_fixtures",
        clients=(SandboxClient(
            client_id=CLIENT_ID, auth="private_key_jwt", redirect_uris=(f"{app_base}/callback",),
            jwks=None if jwks_by_url else public,
            jwks_uri=f"{app_base}/.well-known/jwks.json" if jwks_by_url else None),),
        launch_url=f"{app_base}/launch",
        token_lifetime=3600,
    ))
    if not use_gunicorn:
        make_server("127.0.0.1", port, mounted(sandbox), threaded=True).serve_forever()
        return
    from smart_app.cli.serve import GunicornOptions, run_gunicorn

    # One process (the sandbox's tokens and launches live in it), many threads.
    run_gunicorn(lambda: mounted(sandbox), GunicornOptions(bind=f"127.0.0.1:{port}",
                                                           workers=1, threads=32))


# -- the deployment ------------------------------------------------------------------------


@dataclass
class Deployment:
    app: str
    ehr: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


NGINX = """
worker_processes 1;
user root root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    upstream pml_risk {{
        server 127.0.0.1:{app_port} max_fails=3 fail_timeout=10s;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64k;
        client_header_timeout 10s;
        client_body_timeout 10s;
        send_timeout 30s;
        proxy_request_buffering on;
        proxy_buffering on;
        location = /.well-known/jwks.json {{
            alias {jwks};
            default_type application/json;
            add_header Cache-Control "public, max-age=3600" always;
        }}
        location / {{
            proxy_pass http://pml_risk;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host              $http_host;
            proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host  $http_host;
            proxy_connect_timeout 5s;
            proxy_read_timeout 65s;
        }}
    }}
}}
"""
"""The parts of deploy/nginx.conf that matter on loopback (no TLS, no rate limit: one load
generator address would be throttled as a clinic behind NAT would not)."""


@contextmanager
def deployment(args: argparse.Namespace, workdir: Path) -> Iterator[Deployment]:
    from smart_app.smart import keys

    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    redis_port, app_port, ehr_port = free_port(), free_port(), free_port()
    proxied = args.proxy == "nginx"
    proxy_port = free_port() if proxied else app_port
    app_base, ehr_base = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{ehr_port}"
    jwks_file = workdir / "public" / "jwks.json"
    keys_file = workdir / "jwks-private.json"
    keys.save(keys.generate(), keys_file)
    config = workdir / "pml-risk.toml"
    config.write_text(
        f'base_url = "{app_base}"\nsecret_key = "{"b" * 48}"\n'
        f'session_store = "redis://127.0.0.1:{redis_port}/0"\nkeys_file = "{keys_file}"\n'
        f'[audit]\npath = "{workdir / "audit.jsonl"}"\n'
        # Every simulated clinician comes from 127.0.0.1: the per-address cap on sign-ins
        # (a guard against one address flooding, default 300 per 10 min) would count them as
        # one clinic behind NAT; a site with such a clinic raises it the same way.
        '[limits]\npending_per_address = 20000\n'
        + ('[proxy]\ntrusted_hops = 1\ntrusted_addresses = ["127.0.0.1"]\n' if proxied else "")
        +
        f'[[tenants]]\nname = "Sandbox"\niss = "{ehr_base}/sandbox/fhir"\n'
        f'client_id = "{CLIENT_ID}"\nauth = "private_key_jwt"\nsigning_alg = "ES384"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = (workdir / "app.log").open("wb")
    procs = [
        subprocess.Popen([redis_bin, "--bind", "127.0.0.1", "--port", str(redis_port),
                          "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, __file__, "--serve-sandbox", str(ehr_port),
                          "--app-base", app_base, "--keys-file", str(keys_file),
                          "--sandbox-server", args.sandbox_server, "--jwks", args.jwks],
                         env=env, stdout=subprocess.DEVNULL, stderr=logs),
        subprocess.Popen([sys.executable, "-m", "smart_app.cli", "serve", "--config",
                          str(config), "--port", str(app_port), "--workers",
                          str(args.workers), "--threads", str(args.threads),
                          "--public-jwks", str(jwks_file)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=logs),
    ]
    if proxied:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX.format(work=workdir, app_port=app_port, port=proxy_port,
                                     jwks=jwks_file), encoding="utf-8")
        procs.append(subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir), "-e",
                                       str(workdir / "nginx-error.log"), "-g",
                                       "daemon off;"], stdout=subprocess.DEVNULL, stderr=logs))
    try:
        wait_http(f"{ehr_base}/sandbox/fhir/metadata", procs[1])
        wait_http(f"http://127.0.0.1:{app_port}/readyz", procs[2])
        wait_http(f"{app_base}/readyz", procs[-1])
        yield Deployment(app=app_base, ehr=ehr_base, procs=procs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        logs.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (gunicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


# -- the clinicians ------------------------------------------------------------------------


@dataclass
class Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    assessment_ms: list[float] = field(default_factory=list)
    launch_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def ehr_launch(http: requests.Session, ehr: str, patient: str) -> str:
    """The way a browser goes; returns the launch page URL."""
    from smart_app.sandbox.testing import follow_launch

    url, resp = follow_launch(http, f"{ehr}/sandbox/launch?patient={patient}",
                              stop_at="/launches/", timeout=30)
    if not urlsplit(url).path.startswith("/launches/"):
        raise RuntimeError(f"launch: HTTP {resp.status_code} at {urlsplit(url).path}")
    return url

def clinician(n: int, args: argparse.Namespace, d: Deployment, results: Results,
              stop_at: float) -> None:
    http = requests.Session()
    http.trust_env = False
    rng = random.Random(n)
    time.sleep(max(n, 0) * args.ramp / max(args.clinicians, 1))  # staggered arrival
    for _ in range(args.launches):
        if time.monotonic() > stop_at:
            return
        patient = rng.choice(PATIENTS)
        started = time.perf_counter()
        try:
            page = ehr_launch(http, d.ehr, patient)
        except (RuntimeError, requests.RequestException) as exc:
            results.error(f"launch: {str(exc)[:60] or type(exc).__name__}")
            continue
        with results.lock:
            results.launch_ms.append((time.perf_counter() - started) * 1000)
        for _ in range(args.reads):
            if args.think:
                time.sleep(rng.uniform(0.5, 1.5) * args.think)
            started = time.perf_counter()
            try:
                resp = http.get(page + "/assessment", timeout=30)
                ok = resp.status_code == 200 and resp.json().get("status") in (
                    "ok", "incomplete")
            except (requests.RequestException, ValueError) as exc:
                results.error(f"assessment: {type(exc).__name__}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if not ok:
                results.error(f"assessment: HTTP {resp.status_code}")
                continue
            with results.lock:
                results.assessment_ms.append(elapsed)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="pml-risk-load-") as tmp, \
            deployment(args, Path(tmp)) as d:
        warm = Results()
        warm_up = argparse.Namespace(launches=3, reads=2, think=0, ramp=0, clinicians=1)
        clinician(-1, warm_up, d, warm, time.monotonic() + 60)  # discovery, JWKS, pools
        results = Results()
        stop_at = time.monotonic() + args.max_seconds
        cpu_before = [cpu_seconds(p.pid) for p in d.procs]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clinicians) as pool:
            for n in range(args.clinicians):
                pool.submit(clinician, n, args, d, results, stop_at)
        wall = time.perf_counter() - started
        cpu = [cpu_seconds(p.pid) - before for p, before in zip(d.procs, cpu_before,
                                                                  strict=True)]
    a, la = results.assessment_ms, results.launch_ms
    errors = sum(results.errors.values())
    print(f"gunicorn {args.workers} workers x {args.threads} threads, Redis sessions, sandbox "
          f"EHR in its own process; proxy: {args.proxy}; app JWKS registered {args.jwks}; "
          f"{os.cpu_count()} CPU(s)")
    print(f"{args.clinicians} concurrent clinicians x {args.launches} launches x {args.reads} "
          f"assessment reads, think time {args.think:g} s, arrivals over {args.ramp:g} s; "
          f"wall {wall:.1f} s")
    print(f"{'':<22}{'count':>7}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, values in (("assessment JSON", a), ("launch (5 redirects)", la)):
        print(f"{label:<22}{len(values):>7}{len(values) / wall:>8.1f}{pct(values, .5):>9.0f}"
              f"{pct(values, .99):>9.0f}{max(values, default=float('nan')):>9.0f}")
    print(f"errors: {errors}" + (f" {results.errors}" if errors else ""))
    server_errors = sum(n for kind, n in results.errors.items() if " HTTP 5" in kind)
    print(f"server errors (5xx, e.g. 502 from the proxy): {server_errors}")
    if a:
        print(f"mean assessment {statistics.fmean(a):.0f} ms")
        cycles = len(a) + len(la)
        print(f"CPU used during the run: app {cpu[2]:.1f} s, sandbox EHR {cpu[1]:.1f} s, "
              f"redis {cpu[0]:.1f} s; app CPU per request (launch or assessment) "
              f"{cpu[2] / cycles * 1000:.1f} ms")
    target = errors == 0 and pct(a, .99) < 500
    print(f"target (no errors, assessment p99 < 500 ms): {'met' if target else 'NOT met'}")
    return 0 if target else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinicians", type=int, default=50)
    parser.add_argument("--launches", type=int, default=2, help="launches per clinician")
    parser.add_argument("--reads", type=int, default=3, help="assessment reads per launch")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds between a clinician's requests (0: none)")
    parser.add_argument("--ramp", type=float, default=5.0,
                        help="seconds over which the clinicians arrive (0: all at once)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--sandbox-server", choices=("gunicorn", "werkzeug"),
                        default="gunicorn", help="what serves the sandbox EHR")
    parser.add_argument("--proxy", choices=("nginx", "none"), default="nginx",
                        help="nginx in front as docs/deploy.md documents it (default), or none")
    parser.add_argument("--jwks", choices=("uri", "inline"), default="uri",
                        help="the sandbox fetches the app's JWKS by URL on every token request "
                        "(default), or has it registered inline")
    parser.add_argument("--serve-sandbox", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--app-base", default="", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox, args.app_base, args.keys_file,
                      args.sandbox_server == "gunicorn", args.jwks == "uri")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
