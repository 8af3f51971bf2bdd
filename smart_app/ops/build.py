"""Which build of pml-risk is running: the package version and, where known, its commit.

Every saved result names the build that made it, so that when a rule is later corrected the
results it affected can be found (CHANGELOG.md says which results each rule change affects).
The version is the installed distribution's. The commit is known only where the deployment says
it: the ``PML_RISK_BUILD_COMMIT`` environment variable (a CI or orchestrator setting), else a
``BUILD_COMMIT`` file beside this package (the Dockerfile writes one from its build argument).
A source checkout that says neither has no commit: nothing is guessed from a ``.git`` folder a
deployment may not have or may have changed since.
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import metadata
from pathlib import Path

COMMIT_ENV = "PML_RISK_BUILD_COMMIT"
COMMIT_FILE = Path(__file__).resolve().parents[1] / "BUILD_COMMIT"
_COMMIT = re.compile(r"[0-9a-f]{7,40}")


@cache
def version() -> str:
    """The installed version of pml-risk ("unknown" only for a tree that was never installed)."""
    try:
        return metadata.version("pml-risk")
    except metadata.PackageNotFoundError:
        return "unknown"


def commit() -> str | None:
    """The build's commit (hex, shortened to 12), or None when the deployment does not say.

    Anything that is not a hex commit id is ignored rather than written into a chart.
    """
    value = os.environ.get(COMMIT_ENV, "").strip().lower()
    if not value:
        try:
            value = COMMIT_FILE.read_text(encoding="ascii").strip().lower()
        except (OSError, UnicodeDecodeError):
            return None
    return value[:12] if _COMMIT.fullmatch(value) else None


def describe() -> str:
    """"0.1.0" or "0.1.0 (commit 1a2b3c4d5e6f)": what a saved result and ``--version`` print."""
    found = commit()
    return f"{version()} (commit {found})" if found else version()
