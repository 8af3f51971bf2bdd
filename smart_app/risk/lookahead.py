"""The next infusion's band (docs/clinical-basis.md §6).

The figure shown is the period risk of the band the completed infusions fall in; the infusion
being planned may begin the next band. At 24 infusions the next one, the 25th, is in the 25–48
band, where the figure is several times higher, so the result says so before it is given.
Where the row depends on the index being at or below a cut-off, an index that retests above it
would move the patient to the higher row: that figure is given too.
"""

from __future__ import annotations

from decimal import Decimal

from .records import Antibody
from .result import NextBand
from .table import RiskTable, Row, band_for


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _higher_row(table: RiskTable, row: Row) -> Row | None:
    """The row an index retesting above this row's upper cut-off would move the patient to."""
    cut = row.index.max
    if cut is None or row.index.missing:
        return None
    return next(
        (r for r in table.rows
         if r.antibody is row.antibody and r.prior_immunosuppressant == row.prior_immunosuppressant
         and not r.index.missing and r.index.above is not None and r.index.above >= cut),
        None,
    )


def next_band(table: RiskTable, row: Row, infusions: int) -> NextBand | None:
    """What the next infusion begins, when it crosses a band edge; else None."""
    current = band_for(row.bands, infusions)
    nxt = infusions + 1
    if not current.holds(infusions) or current.holds(nxt):
        return None  # already beyond the published bands, or the same band
    band = band_for(row.bands, nxt)
    if not band.holds(nxt):
        return NextBand(
            nxt, band.label, band.per_1000, beyond_published=True,
            text=f"The next infusion, the {_ordinal(nxt)}, goes beyond the published data "
                 f"({current.max} infusions): the {band.label} figure, "
                 f"{_num(band.per_1000)} per 1,000, still applies; the risk is not "
                 "extrapolated.",
        )
    span = band.label.removesuffix(" infusions")
    text = (f"The next infusion, the {_ordinal(nxt)}, begins the {span} band: "
            f"{_num(band.per_1000)} per 1,000")
    higher = _higher_row(table, row) if row.antibody is Antibody.POSITIVE else None
    if higher is not None and higher.index.above is not None:
        above = band_for(higher.bands, nxt)
        text += f"; {_num(above.per_1000)} if the index retests above {_num(higher.index.above)}"
        return NextBand(nxt, band.label, band.per_1000, if_index_above=higher.index.above,
                        per_1000_if_above=above.per_1000, text=text + ".")
    return NextBand(nxt, band.label, band.per_1000, text=text + ".")
