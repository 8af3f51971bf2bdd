"""How hard the fuzz suite tries: a short budget in CI, a long one on request.

``PML_RISK_FUZZ=long`` (what ``python bench/fuzz_long.py`` sets) multiplies every test's example
count by ``PML_RISK_FUZZ_FACTOR`` (default 40); ``PML_RISK_FUZZ_EXAMPLES=N`` sets the count
outright. Each property test counts the cases
it ran in :data:`CASES`; with ``PML_RISK_FUZZ_REPORT=path`` the counts are written there as JSON
when the session ends, for the long run's report.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

CASES: Counter[str] = Counter()
LONG_FACTOR = 40


def examples(ci: int) -> int:
    """The example count of a test whose CI budget is ``ci``."""
    explicit = os.environ.get("PML_RISK_FUZZ_EXAMPLES")
    if explicit:
        return int(explicit)
    if os.environ.get("PML_RISK_FUZZ") != "long":
        return ci
    return ci * int(os.environ.get("PML_RISK_FUZZ_FACTOR", LONG_FACTOR))


def fuzz(ci: int) -> settings:
    """Hypothesis settings: the budget, no per-example deadline (each reply's own deadline is
    asserted by the test), and no health check against slow or fixture-using tests."""
    return settings(
        max_examples=examples(ci),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


def count(test: str) -> None:
    CASES[test] += 1
