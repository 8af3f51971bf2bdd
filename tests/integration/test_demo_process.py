"""``pml-risk demo`` as a person runs it: a busy port is one clear line before anything says
"open", ``--port 0`` picks a free port, and the temporary instance folder (keys, sessions) is
gone after Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
OPEN = re.compile(r"open (http://127\.0\.0\.1:(\d+)/sandbox/) \(instance: (.+?), ")

pytestmark = pytest.mark.integration


def _demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "smart_app.cli", "demo", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "smart_app.cli", "demo", "--port",
                               str(port)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stdout == ""  # nothing claims the demo is open
    assert done.stderr.count("\n") == 1 and f"port {port}" in done.stderr
    assert "already in use" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no instance folder left behind


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_temporary_instance_is_removed_on_exit(tmp_path: Path, stop: signal.Signals) -> None:
    proc = _demo(tmp_path, "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = OPEN.search(line)
        assert found is not None, line
        url, instance = found.group(1), Path(found.group(3))
        assert requests.get(url, timeout=10).status_code == 200
        assert (instance / "sessions.sqlite3").exists()
        assert instance.parent == tmp_path
        proc.send_signal(stop)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not instance.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_given_instance_folder_is_kept(tmp_path: Path) -> None:
    instance = tmp_path / "kept"
    proc = _demo(tmp_path, "--port", "0", "--instance", str(instance))
    try:
        assert proc.stdout is not None
        assert OPEN.search(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert (instance / "jwks-private.json").exists()
