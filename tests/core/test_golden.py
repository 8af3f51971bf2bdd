"""Every fixture patient as the clinician reads it, word for word, against a reviewed copy.

``index.json`` pins each fixture's figure, row and finding codes; this pins everything else a
clinician sees: every message, the monitoring advice, the inputs with their sources and the
plain-text summary. A changed word in a warning is a change to what the clinician is told, so it
must show up in review as a diff of ``tests/core/golden/<fixture>.json``, never slip through.

After an intended change, rewrite the copies and review the diff:

    PML_RISK_UPDATE_GOLDEN=1 python -m pytest tests/core/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from smart_app.fhir.present import assessment_json, text_summary

from .fixtures_index import IDS
from .test_fixtures import assess_fixture

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PML_RISK_UPDATE_GOLDEN") == "1"


def shown(fixture_id: str) -> dict[str, Any]:
    """What the assessment's JSON and the text summary say about one fixture patient (the
    written-back RiskAssessment has its own tests)."""
    a = assess_fixture(fixture_id).assessment
    return {**assessment_json(a), "textSummary": text_summary(a).splitlines()}


@pytest.mark.parametrize("fixture_id", IDS)
def test_fixture_reads_word_for_word_as_reviewed(fixture_id: str) -> None:
    path = GOLDEN / f"{fixture_id}.json"
    got = json.loads(json.dumps(shown(fixture_id), sort_keys=True, default=str))
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    assert path.is_file(), f"no reviewed copy: run PML_RISK_UPDATE_GOLDEN=1 pytest {__file__}"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert got == expected, (
        f"{fixture_id} reads differently from tests/core/golden/{fixture_id}.json; if the change "
        "is intended, rewrite it with PML_RISK_UPDATE_GOLDEN=1 and review the diff"
    )
