"""``pml-risk assess --format text`` and the RiskAssessment carry the next infusion's band, the
brain-MRI due date and the higher-risk advice (docs/clinical-basis.md §6)."""

from __future__ import annotations

import json

import pytest

from smart_app.cli import main

from .fixtures_index import BY_ID, bundle_path


def assess(capsys: pytest.CaptureFixture[str], fixture_id: str, *more: str) -> str:
    main(["assess", str(bundle_path(fixture_id)), "--at", BY_ID[fixture_id]["at"], *more])
    return capsys.readouterr().out


def test_text_shows_the_next_band_and_the_mri_due(capsys: pytest.CaptureFixture[str]) -> None:
    out = assess(capsys, "ex04-index-1-50-24-infusions", "--format", "text")
    assert "0.2 per 1,000" in out
    assert ("The next infusion, the 25th, begins the 25–48 band: 1.1 per 1,000; 8.8 if the "
            "index retests above 1.5.") in out
    assert "Last brain MRI 2026-08-10; due now (since 2026-11-10)." in out


def test_text_shows_an_overdue_mri_and_the_higher_risk_advice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = assess(capsys, "ex05-index-1-51-25-infusions", "--format", "text")
    assert "Last brain MRI 2026-06-30; overdue by 8 weeks (due 2026-09-30)." in out
    assert "Higher-risk group: what the prescriber is asked to do:" in out
    assert "Stop natalizumab at the first sign suggestive of PML" in out


def test_without_an_estimate_text_gives_the_cautious_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = assess(capsys, "indeterminate", "--format", "text")
    assert "NO ESTIMATE" in out
    assert "Brain MRI every 3–4 months with FLAIR and DWI until the antibody result is resolved" \
        in out


def test_risk_assessment_mitigation_and_first_note(capsys: pytest.CaptureFixture[str]) -> None:
    body = json.loads(assess(capsys, "ex04-index-1-50-24-infusions"))
    assert "Last brain MRI 2026-08-10" in body["mitigation"]
    assert body["note"][0]["text"].startswith("The next infusion, the 25th")
