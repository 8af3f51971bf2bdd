"""Every fixture patient through the service seam, against fhir_fixtures/index.json."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from smart_app.config import Settings
from smart_app.fhir.bundle import read_bundle
from smart_app.service import ChartAssessment, assess_chart

from .fixtures_index import BY_ID, IDS, bundle_path


def assess_fixture(fixture_id: str) -> ChartAssessment:
    chart = read_bundle(json.loads(bundle_path(fixture_id).read_text(encoding="utf-8")))
    return assess_chart(
        chart.resources,
        chart.patient_id,
        at=date.fromisoformat(BY_ID[fixture_id]["at"]),
        settings=Settings(),
        full_urls=chart.full_urls,
    )


@pytest.mark.parametrize("fixture_id", IDS)
def test_fixture_matches_its_expected_result(fixture_id: str) -> None:
    expected = BY_ID[fixture_id]["expected"]
    result = assess_fixture(fixture_id)
    a = result.assessment

    assert result.status == expected["status"]
    assert a.exposure.infusions == expected["infusions"]
    assert a.antibody.status.value == expected["antibody"]
    index = a.antibody.index
    assert index == (Decimal(expected["index"]) if expected["index"] is not None else None)
    assert a.prior_immunosuppressant.value is expected["prior_is"]
    # Every finding is listed: one appearing or vanishing is a change the clinician sees.
    assert sorted(f.code.value for f in a.findings) == sorted(expected["findings"])
    if expected["status"] == "ok":
        assert a.cell is not None
        assert a.per_1000 == Decimal(expected["per_1000"])
        assert (a.cell.row, a.cell.band) == (expected["row"], expected["band"])
        assert a.qualitative == expected["qualitative"]
        assert result.risk_assessment is not None
    else:
        assert a.cell is None and a.qualitative is None
        assert result.risk_assessment is None


def test_api_json_shows_inputs_with_their_sources() -> None:
    body = assess_fixture("ex07-prior-is-azathioprine-48").api_json()
    assert body["status"] == "ok"
    assert body["result"]["per1000"] == "12"
    assert body["result"]["cell"]["words"] == "antibody positive, prior IS, 25–48 infusions"
    evidence = body["inputs"]["priorImmunosuppressant"]["evidence"]
    assert evidence and all(e["agent"] == "azathioprine" and e["source"] for e in evidence)
    assert body["inputs"]["exposure"]["infusions"] == 48
    assert len(body["inputs"]["exposure"]["sources"]) == 48
    assert body["riskAssessment"]["resourceType"] == "RiskAssessment"


def test_extended_interval_fixture_reports_the_interval() -> None:
    a = assess_fixture("ex12-eid-40-over-60-months").assessment
    assert a.exposure.extended_interval
    assert a.exposure.mean_interval_days is not None and a.exposure.mean_interval_days >= 35
    assert a.exposure.calendar_months is not None and a.exposure.calendar_months >= 59
