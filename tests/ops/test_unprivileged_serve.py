"""``pml-risk keys generate``, ``check-config`` and ``serve`` as the container's user.

The Dockerfile installs as root and runs the app as uid/gid 10001 in a state folder it owns
(docs/deploy.md §3). Run as root, the file checks can never fail, so here the app really runs
as 10001: root installs it into a virtual environment, the way the image does
(``requirements.lock`` with hashes, then the wheel without dependencies), and builds the
documented layout under /tmp:

    <top>/etc-pml-risk/pml-risk.toml   root:10001 0640 (read-only)    PML_RISK_CONFIG
    <top>/var-lib-pml-risk/            10001, the working directory
        instance/ keys/ audit/         10001, 0700
        public/                        10001                          PML_RISK_PUBLIC_JWKS

with ``HOME=/nonexistent``. In that layout the key is generated and the app serves; in a wrong
one (a folder or file owned by root, a folder missing) every command exits 2 with
``check-config``'s one-line words, never a traceback.

Switching user needs root, and the user needs a Python it may run: the default one may live
under /root (0700), so the environment is built from the system's Python. Without either the
tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import (
    ROOT,
    SECRET_KEY,
    TENANT,
    browser,
    free_port,
    one_line_refusal,
    wait_healthy,
    write_config,
)

pytestmark = pytest.mark.integration

APP_UID = APP_GID = 10001  # the Dockerfile's pmlrisk user and group
SYSTEM_PYTHONS = ("/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/python3")
#: What the Dockerfile's build stage copies, less what .dockerignore leaves out: the wheel is
#: built from a copy of these alone, so a stale build/ folder in the checkout cannot add to it.
BUILD_CONTEXT = {
    "pyproject.toml": (), "setup.py": (), "MANIFEST.in": (), "README.md": (), "LICENSE": (),
    "smart_app": ("__pycache__",), "static": ("__pycache__",),
    "fhir_fixtures": ("__pycache__", "generator", "*.py"), "docs/clinical-basis.md": (),
}
PRIVATE_FOLDERS = ("instance", "keys", "audit")  # 0700 in the Dockerfile


def _usable_python() -> str | None:
    """A Python >= 3.11 outside /root that uid 10001 can run and that can make a venv."""
    probe = "import ensurepip, sys, venv; print(sys.version_info >= (3, 11))"
    for candidate in SYSTEM_PYTHONS:
        if not Path(candidate).exists() or Path(candidate).resolve().is_relative_to("/root"):
            continue
        try:
            done = subprocess.run([candidate, "-c", probe], capture_output=True, text=True,
                                  timeout=30, check=False, cwd="/", user=APP_UID,
                                  group=APP_GID, extra_groups=[], env={"HOME": "/nonexistent"})
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate
    return None


@dataclass
class Install:
    """The app installed as the image installs it: owned by root, run by anyone."""

    bin: Path


def _root_step(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False,
                          env=env, umask=0o022, cwd="/")
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed() -> Iterator[Install]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the app is run as uid/gid 10001 (subprocess user=, group=)")
    python = _usable_python()
    if python is None:
        pytest.skip(f"no Python >= 3.11 with venv that uid 10001 can run among "
                    f"{', '.join(SYSTEM_PYTHONS)} (Debian: apt-get install python3-venv)")
    top = Path(tempfile.mkdtemp(prefix="pml-risk-install-"))
    try:
        top.chmod(0o755)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("PML_RISK_")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        src = top / "src"
        for name, left_out in BUILD_CONTEXT.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, src / name,
                                ignore=shutil.ignore_patterns(*left_out))
            else:
                shutil.copy2(ROOT / name, src / name)
        _root_step([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(top / "dist"), str(src)], env)
        wheel = next((top / "dist").glob("pml_risk-*.whl"))
        venv = top / "venv"
        _root_step([python, "-m", "venv", str(venv)], env)
        _root_step([str(venv / "bin" / "pip"), "install", "-q", "--require-hashes", "-r",
                    str(ROOT / "requirements.lock")], env)
        _root_step([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)], env)
        yield Install(bin=venv / "bin")
    finally:
        shutil.rmtree(top, ignore_errors=True)


@dataclass
class Site:
    """The documented layout, made as the operator (root) makes it."""

    top: Path
    config: Path
    state: Path
    port: int

    @property
    def keys_file(self) -> Path:
        return self.state / "keys" / "jwks-private.json"

    @property
    def audit_file(self) -> Path:
        return self.state / "audit" / "audit.jsonl"

    @property
    def public_jwks(self) -> Path:
        return self.state / "public" / "jwks.json"

    def env(self, install: Install) -> dict[str, str]:
        """The container's environment (the Dockerfile's ENV and its user's HOME)."""
        return {
            "PATH": f"{install.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/nonexistent",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PML_RISK_CONFIG": str(self.config),
            "PML_RISK_PUBLIC_JWKS": str(self.public_jwks),
        }

    def run(self, install: Install, *args: str) -> subprocess.CompletedProcess[str]:
        """``pml-risk ARGS`` as uid/gid 10001 in the state folder."""
        return subprocess.run(["pml-risk", *args], cwd=self.state, env=self.env(install),
                              user=APP_UID, group=APP_GID, extra_groups=[],
                              capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def site() -> Iterator[Site]:
    top = Path(tempfile.mkdtemp(prefix="pml-risk-site-"))
    try:
        top.chmod(0o755)
        etc = top / "etc-pml-risk"
        etc.mkdir(mode=0o755)
        state = top / "var-lib-pml-risk"
        for sub in (*PRIVATE_FOLDERS, "public"):
            (state / sub).mkdir(parents=True)
        for path in (state, *state.iterdir()):
            os.chown(path, APP_UID, APP_GID)
            path.chmod(0o700 if path.name in PRIVATE_FOLDERS else 0o755)
        port = free_port()
        made = Site(top=top, config=etc / "pml-risk.toml", state=state, port=port)
        write_config(made.config, base_url="https://app.example", secret_key=SECRET_KEY,
                     keys_file=str(made.keys_file), audit={"path": str(made.audit_file)},
                     server={"port": port}, tenants=[TENANT])
        os.chown(made.config, 0, APP_GID)  # it holds secret_key: the app's group reads it
        made.config.chmod(0o640)
        yield made
    finally:
        shutil.rmtree(top, ignore_errors=True)  # root removes what uid 10001 made too


def _owned_by_root(path: Path, mode: int = 0o755) -> None:
    os.chown(path, 0, 0)
    path.chmod(mode)


def _owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _same_words_from_check_config(site: Site, install: Install, words: str) -> None:
    done = site.run(install, "check-config", str(site.config), "--offline")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"error: {words}" in done.stdout, done.stdout


# -- the documented layout -----------------------------------------------------------------


def test_in_the_documented_layout_the_key_is_generated_and_serve_runs_as_10001(
    installed: Install, site: Site,
) -> None:
    made = site.run(installed, "keys", "generate")  # PML_RISK_CONFIG names keys_file
    assert made.returncode == 0, made.stderr
    assert f"wrote {site.keys_file}" in made.stdout
    assert _owner_and_mode(site.keys_file) == (APP_UID, APP_GID, 0o600)

    checked = site.run(installed, "check-config", str(site.config), "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "configuration OK, 0 warning(s)" in checked.stdout

    log = site.top / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(["pml-risk", "serve"], cwd=site.state, env=site.env(installed),
                                user=APP_UID, group=APP_GID, extra_groups=[],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        http = browser()
        base = f"http://127.0.0.1:{site.port}"
        wait_healthy(base, lambda: None if proc.poll() is None else log.read_text(
            errors="replace"), http=http)

        served = http.get(f"{base}/.well-known/jwks.json", timeout=5).json()
        assert len(served["keys"]) == 2
        assert json.loads(site.public_jwks.read_text(encoding="utf-8")) == served
        assert _owner_and_mode(site.public_jwks) == (APP_UID, APP_GID, 0o644)
        sessions = site.state / "instance" / "sessions.sqlite3"  # the default, relative store
        assert _owner_and_mode(sessions) == (APP_UID, APP_GID, 0o600)
        # A launch from an unregistered EHR: a worker writes the audit line.
        refused = http.get(f"{base}/launch", params={"iss": "https://other.example/fhir",
                                                      "launch": "x"}, timeout=10)
        assert refused.status_code == 400
        assert _owner_and_mode(site.audit_file) == (APP_UID, APP_GID, 0o600)
        events = [json.loads(line) for line in site.audit_file.read_text().splitlines()]
        assert any(e.get("event") == "launch.refused" for e in events), events
        for name in PRIVATE_FOLDERS:
            assert _owner_and_mode(site.state / name) == (APP_UID, APP_GID, 0o700), name
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text and "Permission denied" not in text, text


# -- wrong layouts ---------------------------------------------------------------------------


def _generate_key(site: Site, install: Install) -> None:
    made = site.run(install, "keys", "generate")
    assert made.returncode == 0, made.stderr


@pytest.mark.parametrize("instance", ["missing", "root's"])
def test_a_state_folder_owned_by_root_names_the_session_store(
    installed: Install, site: Site, instance: str,
) -> None:
    """E.g. a host folder made by root mounted over the volume: instance/ cannot be made."""
    _generate_key(site, installed)
    if instance == "missing":
        (site.state / "instance").rmdir()
    else:
        _owned_by_root(site.state / "instance")
    _owned_by_root(site.state)
    words = "session_store: instance cannot be created or written"
    done = site.run(installed, "serve")
    one_line_refusal(done, words)
    assert done.stderr.splitlines() == [f"pml-risk: {words}"]  # nothing else is wrong
    _same_words_from_check_config(site, installed, words)


def test_a_key_file_made_on_the_host_as_root_cannot_be_read(
    installed: Install, site: Site,
) -> None:
    done = subprocess.run(["pml-risk", "keys", "generate"], cwd=site.state,
                          env=site.env(installed), capture_output=True, text=True, timeout=120,
                          check=False)  # as root: root's file, mode 0600, in the app's keys/
    assert done.returncode == 0, done.stderr
    assert _owner_and_mode(site.keys_file) == (0, 0, 0o600)
    words = f"keys_file: {site.keys_file} is not a readable JWK Set: [Errno 13] Permission denied"
    one_line_refusal(site.run(installed, "serve"), words)
    _same_words_from_check_config(site, installed, words)


def test_keys_generate_and_rotate_in_a_keys_folder_owned_by_root_say_so_in_one_line(
    installed: Install, site: Site,
) -> None:
    """E.g. a host folder mounted at keys/ without ``install -o 10001``, or read-only."""
    words = f"keys_file: {site.keys_file} cannot be written: Permission denied"
    _owned_by_root(site.state / "keys")
    one_line_refusal(site.run(installed, "keys", "generate"), words)
    assert not site.keys_file.exists()

    os.chown(site.state / "keys", APP_UID, APP_GID)
    _generate_key(site, installed)
    before = site.keys_file.read_bytes()
    _owned_by_root(site.state / "keys")  # the key file stays 10001's and readable
    one_line_refusal(site.run(installed, "keys", "rotate"), words)
    assert site.keys_file.read_bytes() == before


def test_a_missing_audit_folder_names_the_audit_path(installed: Install, site: Site) -> None:
    _generate_key(site, installed)
    (site.state / "audit").rmdir()
    words = f"audit.path: {site.audit_file} cannot be written"
    done = site.run(installed, "serve")
    one_line_refusal(done, words)
    assert done.stderr.splitlines() == [f"pml-risk: {words}"]
    _same_words_from_check_config(site, installed, words)


def test_a_public_jwks_folder_owned_by_root_names_the_file(
    installed: Install, site: Site,
) -> None:
    """Only ``serve`` writes the public JWKS (check-config does not know the file)."""
    _generate_key(site, installed)
    _owned_by_root(site.state / "public")
    done = site.run(installed, "serve")
    one_line_refusal(done, f"{site.public_jwks} cannot be written")
    assert len(done.stderr.splitlines()) == 1
    assert not site.public_jwks.exists()


def test_a_configuration_only_root_can_read_is_said_by_every_command(
    installed: Install, site: Site,
) -> None:
    """The file holds secret_key, so chmod 600 (for root only) is a likely mistake."""
    site.config.chmod(0o600)
    words = f"config file {site.config} cannot be read: Permission denied"
    for command in (["serve"], ["keys", "generate"]):
        one_line_refusal(site.run(installed, *command), words)
    _same_words_from_check_config(site, installed, words)
