"""Clinician overrides (records.Overrides): each changes the result, is marked, and is written."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smart_app.fhir.riskassessment import build_risk_assessment
from smart_app.risk import Antibody, Assessment, Overrides
from smart_app.risk.records import LabResult

from .builders import (
    BEFORE_NATALIZUMAB,
    antibody_test,
    codes,
    finding,
    infusions,
    inputs,
    medication,
    run,
)

CHART = antibody_test(Antibody.POSITIVE, "0.9")  # positive, index ≤ 1.5


def chart(
    overrides: Overrides | None = None,
    *,
    n: int = 30,
    prior_is: bool = False,
    labs: tuple[LabResult, ...] = CHART,
) -> Assessment:
    meds = [medication("azathioprine", BEFORE_NATALIZUMAB)] if prior_is else []
    return run(inputs(labs, infusions(n), meds, overrides))


# override → (chart options, per_1000 without, per_1000 with, words in the finding)
OVERRIDES: dict[str, tuple[Overrides, dict[str, object], str, str, str]] = {
    "prior IS yes": (Overrides(prior_immunosuppressant=True), {}, "1.1", "12",
                     "prior immunosuppressant yes (chart: no)"),
    "prior IS no": (Overrides(prior_immunosuppressant=False), {"prior_is": True}, "12", "1.1",
                    "prior immunosuppressant no (chart: yes, azathioprine)"),
    "antibody negative": (Overrides(antibody=Antibody.NEGATIVE), {}, "1.1", "0.2",
                          "antibody status negative (chart: positive)"),
    "antibody positive": (Overrides(antibody=Antibody.POSITIVE), {"labs": ()}, "-", "3",
                          "antibody status positive (chart: unknown)"),
    "index": (Overrides(index=Decimal("2.0")), {}, "1.1", "8.8",
              "index 2 (chart: 0.9 of 2026-09-15)"),
    "clear index": (Overrides(clear_index=True), {}, "1.1", "3",
                    "index none (chart: 0.9 of 2026-09-15)"),
    "infusion count": (Overrides(infusion_count=60), {}, "1.1", "1.4",
                       "completed infusions 60 (chart: 30)"),
}


@pytest.mark.parametrize("name", list(OVERRIDES))
def test_each_override_changes_the_result_and_is_recorded(name: str) -> None:
    override, options, before, after, said = OVERRIDES[name]
    plain = chart(**options)  # type: ignore[arg-type]
    a = chart(override, **options)  # type: ignore[arg-type]

    assert (str(plain.per_1000) if plain.complete else "-") == before
    assert a.per_1000 == Decimal(after)
    assert "override" not in codes(plain)
    assert said in finding(a, "override").message
    assert override.any()

    ra = build_risk_assessment(a)
    notes = " ".join(n["text"] for n in ra["note"])
    assert said in notes


def test_override_reason_is_kept() -> None:
    a = chart(Overrides(prior_immunosuppressant=True, reason="azathioprine 2009, outside records"))
    message = finding(a, "override").message
    assert "Reason: azathioprine 2009, outside records" in message
    notes = [n["text"] for n in build_risk_assessment(a)["note"]]
    assert any("azathioprine 2009, outside records" in text for text in notes)


def test_overridden_inputs_are_marked_in_the_summaries() -> None:
    a = chart(Overrides(antibody=Antibody.POSITIVE, infusion_count=40,
                        prior_immunosuppressant=True))
    assert a.antibody.overridden and a.exposure.overridden and a.prior_immunosuppressant.overridden
    b = chart()
    assert not (b.antibody.overridden or b.exposure.overridden
                or b.prior_immunosuppressant.overridden)


def test_several_overrides_are_listed_in_one_finding() -> None:
    a = chart(Overrides(index=Decimal("1.7"), infusion_count=80))
    message = finding(a, "override").message
    assert "index 1.7 (chart:" in message and "completed infusions 80 (chart:" in message
    assert a.per_1000 == Decimal("10.1")
    assert "exposure-beyond-table" in codes(a)


def test_infusion_count_override_of_zero_says_no_exposure() -> None:
    a = chart(Overrides(infusion_count=0))
    assert a.per_1000 == Decimal("0.2")
    assert "exposure-none" in codes(a)


def test_empty_overrides_are_no_override() -> None:
    assert not Overrides().any()
    assert not Overrides(reason="just looking").any()
    assert "override" not in codes(chart(Overrides(reason="just looking")))


def test_antibody_override_to_indeterminate_blocks_the_estimate() -> None:
    a = chart(Overrides(antibody=Antibody.INDETERMINATE))
    assert not a.complete
    assert "antibody-indeterminate" in codes(a)


def test_negative_infusion_count_override_never_gives_a_number() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        chart(Overrides(infusion_count=-1))


def test_index_override_above_the_positive_cut_off_is_not_silently_negative() -> None:
    a = chart(Overrides(index=Decimal("2.0")), labs=antibody_test(Antibody.NEGATIVE, "0.11"))
    silently_negative = (
        a.complete and a.antibody.status is Antibody.NEGATIVE
        and "antibody-discordant" not in codes(a)
    )
    assert not silently_negative, f"{a.per_1000} per 1,000 ({a.qualitative})"


def test_index_override_without_a_chart_result_gives_the_status_from_the_index() -> None:
    a = chart(Overrides(index=Decimal("2.0")), labs=())
    assert a.antibody.status is Antibody.POSITIVE
    assert a.per_1000 == Decimal("8.8")


# --- entered values follow the antibody rules (docs/clinical-basis.md §9) -----------------------

RESULT_OF_SEPT = antibody_test(Antibody.POSITIVE, "1.51")  # the chart: positive 1.51 of 2026-09-15


@pytest.mark.parametrize(("status", "index"), [(Antibody.NEGATIVE, "2.5"),
                                               (Antibody.NEGATIVE, "0.41"),
                                               (Antibody.POSITIVE, "0.19"),
                                               (Antibody.POSITIVE, "0")])
def test_an_entered_call_and_index_that_contradict_give_no_estimate(
    status: Antibody, index: str
) -> None:
    """What-if "negative" with index 2.5 gave "0.2 per 1,000, Low" with Save on."""
    a = chart(Overrides(antibody=status, index=Decimal(index), reason="checking"),
              labs=RESULT_OF_SEPT)
    assert not a.complete and a.per_1000 is None and a.qualitative is None
    said = finding(a, "antibody-discordant")
    assert f"antibody {status.value} with index {Decimal(index).normalize():f}" in said.message
    assert "entered by the clinician" in said.message and "2026-09-15" not in said.message
    assert said.sources == ()
    assert f"antibody status {status.value} (chart: positive)" in finding(a, "override").message \
        or status is Antibody.POSITIVE


@pytest.mark.parametrize(("status", "index", "per_1000"), [(Antibody.NEGATIVE, "0.40", "0.2"),
                                                           (Antibody.NEGATIVE, "0.1", "0.2"),
                                                           (Antibody.POSITIVE, "0.20", "1.1"),
                                                           (Antibody.POSITIVE, "2.5", "8.8")])
def test_an_entered_call_and_index_that_agree_give_their_figure(
    status: Antibody, index: str, per_1000: str
) -> None:
    a = chart(Overrides(antibody=status, index=Decimal(index)), labs=RESULT_OF_SEPT)
    assert a.per_1000 == Decimal(per_1000)
    assert "antibody-discordant" not in codes(a)


def test_an_entered_index_is_the_clinicians_not_the_charts_result_of_another_date() -> None:
    """The page said "the latest anti-JCV result of 2026-09-15 is indeterminate" when that
    result was 1.51 and 0.3 was the clinician's entry."""
    a = chart(Overrides(index=Decimal("0.3")), labs=RESULT_OF_SEPT)
    assert not a.complete
    said = finding(a, "antibody-indeterminate")
    assert "entered anti-JCV index 0.3 (what-if)" in said.message
    assert "2026-09-15" not in said.message and said.sources == ()


