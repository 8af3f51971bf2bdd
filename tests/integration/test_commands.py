"""The CLI's web subcommands and configuration errors that must stop the app at start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from smart_app.app import create_app
from smart_app.cli import main
from smart_app.config import ConfigError, from_mapping
from smart_app.sandbox.testing import submit_auto_form

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "x" * 40


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('secret_key = "short"\n[[tenants]]\niss = "https://e/fhir"\nclient_id = "c"\n'
         'auth = "public"\n', "secret_key"),
        (f'secret_key = "{GOOD_SECRET}"\n[[tenants]]\niss = "https://e/fhir"\n'
         'client_id = "c"\nauth = "client_secret_basic"\n', "tenants[0].client_secret"),
        (f'secret_key = "{GOOD_SECRET}"\n[[tenants]]\niss = "https://e/fhir"\n'
         'client_id = "c"\nauth = "magic"\n', "tenants[0].auth"),
        (f'secret_key = "{GOOD_SECRET}"\nsession_store = "postgres://x"\n[[tenants]]\n'
         'iss = "https://e/fhir"\nclient_id = "c"\nauth = "public"\n', "session_store"),
        (f'secret_key = "{GOOD_SECRET}"\n[[tenants]]\niss = "https://e/fhir"\n'
         'client_id = "c"\nsigning_alg = "RS256"\n', "tenants[0].signing_alg"),
        (f'secret_key = "{GOOD_SECRET}"\nfhir_timeout = -1\n[[tenants]]\n'
         'iss = "https://e/fhir"\nclient_id = "c"\nauth = "public"\n', "fhir_timeout"),
        (f'secret_key = "{GOOD_SECRET}"\n', "tenants"),
    ],
)
def test_serve_refuses_bad_configuration(
    tmp_path: Path, toml: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path / "bad.toml", toml)
    assert main(["serve", "--config", str(config)]) == 2
    assert key in capsys.readouterr().err


def test_serve_needs_keys_for_private_key_jwt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(
        tmp_path / "c.toml",
        f'secret_key = "{GOOD_SECRET}"\nkeys_file = "{tmp_path / "missing.json"}"\n'
        '[[tenants]]\niss = "https://e/fhir"\nclient_id = "c"\n',
    )
    assert main(["serve", "--config", str(config)]) == 2
    assert "keys generate" in capsys.readouterr().err


def test_keys_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys_file = tmp_path / "k" / "jwks.json"
    config = _write(tmp_path / "c.toml", f'keys_file = "{keys_file}"\n')
    assert main(["keys", "generate", "--config", str(config)]) == 0
    data = json.loads(keys_file.read_text())
    assert sorted(k["alg"] for k in data["keys"]) == ["ES384", "RS384"]
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "generate", "--config", str(config)]) == 2  # no silent overwrite
    assert main(["keys", "generate", "--config", str(config), "--force"]) == 0


def test_create_app_names_the_key() -> None:
    with pytest.raises(ConfigError, match="secret_key"):
        create_app(from_mapping({"tenants": [{"iss": "https://e/fhir", "client_id": "c",
                                              "auth": "public"}]}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
            time.sleep(0.1)
    raise AssertionError("server did not start")


def test_demo_end_to_end(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smart_app.cli", "demo", "--port", str(port),
         "--instance", str(tmp_path / "instance")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/.well-known/jwks.json", proc)
        browser = requests.Session()
        browser.trust_env = False
        home = browser.get(f"http://127.0.0.1:{port}/sandbox/", timeout=10)
        assert home.status_code == 200
        form = browser.get(f"http://127.0.0.1:{port}/sandbox/launch?patient=ex08-prior-is-"
                           "mitoxantrone-72", timeout=30)
        # The sandbox takes authorize POSTs: the app answers an EHR launch with a form that
        # a browser's script submits.
        sent = submit_auto_form(browser, form, form.url)
        assert sent.status_code == 302
        page = browser.get(urljoin(form.url, sent.headers["Location"]), timeout=30)
        assert page.status_code == 200
        assert "/launches/" in page.url
        assert "13 per 1,000" in page.text
        # The demo's sandbox is a CDS client of the demo tenant: opening the chart shows the card.
        chart = browser.get(f"http://127.0.0.1:{port}/sandbox/chart/ex08-prior-is-"
                            "mitoxantrone-72", timeout=30)
        assert "PML risk 13 per 1,000" in chart.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert f"http://127.0.0.1:{port}/sandbox/" in out


def test_serve_runs_under_gunicorn(tmp_path: Path) -> None:
    port = _free_port()
    keys_file = tmp_path / "jwks.json"
    assert main(["keys", "generate", "--config",
                 str(_write(tmp_path / "k.toml", f'keys_file = "{keys_file}"\n'))]) == 0
    config = _write(
        tmp_path / "serve.toml",
        f'base_url = "http://127.0.0.1:{port}"\nsecret_key = "{GOOD_SECRET}"\n'
        f'session_store = "sqlite:///{tmp_path / "s.sqlite3"}"\nkeys_file = "{keys_file}"\n'
        '[[tenants]]\niss = "https://ehr.example/fhir"\nclient_id = "c"\n',
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smart_app.cli", "serve", "--config", str(config),
         "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/", proc)
        jwks = requests.get(f"http://127.0.0.1:{port}/.well-known/jwks.json", timeout=5).json()
        assert len(jwks["keys"]) == 2
        refused = requests.get(f"http://127.0.0.1:{port}/launch",
                               params={"iss": "https://other.example/fhir", "launch": "x"},
                               timeout=5)
        assert refused.status_code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=15)
