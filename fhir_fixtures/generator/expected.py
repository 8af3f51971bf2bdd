"""What each fixture patient must give: the expected result written to ``index.json``.

The row and band labels are worded exactly as the engine words the table cells, so a test can
compare them as strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .chart import Chart
from .fhir import Json

NEG_NO_IS = "antibody negative, no prior IS"
NEG_IS = "antibody negative, prior IS"
POS_NO_INDEX = "antibody positive, no prior IS, index not available"
POS_LOW = "antibody positive, no prior IS, index ≤ 1.5"
POS_HIGH = "antibody positive, no prior IS, index > 1.5"
POS_IS = "antibody positive, prior IS"
BAND_0_24 = "0–24 infusions"
BAND_25_PLUS = "25+ infusions"
BAND_25_48 = "25–48 infusions"
BAND_49_72 = "49–72 infusions"

NONE_ON_RECORD = "prior-is-none-on-record"


@dataclass(frozen=True)
class Expected:
    """The engine's result for one fixture at the assessment date (``status`` ok/incomplete)."""

    status: str
    per_1000: str | None
    row: str | None
    band: str | None
    qualitative: str | None
    infusions: int
    antibody: str
    index: str | None
    prior_is: bool
    findings: tuple[str, ...]

    def as_json(self) -> Json:
        return {
            "status": self.status,
            "per_1000": self.per_1000,
            "row": self.row,
            "band": self.band,
            "qualitative": self.qualitative,
            "infusions": self.infusions,
            "antibody": self.antibody,
            "index": self.index,
            "prior_is": self.prior_is,
            "findings": sorted(self.findings),
        }


@dataclass(frozen=True)
class Fixture:
    """One published fixture patient: its chart, a one-line scenario and the expected result."""

    chart: Chart
    summary: str
    expected: Expected


def expect(
    status: str = "ok",
    per_1000: str | None = None,
    row: str | None = None,
    band: str | None = None,
    qualitative: str | None = None,
    *,
    infusions: int,
    antibody: str,
    index: str | None,
    prior_is: bool,
    findings: Iterable[str] = (),
) -> Expected:
    """An :class:`Expected` with the cell given positionally, as the scenario modules read."""
    return Expected(
        status,
        per_1000,
        row,
        band,
        qualitative,
        infusions,
        antibody,
        index,
        prior_is,
        tuple(findings),
    )
