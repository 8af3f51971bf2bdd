"""The card says when the brain MRI is overdue (an action: ``warning``), the next infusion's
band and, for the higher-risk groups, the prescriber advice with sources."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from smart_app.cds import cards
from smart_app.risk import Antibody
from smart_app.risk.records import BrainMri
from tests.core.builders import antibody_test, infusions, inputs, run

from .conftest import Stack

NEGATIVE = inputs(antibody_test(Antibody.NEGATIVE), infusions(30))


def mri(on: date) -> BrainMri:
    return BrainMri("DiagnosticReport/mri-1", on, "report", "final")


def test_an_overdue_mri_makes_an_otherwise_quiet_card_a_warning() -> None:
    recent = run(replace(NEGATIVE, mris=(mri(date(2026, 5, 1)),)))
    assert cards.indicator(recent) == "info"
    late = run(replace(NEGATIVE, mris=(mri(date(2025, 8, 1)),)))
    assert cards.indicator(late) == "warning"
    assert cards.summary(late).endswith("; brain MRI overdue")
    assert "Last brain MRI 2025-08-01; overdue by 3 months (due 2026-08-01)." in (
        cards.detail(late))


def test_no_mri_on_record_is_said_without_claiming_an_action() -> None:
    a = run(NEGATIVE)
    assert cards.indicator(a) == "info"
    assert "No brain MRI on record." in cards.detail(a)


def test_the_card_names_the_next_infusions_band() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.50"), infusions(24)))
    assert ("The next infusion, the 25th, begins the 25–48 band: 1.1 per 1,000; 8.8 if the "
            "index retests above 1.5.") in cards.detail(a)


def test_higher_risk_card_lists_the_prescriber_advice_with_sources() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.51"), infusions(25)))
    detail = cards.detail(a)
    assert "Re-assess the benefit and risk" in detail
    assert "Summary of Product Characteristics" in detail


def test_a_card_from_the_prefetch_says_the_mri_history_is_unknown(stack: Stack) -> None:
    """The prefetch carries no imaging: the card never claims "no brain MRI on record"."""
    card = stack.card("patient-view", "ex05-index-1-51-25-infusions")
    assert "Brain MRI history unknown" in card["detail"]
    assert "No brain MRI on record" not in card["detail"]
