"""Fuzz suite: write the per-test case counts when a report path is given (the long run)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from .budget import CASES


@pytest.fixture(scope="session", autouse=True)
def _case_report() -> Iterator[None]:
    yield
    path = os.environ.get("PML_RISK_FUZZ_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(CASES), fh, indent=2, sort_keys=True)
