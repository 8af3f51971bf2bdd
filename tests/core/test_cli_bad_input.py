"""``pml-risk assess`` on bad input: exit 2, one line on stderr, an OperationOutcome (or, with
``--format text``, a plain line) on stdout, and never a traceback. Also: ``-`` reads stdin.

Each case ran into an uncaught exception before. The command runs as a real
process, so what a script sees (exit code, streams) is what is asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EX05 = ROOT / "fhir_fixtures" / "ex05-index-1-51-25-infusions.json"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smart_app.cli", "assess", *args, "--at", "2026-11-25"],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )


def ex05() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EX05.read_text(encoding="utf-8"))
    return data


def _with_first_observation(change: dict[str, Any]) -> str:
    bundle = ex05()
    observation = next(e["resource"] for e in bundle["entry"]
                       if e["resource"]["resourceType"] == "Observation")
    observation.update(change)
    return json.dumps(bundle)


CASES = {
    "coding true": _with_first_observation({"code": {"coding": True}}),
    "Bundle.type []": json.dumps({**ex05(), "type": []}),
    "5,000-digit integer": json.dumps(ex05()).replace('"type": "collection"',
                                                      '"type": "collection", "total": '
                                                      + "7" * 5000, 1),
    "index 1e99999999": re.sub(r'("valueQuantity": \{"value": )1\.51', r"\g<1>1e99999999",
                               json.dumps(ex05()), count=1),
    "quantity value a string": _with_first_observation({"valueQuantity": {"value": "71"}}),
    "nested 100,000 deep": json.dumps(ex05())[:-1] + ', "x": ' + "[" * 100_000
    + "]" * 100_000 + "}",
}


@pytest.fixture(params=sorted(CASES))
def bad_bundle(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    text = CASES[request.param]
    assert text != json.dumps(ex05()), "the case changes the bundle"
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_bundle_is_exit_2_with_an_operation_outcome(bad_bundle: Path) -> None:
    done = run(str(bad_bundle))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("pml-risk: ") and done.stderr.count("\n") == 1
    outcome = json.loads(done.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"]


def test_text_format_applies_to_errors(bad_bundle: Path) -> None:
    done = run(str(bad_bundle), "--format", "text")
    assert done.returncode == 2
    assert done.stdout.startswith("No estimate: bad input.")
    assert "OperationOutcome" not in done.stdout and "Traceback" not in done.stderr


def test_reads_the_bundle_from_standard_input() -> None:
    done = run("-", stdin=EX05.read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resourceType"] == "RiskAssessment"


def test_bad_input_on_standard_input_names_it() -> None:
    done = run("-", "--format", "text", stdin="{not json")
    assert done.returncode == 2
    assert done.stderr.startswith("pml-risk: standard input is not JSON")