def test_an_entered_index_near_the_cut_off_is_not_attributed_to_a_lab_result() -> None:
    a = chart(Overrides(index=Decimal("1.45")), labs=RESULT_OF_SEPT)
    assert finding(a, "index-near-cutoff").sources == ()
    b = chart(labs=antibody_test(Antibody.POSITIVE, "1.45"))
    assert finding(b, "index-near-cutoff").sources  # the chart's own index names its result


def test_an_entered_call_other_than_the_charts_does_not_keep_the_charts_index() -> None:
    a = chart(Overrides(antibody=Antibody.NEGATIVE), labs=RESULT_OF_SEPT)
    assert a.antibody.status is Antibody.NEGATIVE and a.antibody.index is None
    assert a.per_1000 == Decimal("0.2")


def test_an_entered_index_is_shown_as_the_clinicians_in_the_summary_and_json() -> None:
    from smart_app.fhir.present import assessment_json, text_summary

    a = chart(Overrides(index=Decimal("2.0"), reason="reference lab"), labs=RESULT_OF_SEPT)
    assert assessment_json(a)["inputs"]["antibody"]["indexText"] == "2 (entered by the clinician)"
    assert "index 2 (entered by the clinician); the chart's latest test 2026-09-15 (" \
        in text_summary(a)
    plain = chart(labs=RESULT_OF_SEPT)
    assert assessment_json(plain)["inputs"]["antibody"]["indexText"] == "1.51"
