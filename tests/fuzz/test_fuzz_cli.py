"""``pml-risk assess`` over mutated Bundles: an exit code scripts can rely on, never a traceback.

Properties, for every case: the command returns 0 (an estimate, a RiskAssessment on stdout), 3
(no estimate, an OperationOutcome ``incomplete``) or 2 (bad input, an OperationOutcome naming
what is wrong); nothing escapes as an exception; and it answers within its deadline (a chart is
assessed in milliseconds, so seconds mean a pathological path such as a backtracking regex).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from smart_app.cli import main

from .budget import count, fuzz
from .mutations import SPACES, Case, bundles, dumps, fixture, raw

DEADLINE = 5.0  # seconds per run, on a loaded 2-core CI machine
WORK = Path(tempfile.mkdtemp(prefix="pml-risk-fuzz-"))


def assess(text: str, *extra: str) -> tuple[int, str, str, float]:
    path = WORK / "bundle.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["assess", str(path), "--at", "2026-11-25", *extra])
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - started


def check(code: int, out: str, err: str, took: float, text_format: bool) -> None:
    assert code in (0, 2, 3), (code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out
    assert took < DEADLINE, f"assess took {took:.1f} s"
    if code != 0:
        assert err.startswith("pml-risk: ") and err.count("\n") == 1, err[:300]
    if text_format:
        assert out.strip(), "the text format prints something on every outcome"
        return
    payload: dict[str, Any] = json.loads(out)
    expected = {0: "RiskAssessment", 2: "OperationOutcome", 3: "OperationOutcome"}[code]
    assert payload["resourceType"] == expected
    if code != 0:
        assert payload["issue"][0]["diagnostics"]


@fuzz(ci=60)
@given(case=bundles(), text_format=st.booleans())
def test_mutated_bundles(case: Case, text_format: bool) -> None:
    count("cli: mutated bundles")
    extra = ("--format", "text") if text_format else ()
    code, out, err, took = assess(dumps(case.doc), *extra)
    event(f"exit {code}")
    check(code, out, err, took, text_format=text_format)


def _jcv_value(text: str) -> Any:
    """ex05 with its anti-JCV index result carried as a valueString of ``text``."""
    doc = json.loads(json.dumps(fixture("ex05-index-1-51-25-infusions.json")))
    for entry in doc["entry"]:
        resource = entry["resource"]
        if resource["id"].endswith("jcvidx-001"):
            del resource["valueQuantity"]
            resource["valueString"] = text
    return doc


@fuzz(ci=15)
@given(text=st.one_of(
    st.sampled_from([SPACES, " " * 1_000_000 + "x", "1.5" + " " * 200_000, "<" + " " * 50_000,
                     "1" * 300_000, ". " * 100_000]),
    st.text(alphabet=" \t\n.,<>=0123456789x+-eE", max_size=3_000),
))
def test_lab_value_strings(text: str) -> None:
    """Anti-JCV ``valueString``s that made a backtracking number pattern take seconds."""
    count("cli: lab value strings")
    check(*assess(json.dumps(_jcv_value(text))), text_format=False)


def test_raw_numbers_and_nesting_are_bad_input() -> None:
    """The review's cases, each named: exit 2, an OperationOutcome, no traceback."""
    base = fixture("ex05-index-1-51-25-infusions.json")
    cases = {
        "5,000 digits": dumps({**base, "total": raw("1" * 5000)}),
        "deep nesting": dumps({**base, "meta": raw("[" * 100_000 + "]" * 100_000)}),
        "Bundle.type []": dumps({**base, "type": []}),
        "Bundle.type {}": dumps({**base, "type": {}}),
    }
    for what, text in cases.items():
        code, out, err, took = assess(text)
        assert code == 2, (what, code, err)
        check(code, out, err, took, text_format=False)
