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
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smart_app.config import Settings
from smart_app.fhir.present import assessment_json, text_summary
from smart_app.risk import Antibody, Assessment, Overrides
from smart_app.service import assess_chart

from .builders import (
    AT,
    FIRST_INFUSION,
    JCV_ANTIBODY,
    JCV_INDEX,
    PATIENT,
    administration,
    concept,
    index_value,
    natalizumab_series,
    observation,
    patient,
    request,
    snomed_result,
    statement,
)
from .fixtures_index import IDS
from .test_fixtures import assess_fixture

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PML_RISK_UPDATE_GOLDEN") == "1"


def shown(a: Assessment) -> dict[str, Any]:
    """What the assessment's JSON and the text summary say (the written-back RiskAssessment
    has its own tests)."""
    return {**assessment_json(a), "textSummary": text_summary(a).splitlines()}


BEFORE = (FIRST_INFUSION - timedelta(days=300)).isoformat()
POSITIVE = snomed_result("10828004", "Positive")
AZATHIOPRINE = concept("azathioprine 50 mg")


def chart(*resources: dict[str, Any], n: int = 30, **kw: Any) -> Assessment:
    """A small chart: the patient, ``n`` infusions and ``resources``, assessed on AT."""
    everything = [patient(), *natalizumab_series(n), *resources]
    return assess_chart(everything, PATIENT, at=AT, settings=Settings(), **kw).assessment


# Charts built to reach the rarer messages: each is read word for word like a fixture.
EDGE_CHARTS: dict[str, Callable[[], Assessment]] = {
    "unreadable-text": lambda: chart(observation("ab", JCV_ANTIBODY, valueString="see note")),
    "unreadable-long-text": lambda: chart(
        observation("ab", JCV_ANTIBODY, valueString="x" * 60)),
    "unreadable-quantity-without-value": lambda: chart(
        observation("idx", JCV_INDEX, valueQuantity={"unit": "index"})),
    "unreadable-no-value": lambda: chart(observation("ab", JCV_ANTIBODY)),
    "unreadable-beside-a-readable-index": lambda: chart(
        observation("ab", JCV_ANTIBODY, valueString="see note"),
        observation("idx", JCV_INDEX, **index_value("2.0"))),
    "bound-spanning-the-assay-cut-offs": lambda: chart(
        observation("idx", JCV_INDEX, valueString=">0.30")),
    "bound-spanning-1.5-with-positive": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, valueQuantity={"value": Decimal("0.9"),
                                                      "comparator": ">"})),
    "bound-above-1.5": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, valueQuantity={"value": Decimal("1.5"),
                                                      "comparator": ">"})),
    "discordant-on-one-date": lambda: chart(
        observation("ab", JCV_ANTIBODY, **snomed_result("260385009", "Negative")),
        observation("idx", JCV_INDEX, **index_value("2.0"))),
    "medication-records-not-counted": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        request("plan", BEFORE, AZATHIOPRINE, intent="plan"),
        request("cancelled", BEFORE, concept("methotrexate 15 mg"), status="cancelled"),
        statement("not-taken", None, concept("CellCept"), status="not-taken"),
        administration("not-done", BEFORE, medication=concept("cyclophosphamide"),
                       status="not-done")),
    "prior-and-concomitant-use": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        statement("before", BEFORE, AZATHIOPRINE),
        statement("undated", None, concept("mitoxantrone")),
        request("after", "2020-01-01", concept("methotrexate 15 mg"))),
    "unread-medication-sources": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        unread=["MedicationStatement", "MedicationRequest"]),
    "unread-one-medication-source": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        statement("before", BEFORE, AZATHIOPRINE),
        unread=["MedicationRequest"]),
    "overrides-everything": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, **index_value("0.9")),
        statement("before", BEFORE, AZATHIOPRINE),
        overrides=Overrides(prior_immunosuppressant=False, antibody=Antibody.POSITIVE,
                            index=Decimal("2.0"), infusion_count=40,
                            reason="outside results")),
    "override-as-chart": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, **index_value("0.9")),
        overrides=Overrides(antibody=Antibody.POSITIVE)),
    "override-clear-index": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        observation("idx", JCV_INDEX, **index_value("0.9")),
        overrides=Overrides(clear_index=True)),
    "override-without-a-chart-result": lambda: chart(
        statement("aza", BEFORE, AZATHIOPRINE),
        statement("mtx", BEFORE, concept("methotrexate 15 mg")),
        overrides=Overrides(antibody=Antibody.POSITIVE, index=Decimal("2.0"),
                            prior_immunosuppressant=False)),
    "conflicting-copies": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        administration("nat-029", "2017-03-13", status="not-done"),
        n=30),
    "versions-by-last-updated": lambda: chart(
        observation("ab", JCV_ANTIBODY, **POSITIVE),
        {**observation("idx", JCV_INDEX, **index_value("0.9")),
         "meta": {"lastUpdated": "2026-09-16T10:00:00Z"}},
        {**observation("idx", JCV_INDEX, **index_value("2.0")),
         "meta": {"lastUpdated": "2026-09-17T10:00:00Z"}}),
}


@pytest.mark.parametrize("name", list(EDGE_CHARTS))
def test_edge_chart_reads_word_for_word_as_reviewed(name: str) -> None:
    compare(f"edge-{name}", shown(EDGE_CHARTS[name]()))


@pytest.mark.parametrize("fixture_id", IDS)
def test_fixture_reads_word_for_word_as_reviewed(fixture_id: str) -> None:
    compare(fixture_id, shown(assess_fixture(fixture_id).assessment))


def compare(fixture_id: str, body: dict[str, Any]) -> None:
    path = GOLDEN / f"{fixture_id}.json"
    got = json.loads(json.dumps(body, sort_keys=True, default=str))
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


def test_only_a_higher_risk_group_is_called_higher_risk() -> None:
    """"Higher risk" is the EMA/PRAC group the headline names: the monitoring advice of a low or
    moderate result (or of none) gives the MRI schedule's reason instead, so the note, the page
    and the printout never put "higher risk" beside a "Moderate" headline."""
    read = 0
    for path in sorted(GOLDEN.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        result = body.get("result") or {}
        if result.get("qualitative") == "high":
            continue
        read += 1
        said = json.dumps(body["monitoring"], ensure_ascii=False).lower()
        assert "higher risk" not in said and "higher-risk" not in said, path.name
    assert read > 20
