"""Suite-wide rule: under CI nothing may be skipped.

Locally, browser and Redis tests skip when Debian's chromium or redis-server is missing, so a
newcomer's first run is not a wall of red. In CI (``CI=true``, where ``.ci/run`` installs both) a
skip would hide a missing install step behind a green run, so it fails the session instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

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


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Commands run in-process (``main(["worklist", ...])``) configure logging for a process:
    the audit logger stops propagating, so later tests reading it through ``caplog`` see
    nothing. Every test leaves the root and audit loggers as it found them."""
    loggers = [logging.getLogger(), logging.getLogger("pml_risk.audit")]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.propagate, logger.level = propagate, level
