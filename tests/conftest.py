"""Suite-wide rule: under CI nothing may be skipped.

Locally, browser and Redis tests skip when Debian's chromium or redis-server is missing, so a
newcomer's first run is not a wall of red. In CI (``CI=true``, where ``.ci/run`` installs both) a
skip would hide a missing install step behind a green run, so it fails the session instead.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow:")
        for nodeid in _skipped[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
