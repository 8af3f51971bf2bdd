"""Real processes on loopback: redis-server, ``pml-risk serve`` instances, the sandbox EHR.

The operations tests run the app the way a health system does (gunicorn, Redis sessions, a
configuration file, an audit file), so nothing here imports the app into the test process
except the sandbox, which plays the EHR in a thread.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
CLIENT_ID = "pml-risk-ops"
SECRET_KEY = "ops-test-secret-" + "k" * 40


#: One EHR; private_key_jwt (the default auth), so the app needs its key file to start.
TENANT = {"iss": "https://ehr.example/fhir", "client_id": "c"}


def one_line_refusal(done: subprocess.CompletedProcess[str], words: str) -> None:
    """What an operator must see when the app will not start: exit 2, ``words`` said, every
    line of standard error one of the app's own (``pml-risk: …``), never a traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert words in done.stderr, done.stderr
    assert all(line.startswith("pml-risk: ") for line in done.stderr.splitlines()), done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def wait_healthy(base: str, failed: Callable[[], str | None], *, timeout: float = 60,
                 http: requests.Session | None = None, what: str = "serve") -> None:
    """Poll ``base``/healthz until it answers 200; ``failed`` says why the server can no longer
    start (it exited), or None while it may still come up."""
    get = http.get if http is not None else requests.get
    deadline = time.monotonic() + timeout
    while True:
        why = failed()
        if why is not None:
            raise AssertionError(why)
        try:
            if get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not up, or slow to answer
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not answer /healthz")
        time.sleep(0.1)


@dataclass
class RedisServer:
    """One redis-server, no persistence, restartable on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted (by the kernel) but never answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def write_config(path: Path, **values: Any) -> Path:
    """A TOML file from simple values (strings, numbers, lists, one level of tables)."""

    def fmt(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        if isinstance(value, dict):  # an inline table
            return "{" + ", ".join(f"{k} = {fmt(v)}" for k, v in value.items()) + "}"
        return str(value)

    lines: list[str] = []
    tables: list[str] = []
    for key, value in values.items():
        if key == "tenants":
            for tenant in value:
                tables.append("[[tenants]]")
                tables += [f"{k} = {fmt(v)}" for k, v in tenant.items()]
        elif isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{k} = {fmt(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {fmt(value)}")
    path.write_text("\n".join(lines + tables) + "\n", encoding="utf-8")
    return path


@dataclass
class AppProcess:
    """``pml-risk serve`` as a child process; its standard error goes to a file."""

    config: Path
    port: int
    log: Path
    workers: int = 1
    threads: int = 4
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PML_RISK_CONFIG", None)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smart_app.cli", "serve", "--config", str(self.config),
                 "--port", str(self.port), "--workers", str(self.workers),
                 "--threads", str(self.threads)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )
        proc = self.proc
        wait_healthy(self.base, lambda: None if proc.poll() is None else (
            f"serve exited with {proc.returncode}: {self.log.read_text()[-2000:]}"),
            timeout=timeout)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait: the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=5)
        self.proc = None
        return code


def browser() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def on_port(url: str, port: int) -> str:
    """The same URL on another port: what a load balancer does when it picks instance B."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def submit_auto_form(http: requests.Session, resp: requests.Response,
                     url: str) -> requests.Response:
    """Submit the app's auto-submitting authorize form (authorize-post) as a browser would."""
    if resp.status_code != 200 or 'id="authorize"' not in resp.text:
        return resp
    action = re.search(r'<form[^>]*action="([^"]*)"', resp.text)
    fields = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', resp.text)
    data = [(html.unescape(k), html.unescape(v)) for k, v in fields]
    target = urljoin(url, html.unescape(action.group(1)) if action else url)
    return http.post(target, data=data, allow_redirects=False, timeout=30)


def to_callback(http: requests.Session, start: str) -> str:
    """Follow redirects from ``start`` until the EHR sends the browser to ``/callback``."""
    url = start
    for _ in range(10):
        resp = submit_auto_form(http, http.get(url, allow_redirects=False, timeout=30), url)
        assert resp.status_code in (301, 302, 303, 307), (resp.status_code, resp.text[:300])
        location = urljoin(url, resp.headers["Location"])
        if urlsplit(location).path == "/callback":
            return location
        url = location
    raise AssertionError("too many redirects")


def launch(http: requests.Session, ehr: str, patient: str, *, callback_port: int | None = None,
           app_port: int | None = None) -> str:
    """EHR launch from the sandbox; the callback may go to another instance. The page URL.

    ``app_port`` sends the ``/launch`` step to that instance (the sandbox's launch URL names
    the load balancer's address, i.e. instance A's).
    """
    first = http.get(f"{ehr}/sandbox/launch", params={"patient": patient},
                     allow_redirects=False, timeout=10)
    assert first.status_code == 302, first.text[:300]
    start = first.headers["Location"]
    if app_port is not None:
        start = on_port(start, app_port)
    callback = to_callback(http, start)
    if callback_port is not None:
        callback = on_port(callback, callback_port)
    done = http.get(callback, allow_redirects=False, timeout=30)
    assert done.status_code == 303, (done.status_code, done.text[:500])
    return urljoin(callback, done.headers["Location"])
