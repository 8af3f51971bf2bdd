"""What an adopting site's IT runs into first: ``serve``'s start-up, the container's layout and
bind, the public JWKS file the proxy serves, and the SBOM CI ships.

``serve`` runs as a child process the way a site runs it (a configuration file, a state folder
as the working directory); a wrong layout must end with ``check-config``'s one-line message,
never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement

from .harness import (
    ROOT,
    SECRET_KEY,
    TENANT,
    free_port,
    one_line_refusal,
    wait_healthy,
    write_config,
)

pytestmark = pytest.mark.integration


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "PML_RISK_CONFIG"}
    full.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "smart_app.cli", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, check=False)


# -- serve's start-up checks ---------------------------------------------------------------


def test_serve_without_a_configuration_says_so(tmp_path: Path) -> None:
    one_line_refusal(_run(["serve"], tmp_path), "no configuration given")


def test_serve_with_a_missing_audit_folder_exits_with_check_configs_message(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert _run(["keys", "generate", "--keys-file", str(state / "jwks.json")],
                tmp_path).returncode == 0
    config = write_config(
        tmp_path / "c.toml", base_url="https://app.example", secret_key=SECRET_KEY,
        session_store=f"sqlite:///{state / 'sessions.sqlite3'}",
        keys_file=str(state / "jwks.json"), audit={"path": str(tmp_path / "no" / "audit.jsonl")},
        tenants=[TENANT])
    one_line_refusal(_run(["serve", "--config", str(config)], tmp_path),
                      f"audit.path: {tmp_path / 'no' / 'audit.jsonl'} cannot be written")


def test_serve_with_an_unusable_state_folder_or_key_file_names_both(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be", encoding="utf-8")
    (tmp_path / "keys").mkdir()  # a folder where the key file should be
    config = write_config(
        tmp_path / "c.toml", base_url="https://app.example", secret_key=SECRET_KEY,
        session_store=f"sqlite:///{blocker / 'sessions.sqlite3'}",
        keys_file=str(tmp_path / "keys"), tenants=[TENANT])
    done = _run(["serve", "--config", str(config)], tmp_path)
    one_line_refusal(done, "keys_file:")
    assert "is not a readable JWK Set" in done.stderr
    offline = _run(["check-config", str(config), "--offline"], tmp_path)
    assert "keys_file:" in offline.stdout  # the same words check-config gives


def test_serve_in_the_documented_state_folder_starts_on_loopback_and_publishes_its_jwks(
    tmp_path: Path,
) -> None:
    """The container's layout: the state folder is the working directory, the defaults
    (instance/sessions.sqlite3, instance/jwks-private.json) land in it, the key is generated
    inside, the public JWKS is written for the proxy and rewritten after a rotation."""
    state = tmp_path / "var-lib-pml-risk"
    (state / "audit").mkdir(parents=True)
    port = free_port()
    config = write_config(tmp_path / "pml-risk.toml", base_url="https://app.example",
                          secret_key=SECRET_KEY, audit={"path": "audit/audit.jsonl"},
                          server={"port": port}, tenants=[TENANT])
    assert _run(["keys", "generate", "--config", str(config)], state).returncode == 0
    public = state / "public" / "jwks.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PML_RISK_CONFIG": str(config),
           "PML_RISK_PUBLIC_JWKS": str(public)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "smart_app.cli", "serve"], cwd=state,
                            env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, lambda: None if proc.poll() is None else (
            tmp_path / "serve.log").read_text())
        assert _listening_addresses(port) == {"127.0.0.1"}  # never every interface by default
        served = requests.get(f"{base}/.well-known/jwks.json", timeout=5).json()
        assert json.loads(public.read_text(encoding="utf-8")) == served
        assert public.stat().st_mode & 0o777 == 0o644  # the proxy's user reads it
        assert (state / "instance" / "sessions.sqlite3").exists()
        before = {k["kid"] for k in served["keys"]}
        assert _run(["keys", "rotate", "--config", str(config)], state).returncode == 0
        deadline = time.monotonic() + 15
        while {k["kid"] for k in json.loads(public.read_text(encoding="utf-8"))["keys"]} == before:
            assert time.monotonic() < deadline, "the public JWKS file was not republished"
            time.sleep(0.3)
        assert json.loads(public.read_text(encoding="utf-8")) == requests.get(
            f"{base}/.well-known/jwks.json", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


# -- the container ---------------------------------------------------------------------------


def test_the_container_runs_unprivileged_from_a_writable_state_folder_bound_to_loopback() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final = text[text.rindex("\nFROM "):]  # the image that runs
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim-\w+", final.strip(), re.M), "pinned base"
    assert "USER pmlrisk:pmlrisk" in final and "--uid 10001" in final
    assert "WORKDIR /var/lib/pml-risk" in final
    assert "chown -R pmlrisk:pmlrisk /var/lib/pml-risk" in final
    assert "--require-hashes -r /tmp/requirements.lock" in final
    cmd = final[final.rindex("\nCMD "):]
    assert "0.0.0.0" not in cmd and "--host" not in cmd  # [server] host: 127.0.0.1 by default
    example = (ROOT / "deploy" / "pml-risk.example.toml").read_text(encoding="utf-8")
    assert re.search(r'^host = "127\.0\.0\.1"', example, re.M)
    proxy = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    for setting in ("client_header_timeout", "client_body_timeout", "proxy_request_buffering on",
                    "location = /.well-known/jwks.json"):
        assert setting in proxy, setting


# -- the SBOM --------------------------------------------------------------------------------


def _runtime_closure() -> dict[str, str]:
    """Every distribution pml-risk needs at run time (no extras), name -> installed version."""
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: dict[str, str] = {}
    todo = ["pml-risk"]
    while todo:
        name = todo.pop()
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = norm(req.name)
            if key not in seen:
                seen[key] = metadata.version(req.name)
                todo.append(req.name)
    return seen


def test_the_sbom_lists_every_runtime_dependency_at_its_installed_version(
    tmp_path: Path,
) -> None:
    sbom = ROOT / "sbom.cdx.json"  # what CI wrote; else made here, as CI makes it
    if not sbom.exists():
        sbom = tmp_path / "sbom.cdx.json"
        subprocess.run([sys.executable, "-m", "cyclonedx_py", "environment", "--pyproject",
                        str(ROOT / "pyproject.toml"), "--of", "JSON", "-o", str(sbom),
                        sys.executable], check=True, timeout=300, capture_output=True)
    data = json.loads(sbom.read_text(encoding="utf-8"))
    assert data["bomFormat"] == "CycloneDX"
    assert data["metadata"]["component"]["name"] == "pml-risk"
    listed = {re.sub(r"[-_.]+", "-", c["name"]).lower(): c.get("version")
              for c in data["components"]}
    wanted = _runtime_closure()
    assert len(wanted) > 10
    wrong = {name: (version, listed.get(name)) for name, version in wanted.items()
             if listed.get(name) != version}
    assert wrong == {}, "dependency: (installed, in the SBOM)"


# -- slow clients behind the documented proxy -------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SLOW_CLIENT_DIRECTIVES = ("client_header_timeout", "client_body_timeout", "send_timeout",
                          "proxy_request_buffering", "proxy_buffering")


def _documented_slow_client_settings() -> str:
    """The slow-client lines of deploy/nginx.conf, as written there."""
    lines = [line.split("#")[0].strip()
             for line in (ROOT / "deploy" / "nginx.conf").read_text().splitlines()]
    chosen = [line for line in lines if line.split(" ")[0] in SLOW_CLIENT_DIRECTIVES]
    assert {line.split(" ")[0] for line in chosen} == set(SLOW_CLIENT_DIRECTIVES)
    return "\n        ".join(chosen)


def _nginx(tmp_path: Path, listen: int, upstream: int) -> subprocess.Popen[bytes]:
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
user root root;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/nginx-body;
    proxy_temp_path {tmp_path}/nginx-proxy;
    fastcgi_temp_path {tmp_path}/nginx-fastcgi;
    uwsgi_temp_path {tmp_path}/nginx-uwsgi;
    scgi_temp_path {tmp_path}/nginx-scgi;
    server {{
        listen 127.0.0.1:{listen};
        {_documented_slow_client_settings()}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 65s;
        }}
    }}
}}
""", encoding="utf-8")
    return subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path), "-e",
                             str(tmp_path / "nginx-error.log"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_header_dripping_sockets_do_not_starve_healthz_behind_the_documented_proxy(
    tmp_path: Path,
) -> None:
    """50 sockets sending one header line a second hold nginx connections, not the app's
    gunicorn threads (2 workers x 8 threads, the defaults): /healthz keeps answering."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (bash .ci/run installs it)")
    app_port, proxy_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.toml", base_url=f"http://127.0.0.1:{proxy_port}", secret_key=SECRET_KEY,
        session_store=f"sqlite:///{tmp_path / 's.sqlite3'}", server={"port": app_port},
        tenants=[{**TENANT, "auth": "public"}])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PML_RISK_CONFIG": str(config)}
    app = subprocess.Popen([sys.executable, "-m", "smart_app.cli", "serve"], cwd=tmp_path,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = _nginx(tmp_path, proxy_port, app_port)
    drippers: list[socket.socket] = []
    try:
        base = f"http://127.0.0.1:{proxy_port}"
        wait_healthy(base, lambda: None if app.poll() is None and proxy.poll() is None
                     else "serve or nginx exited", what="serve behind nginx")
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: app\r\n")
            drippers.append(sock)
        answers = []
        for second in range(7):
            for sock in drippers:
                sock.sendall(f"X-Drip-{second}: 1\r\n".encode())
            started = time.monotonic()
            try:
                status = requests.get(f"{base}/healthz", timeout=3).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers.append(status)
            time.sleep(max(0.0, 1 - (time.monotonic() - started)))
        assert answers == [200] * 7
    finally:
        for sock in drippers:
            sock.close()
        for proc in (proxy, app):
            proc.terminate()
            proc.wait(timeout=30)


# -- smart_app.wsgi --------------------------------------------------------------------------


def test_the_wsgi_module_runs_serves_checks_and_gives_the_app(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml", base_url="https://app.example", secret_key=SECRET_KEY,
        session_store=f"sqlite:///{tmp_path / 's.sqlite3'}",
        tenants=[{**TENANT, "auth": "public"}])
    probe = ("from smart_app.wsgi import app; c = app.test_client(); "
             "print(c.get('/healthz').status_code)")

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if k != "PML_RISK_CONFIG"}
        return subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, text=True,
                              capture_output=True, timeout=120, check=False,
                              env={**full, "PYTHONPATH": str(ROOT), **env})

    ok = run(PML_RISK_CONFIG=str(config))
    assert (ok.returncode, ok.stdout) == (0, "200\n"), ok.stderr
    missing = run()
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("pml-risk: no configuration given")
