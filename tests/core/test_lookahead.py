"""The next infusion's band, the cautious interval without an estimate, and the advice for the
higher-risk groups (docs/clinical-basis.md §6)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from smart_app.risk import Antibody, Overrides
from smart_app.risk.records import Infusion, Inputs

from .builders import AT, BEFORE_NATALIZUMAB, antibody_test, infusions, inputs, lab, medication, run


def test_24_infusions_index_1_50_says_the_25th_begins_the_next_band() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.50"), infusions(24)))
    assert a.per_1000 == Decimal("0.2")
    nb = a.next_band
    assert nb is not None
    assert (nb.infusion, nb.band, nb.per_1000) == (25, "25–48 infusions", Decimal("1.1"))
    assert nb.per_1000_if_above == Decimal("8.8") and nb.if_index_above == Decimal("1.5")
    assert nb.text == ("The next infusion, the 25th, begins the 25–48 band: 1.1 per 1,000; 8.8 "
                       "if the index retests above 1.5.")


@pytest.mark.parametrize(("n", "infusion", "band", "figure"), [
    (24, 25, "25–48 infusions", "8.8"), (48, 49, "49–72 infusions", "10.1"),
])
def test_index_above_cut_off_gives_the_next_figure_without_a_retest_figure(
    n: int, infusion: int, band: str, figure: str
) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "3.0"), infusions(n)))
    nb = a.next_band
    assert nb is not None and (nb.infusion, nb.band, nb.per_1000) == (infusion, band,
                                                                      Decimal(figure))
    assert nb.per_1000_if_above is None and "retests" not in nb.text


def test_72_infusions_says_the_73rd_is_beyond_published_data() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), infusions(72)))
    nb = a.next_band
    assert nb is not None and nb.beyond_published and nb.infusion == 73
    assert "73rd" in nb.text and "beyond the published data" in nb.text
    assert "1.4 per 1,000" in nb.text


@pytest.mark.parametrize("n", [0, 12, 23, 25, 47, 60, 73, 100])
def test_no_look_ahead_inside_a_band(n: int) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), infusions(n)))
    assert a.next_band is None


def test_negative_24_infusions_next_band() -> None:
    a = run(inputs(antibody_test(Antibody.NEGATIVE), infusions(24)))
    nb = a.next_band
    assert nb is not None and nb.per_1000 == Decimal("0.2") and nb.per_1000_if_above is None


def test_no_look_ahead_without_an_estimate() -> None:
    a = run(inputs(antibody_test(Antibody.INDETERMINATE), infusions(24)))
    assert a.next_band is None and not a.complete


def test_what_if_count_gets_its_own_look_ahead() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), infusions(10),
                   overrides=Overrides(infusion_count=48, reason="records elsewhere")))
    assert a.next_band is not None and a.next_band.infusion == 49


# --- no estimate: the cautious MRI interval ----------------------------------------------------


@pytest.mark.parametrize("status", [Antibody.INDETERMINATE, Antibody.UNKNOWN])
def test_unresolved_antibody_with_18_infusions_gets_the_3_to_4_month_interval(
    status: Antibody
) -> None:
    labs = antibody_test(status) if status is Antibody.INDETERMINATE else ()
    a = run(inputs(labs, infusions(30)))
    assert not a.complete
    m = a.monitoring
    assert m.mri.startswith("Brain MRI every 3–4 months")
    assert "until the antibody result is resolved" in m.mri
    assert m.provisional == "until the antibody result is resolved"
    assert m.mri_months == (3, 4)


def test_discordant_results_get_the_cautious_interval() -> None:
    labs = (lab(Antibody.NEGATIVE), lab(index="2.5"))
    a = run(inputs(labs, infusions(30)))
    assert a.antibody.discordant and not a.complete
    assert a.monitoring.mri_months == (3, 4)
    assert a.monitoring.mri == (
        "Brain MRI every 3–4 months with FLAIR and DWI until the antibody result is resolved "
        "(the antibody could be positive: the more frequent interval).")


def test_unresolved_antibody_before_18_infusions_is_yearly_until_18() -> None:
    a = run(inputs(antibody_test(Antibody.INDETERMINATE), infusions(10)))
    assert a.monitoring.mri_months == (12, 12)
    assert a.monitoring.mri.startswith("Brain MRI every 12 months until the antibody result")
    assert "from 18 infusions" in a.monitoring.mri


def test_unread_antibody_and_unread_infusions_take_the_3_to_4_monthly_interval() -> None:
    data = Inputs(patient="Patient/p1", unread=("Observation", "MedicationAdministration"))
    a = run(data)
    assert a.monitoring.mri_months == (3, 4)
    assert a.monitoring.mri == (
        "Brain MRI every 3–4 months with FLAIR and DWI until the antibody result is resolved "
        "(the antibody could be positive: the more frequent interval).")


def test_positive_with_unknown_count_takes_the_3_to_4_monthly_interval() -> None:
    data = Inputs(patient="Patient/p1", lab_results=antibody_test(Antibody.POSITIVE, "1.0"),
                  unread=("MedicationAdministration",))
    a = run(data)
    assert a.monitoring.mri_months == (3, 4)
    assert a.monitoring.provisional == "until the infusion count is known"
    assert a.monitoring.mri == (
        "Brain MRI every 3–4 months with FLAIR and DWI until the infusion count is known "
        "(the count could be 18 or more: the more frequent interval).")


def test_resolved_results_carry_no_provisional_label() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), infusions(30)))
    assert a.monitoring.provisional == "" and a.monitoring.mri_months == (3, 4)
    a = run(inputs(antibody_test(Antibody.NEGATIVE), infusions(30)))
    assert a.monitoring.provisional == "" and a.monitoring.mri_months == (12, 12)


# --- the higher-risk groups ----------------------------------------------------------------


def test_higher_risk_result_carries_prescriber_advice_with_sources() -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.51"), infusions(25)))
    assert a.qualitative == "high"
    texts = " ".join(x.text for x in a.advice)
    assert "Re-assess the benefit and risk" in texts and "alternative treatments" in texts
    assert "Extended-interval dosing" in texts
    assert "Stop natalizumab at the first sign suggestive of PML" in texts
    assert all(x.sources for x in a.advice)
    assert any("Summary of Product Characteristics" in s for x in a.advice for s in x.sources)


def test_prior_is_higher_risk_gets_the_advice() -> None:
    meds = (medication("azathioprine", BEFORE_NATALIZUMAB),)
    a = run(inputs(antibody_test(Antibody.POSITIVE), infusions(30), meds))
    assert a.qualitative == "high" and len(a.advice) == 3


@pytest.mark.parametrize(("status", "index", "n"), [
    (Antibody.POSITIVE, "1.51", 24), (Antibody.POSITIVE, "1.0", 60), (Antibody.NEGATIVE, None, 60),
])
def test_no_advice_outside_the_higher_risk_groups(
    status: Antibody, index: str | None, n: int
) -> None:
    a = run(inputs(antibody_test(status, index), infusions(n)))
    assert a.qualitative != "high" and a.advice == ()


def test_extended_interval_dosing_is_a_warning_to_read_with_care() -> None:
    start = AT - timedelta(days=42 * 30)
    given = tuple(Infusion(f"MedicationAdministration/e{k}", start + timedelta(days=42 * k),
                           "completed") for k in range(30))
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0"), given))
    eid = [f for f in a.findings if f.code.value == "exposure-extended-interval"]
    assert eid and eid[0].severity.value == "warning"
    assert "TOUCH" in eid[0].message
