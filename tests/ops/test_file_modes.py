"""Credentials and identifiers on disk are readable by the service account only."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from smart_app.ops import audit
from smart_app.smart import keys
from smart_app.smart.store import SQLiteKV


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("loose_umask")
def test_a_planted_tmp_file_cannot_lend_the_private_key_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "jwks-private.json"
    planted = tmp_path / "jwks-private.json.tmp"
    planted.write_text("{}")
    planted.chmod(0o644)
    keys.save(keys.generate(), target)
    assert mode(target) == 0o600
    assert not planted.exists()


@pytest.mark.usefixtures("loose_umask")
def test_the_session_store_and_audit_files_are_owner_only(tmp_path: Path) -> None:
    SQLiteKV(str(tmp_path / "sessions.sqlite3")).set("k", b"v", 60)
    assert mode(tmp_path / "sessions.sqlite3") == 0o600
    path = tmp_path / "audit.jsonl"
    logger = logging.getLogger(audit.LOGGER)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    audit.configure(str(path))
    try:
        audit.event("launch.received", tenant="t")
        assert mode(path) == 0o600
        assert '"launch.received"' in path.read_text()
    finally:  # leave the audit logger as other tests expect it
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.propagate, logger.level = saved[1], saved[2]
