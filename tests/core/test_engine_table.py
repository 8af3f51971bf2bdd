"""Every cell and boundary of berger-fox-2016 through the pure engine (clinical-basis.md §2, §6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smart_app.risk import Antibody, Assessment

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

NEG = "antibody negative, no prior IS"
NEG_IS = "antibody negative, prior IS"
POS_NO_INDEX = "antibody positive, no prior IS, index not available"
POS_LOW = "antibody positive, no prior IS, index ≤ 1.5"
POS_HIGH = "antibody positive, no prior IS, index > 1.5"
POS_IS = "antibody positive, prior IS"
BANDS = ("0–24 infusions", "25–48 infusions", "49–72 infusions")

# "About 1 in N" worked out by hand: 1000 / per_1000, rounded to a whole patient.
ONE_IN = {
    "0.02": 50000, "0.06": 16667, "0.2": 5000, "0.9": 1111, "1": 1000, "3": 333, "6": 167,
    "1.1": 909, "1.4": 714, "1.2": 833, "8.8": 114, "10.1": 99, "12": 83, "13": 77,
}


def assess_case(status: Antibody, index: str | None, prior_is: bool, n: int) -> Assessment:
    meds = [medication("azathioprine", BEFORE_NATALIZUMAB)] if prior_is else []
    return run(inputs(antibody_test(status, index), infusions(n), meds))


def check_cell(a: Assessment, per_1000: str, row: str, band: str) -> None:
    assert a.complete
    assert a.cell is not None
    assert a.per_1000 == Decimal(per_1000)
    assert (a.cell.row, a.cell.band) == (row, band)
    assert a.cell.words == f"{row}, {band}"
    assert a.one_in == ONE_IN[per_1000]
    assert a.table_id == "berger-fox-2016"


@pytest.mark.parametrize(
    ("prior_is", "n", "per_1000", "row", "band"),
    [
        (False, 0, "0.02", NEG, "0–24 infusions"),
        (False, 24, "0.02", NEG, "0–24 infusions"),
        (False, 25, "0.2", NEG, "25+ infusions"),
        (False, 100, "0.2", NEG, "25+ infusions"),
        (True, 0, "0.06", NEG_IS, "0–24 infusions"),
        (True, 24, "0.06", NEG_IS, "0–24 infusions"),
        (True, 25, "0.9", NEG_IS, "25+ infusions"),
        (True, 100, "0.9", NEG_IS, "25+ infusions"),
    ],
)
def test_negative_cells(prior_is: bool, n: int, per_1000: str, row: str, band: str) -> None:
    a = assess_case(Antibody.NEGATIVE, "0.11", prior_is, n)
    check_cell(a, per_1000, row, band)
    assert a.qualitative == "low"
    assert a.prior_immunosuppressant.value is prior_is


# stratum id → (index, prior IS, row, values per band, high risk above 24 infusions)
POSITIVE_STRATA = {
    "no index": (None, False, POS_NO_INDEX, ("1", "3", "6"), False),
    "index 0.9": ("0.9", False, POS_LOW, ("0.2", "1.1", "1.4"), False),
    "index 1.5": ("1.5", False, POS_LOW, ("0.2", "1.1", "1.4"), False),
    "index 1.51": ("1.51", False, POS_HIGH, ("1.2", "8.8", "10.1"), True),
    "index 3.0": ("3.0", False, POS_HIGH, ("1.2", "8.8", "10.1"), True),
    "prior IS, index 0.5": ("0.5", True, POS_IS, ("6", "12", "13"), True),
    "prior IS, index 3.0": ("3.0", True, POS_IS, ("6", "12", "13"), True),
    "prior IS, no index": (None, True, POS_IS, ("6", "12", "13"), True),
}
# infusions → band position (73 and 100 are beyond the table: the 49–72 cell, never more)
COUNTS = {0: 0, 1: 0, 24: 0, 25: 1, 48: 1, 49: 2, 72: 2, 73: 2, 100: 2}


@pytest.mark.parametrize("n", list(COUNTS))
@pytest.mark.parametrize("stratum", list(POSITIVE_STRATA))
def test_positive_cells(stratum: str, n: int) -> None:
    index, prior_is, row, values, high_after_24 = POSITIVE_STRATA[stratum]
    band = COUNTS[n]
    a = assess_case(Antibody.POSITIVE, index, prior_is, n)

    check_cell(a, values[band], row, BANDS[band])
    assert a.qualitative == ("high" if high_after_24 and n > 24 else "moderate")
    assert a.exposure.infusions == n
    found = codes(a)
    assert ("exposure-beyond-table" in found) is (n > 72)
    assert ("exposure-none" in found) is (n == 0)
    assert ("table-cell-flagged" in found) is (prior_is and band == 0)
    assert ("index-not-used" in found) is (prior_is and index is not None)
    assert ("index-missing" in found) is (index is None)


@pytest.mark.parametrize("n", [73, 100, 130])
def test_beyond_72_shows_the_49_72_value_with_the_warning(n: int) -> None:
    a = assess_case(Antibody.POSITIVE, "2.0", False, n)
    assert a.per_1000 == Decimal("10.1")  # the 49–72 value; never extrapolated
    message = finding(a, "exposure-beyond-table").message.lower()
    assert "exposure beyond published data (72 infusions)" in message
    assert "the 49–72 estimate is shown" in message


def test_72_infusions_is_within_the_table() -> None:
    a = assess_case(Antibody.POSITIVE, "2.0", False, 72)
    assert a.per_1000 == Decimal("10.1")
    assert "exposure-beyond-table" not in codes(a)


def test_zero_infusions_uses_the_first_band_and_says_so() -> None:
    a = assess_case(Antibody.POSITIVE, "1.0", False, 0)
    assert a.cell is not None and a.cell.band == "0–24 infusions"
    assert a.per_1000 == Decimal("0.2")
    assert "0–24" in finding(a, "exposure-none").message


@pytest.mark.parametrize("index", ["0.41", "0.9", "1.5", "1.51", "9.99"])
def test_prior_immunosuppressant_overrides_any_index(index: str) -> None:
    a = assess_case(Antibody.POSITIVE, index, True, 30)
    assert a.cell is not None and a.cell.row == POS_IS
    assert a.per_1000 == Decimal("12")
    assert a.antibody.index == Decimal(index)  # shown …
    assert "index-not-used" in codes(a)  # … but not used


def test_index_of_a_negative_result_never_selects_a_positive_row() -> None:
    a = assess_case(Antibody.NEGATIVE, "0.15", False, 30)
    assert a.cell is not None and a.cell.row == NEG
    assert not codes(a) & {"index-near-cutoff", "index-missing", "index-not-used"}


@pytest.mark.parametrize(
    ("n", "risk"), [(24, "moderate"), (25, "high")]
)
def test_higher_risk_group_starts_after_24_infusions(n: int, risk: str) -> None:
    assert assess_case(Antibody.POSITIVE, "1.51", False, n).qualitative == risk
    assert assess_case(Antibody.POSITIVE, None, True, n).qualitative == risk


def test_positive_index_at_or_below_cut_off_is_never_high() -> None:
    for n in (25, 72, 100):
        assert assess_case(Antibody.POSITIVE, "1.5", False, n).qualitative == "moderate"
        assert assess_case(Antibody.POSITIVE, None, False, n).qualitative == "moderate"


def test_same_inputs_give_the_same_assessment() -> None:
    first = assess_case(Antibody.POSITIVE, "1.51", False, 30)
    again = assess_case(Antibody.POSITIVE, "1.51", False, 30)
    assert (first.per_1000, first.cell, first.qualitative) == (
        again.per_1000, again.cell, again.qualitative
    )
