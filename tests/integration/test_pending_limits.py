"""Anonymous state is bounded: pending sign-ins are capped per client address and in total, and
the SQLite store's expiry sweep uses an index rather than scanning every pending record."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smart_app.smart.store import SQLiteKV

from .conftest import StackFactory

pytestmark = pytest.mark.integration


def _standalone_statuses(make_stack: StackFactory, n: int, **limits: int) -> list[int]:
    stack = make_stack(settings={"limits": limits})
    browser = stack.browser()
    return [browser.get(f"{stack.base}/standalone", params={"iss": stack.iss},
                        allow_redirects=False, timeout=30).status_code for _ in range(n)]


def test_pending_sign_ins_per_address_are_capped(make_stack: StackFactory) -> None:
    assert _standalone_statuses(make_stack, 5, pending_per_address=3) == [302, 302, 302, 429,
                                                                           429]


def test_pending_sign_ins_in_total_are_capped(make_stack: StackFactory) -> None:
    statuses = _standalone_statuses(make_stack, 4, pending_per_address=100, pending_total=2)
    assert statuses == [302, 302, 429, 429]


def test_refused_sign_in_says_why_and_stores_nothing(make_stack: StackFactory,
                                                     tmp_path: Path) -> None:
    stack = make_stack(settings={"limits": {"pending_per_address": 1}})
    browser = stack.browser()
    url = f"{stack.base}/standalone"
    assert browser.get(url, params={"iss": stack.iss}, allow_redirects=False,
                       timeout=30).status_code == 302
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as db:
        before = db.execute("SELECT count(*) FROM kv").fetchone()[0]
    refused = browser.get(url, params={"iss": stack.iss}, allow_redirects=False, timeout=30)
    assert refused.status_code == 429 and "Too many sign-ins" in refused.text
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM kv").fetchone()[0] == before


def test_sqlite_expiry_sweep_uses_an_index(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SQLiteKV(str(path))
    with sqlite3.connect(path) as db:
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN DELETE FROM kv WHERE exp <= ?", (0.0,)))
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
