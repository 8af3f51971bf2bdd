"""Session store backends: the whole launch over SQLite, Redis and memory; encryption at rest."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smart_app.smart.store import SessionStore, open_kv, open_store

from .conftest import StackFactory

pytestmark = pytest.mark.integration

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(REDIS).exists():
        pytest.skip("redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [REDIS, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_launch_over_sqlite_keeps_tokens_encrypted_at_rest(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    db = tmp_path / "at-rest.sqlite3"
    stack = make_stack(store=f"sqlite:///{db}")
    browser = stack.browser()
    page = stack.launch(browser, "ex01-negative-30")
    assert browser.get(page + "/assessment", timeout=30).status_code == 200
    launch = stack.services.repo.get(page.rsplit("/", 1)[1])
    assert launch is not None
    raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                             if db.with_name(db.name + "-wal").exists() else b"")
    assert launch.tokens.access_token.encode() not in raw
    assert launch.tokens.refresh_token and launch.tokens.refresh_token.encode() not in raw
    assert launch.id.encode() not in raw  # keys are HMACs, not the ids in URLs
    assert b"ex01-negative-30" not in raw


def test_launch_over_redis(make_stack: StackFactory, redis_url: str) -> None:
    stack = make_stack(store=redis_url, sandbox={"token_lifetime": 2})
    browser = stack.browser()
    page = stack.launch(browser, "ex03-index-0-90")
    assert browser.get(page + "/assessment", timeout=30).json()["status"] == "ok"
    time.sleep(1.2)
    assert browser.get(page, timeout=30).status_code == 200  # a reload reads: refresh lock


def test_launch_over_memory(make_stack: StackFactory) -> None:
    stack = make_stack(store="memory://")
    browser = stack.browser()
    page = stack.launch(browser, "ex03-index-0-90")
    assert browser.get(page + "/assessment", timeout=30).json()["status"] == "ok"


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_take_is_single_use_under_contention(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'kv.sqlite3'}",
    }.get(backend) or request.getfixturevalue("redis_url")
    store = open_store(url, "k" * 40)
    store.put("state", "abc", {"v": 1}, 60)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.take("state", "abc"), range(16)))
    assert sum(r is not None for r in results) == 1
    assert store.try_lock("x", 30) is True
    assert store.try_lock("x", 30) is False
    store.unlock("x")
    assert store.try_lock("x", 30) is True


def test_expiry_and_foreign_key(tmp_path: Path) -> None:
    kv = open_kv(f"sqlite:///{tmp_path / 'kv.sqlite3'}")
    store = SessionStore(kv, "a" * 40)
    store.put("launch", "id", {"x": 1}, 1)
    assert store.get("launch", "id") == {"x": 1}
    other = SessionStore(kv, "b" * 40)  # another secret_key: nothing readable
    assert other.get("launch", "id") is None
    time.sleep(1.1)
    assert store.get("launch", "id") is None
