"""The data behind the two charts, computed on the server from the engine's result and table.

The browser only draws: every number plotted is a cell of the configured risk table or an index
from the chart, never something computed in JavaScript. Each chart also comes as a plain table
for screen readers and for anyone who prefers numbers (WCAG 1.1.1).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...risk.records import Antibody
from ...risk.result import Assessment
from ...risk.table import RiskTable

#: Index cut-offs drawn on the index chart. 1.5 is the table's own cut-off (risk-model.md §2);
#: 0.9 is the lower band boundary of the European practice sources (reference.md §1, S20/S26),
#: drawn for context only: the berger-fox-2016 table does not split at 0.9.
CUTOFFS = (
    {"value": 1.5, "label": "1.5: table cut-off (≤ 1.5 / > 1.5)"},
    {"value": 0.9, "label": "0.9: lower EU practice band (context only, not used by the table)"},
)


def _short_band(label: str) -> str:
    return label.removesuffix(" infusions")


def strata_chart(table: RiskTable, a: Assessment) -> dict[str, Any] | None:
    """Risk per 1,000 across the exposure bands for the patient's stratum and its neighbours
    (the other rows with the same antibody status), with "you are here"."""
    if a.cell is None or a.antibody.status not in (Antibody.POSITIVE, Antibody.NEGATIVE):
        return None
    rows = [r for r in table.rows if r.antibody is a.antibody.status]
    bands: list[str] = []
    for row in rows:
        for band in row.bands:
            if _short_band(band.label) not in bands:
                bands.append(_short_band(band.label))
    series = []
    for row in rows:
        values: list[str | None] = [None] * len(bands)
        for band in row.bands:
            values[bands.index(_short_band(band.label))] = f"{band.per_1000.normalize():f}"
        series.append({"label": row.label, "values": values, "current": row.label == a.cell.row})
    here_band = _short_band(a.cell.band)
    return {
        "kind": "strata",
        "unit": "per 1,000",
        "bands": bands,
        "series": series,
        "here": {
            "band": here_band,
            "value": f"{a.cell.per_1000.normalize():f}",
            "infusions": a.exposure.infusions,
            "beyondTable": not any(b.holds(a.exposure.infusions)
                                   for r in rows if r.label == a.cell.row for b in r.bands),
            "whatIf": a.overrides.any(),
        },
        "title": f"PML risk per 1,000 by infusions, {a.antibody.status.value} strata",
    }


def index_chart(a: Assessment) -> dict[str, Any] | None:
    """Every dated index on record (used and not used), the override if any, and the cut-offs."""
    points = [
        {"date": r.effective.isoformat(), "index": f"{r.index.normalize():f}",
         "source": r.source, "status": r.status, "used": True}
        for r in a.antibody.history if r.index is not None and r.effective is not None
    ]
    points += [
        {"date": r.effective.isoformat(), "index": f"{r.index.normalize():f}",
         "source": r.source, "status": r.status, "used": False}
        for r in a.antibody.not_used if r.index is not None and r.effective is not None
    ]
    override = a.overrides.index
    if not points and override is None:
        return None
    points.sort(key=lambda p: (p["date"], p["source"]))
    return {
        "kind": "index",
        "points": points,
        "override": (
            {"date": a.assessed_on.isoformat(), "index": f"{Decimal(override).normalize():f}"}
            if override is not None else None
        ),
        "cutoffs": list(CUTOFFS),
        "title": "Anti-JCV antibody index over time",
    }
