"""Which build made a result: ``--version`` and every saved RiskAssessment and note name it.

A later correction of a rule has to find the results it affected; the chart is where those
results live, so each one carries the app version (and the build's commit where the deployment
sets ``PML_RISK_BUILD_COMMIT``) beside the risk table id. Saved here through the sandbox EHR's
write-back profiles and read back through its FHIR API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from .conftest import StackFactory
from .test_writeback import Tab
from .test_writeback_ladder import saved, text_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VERSION = metadata.version("pml-risk")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smart_app.cli", *args], capture_output=True, text=True,
        timeout=60, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_version_flag_prints_the_package_version_and_the_commit_where_known() -> None:
    plain = _cli("--version", PML_RISK_BUILD_COMMIT="")
    assert (plain.returncode, plain.stdout) == (0, f"pml-risk {VERSION}\n")
    built = _cli("--version", PML_RISK_BUILD_COMMIT=COMMIT)
    assert built.stdout == f"pml-risk {VERSION} (commit {COMMIT[:12]})\n"
    # Whatever is not a commit id is not written into charts.
    assert _cli("--version", PML_RISK_BUILD_COMMIT="main; rm -rf").stdout == f"pml-risk {VERSION}\n"


def test_a_saved_risk_assessment_names_the_build_beside_the_table(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PML_RISK_BUILD_COMMIT", COMMIT)
    stack = make_stack(sandbox={"ehr_profile": "full"})
    tab = Tab(stack)
    assert tab.save({"identifier": tab.identifier}).json()["resourceType"] == "RiskAssessment"
    [resource] = saved(stack, tab, "RiskAssessment")
    table_note = [n["text"] for n in resource["note"] if n["text"].startswith("Risk table ")]
    assert table_note, resource["note"]
    assert f"made by pml-risk {VERSION} (commit {COMMIT[:12]})" in table_note[0]
    assert resource["method"]["coding"][0]["code"] in table_note[0]


def test_a_saved_note_names_the_build(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PML_RISK_BUILD_COMMIT", COMMIT)
    stack = make_stack(sandbox={"ehr_profile": "notes-only"})
    tab = Tab(stack)
    assert tab.save({"identifier": tab.identifier}).json()["resourceType"] == "DocumentReference"
    [note] = saved(stack, tab, "DocumentReference")
    assert f"Written by pml-risk {VERSION} (commit {COMMIT[:12]})" in text_of(note)


def test_assess_names_the_build_in_its_risk_assessment() -> None:
    done = _cli("assess", "fhir_fixtures/ex05-index-1-51-25-infusions.json", "--at",
                "2026-11-25", PML_RISK_BUILD_COMMIT="")
    assert done.returncode == 0, done.stderr
    assert f"made by pml-risk {VERSION}." in done.stdout
