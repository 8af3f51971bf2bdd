"""The data behind the two charts, computed on the server from the engine's result and table.

The browser only draws: every number plotted is a cell of the configured risk table or an index
from the chart, never something computed in JavaScript. Each chart also comes as a plain table
for screen readers and for anyone who prefers numbers (WCAG 1.1.1).

Every series carries its ``style`` (colour, dash, line width, marker). The script draws the
marks from it and the template draws the legend's swatches from the same values, so a legend
can never show a square for a triangle or a blob for a dashed line.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...risk.records import Antibody
from ...risk.result import Assessment
from ...risk.table import RiskTable

#: Index cut-offs drawn on the index chart. 1.5 is the table's own cut-off; 0.9 is the lower
#: band boundary used in European practice (docs/clinical-basis.md), drawn for context only:
#: the berger-fox-2016 table does not split at 0.9.
CUTOFFS = (
    {"value": 1.5, "label": "1.5: the table's cut-off",
     "style": {"color": "#a3120b", "dash": [8, 4], "width": 2, "marker": "none"}},
    {"value": 0.9, "label": "0.9: lower EU practice band (context only)",
     "style": {"color": "#8a4a00", "dash": [3, 3], "width": 2, "marker": "none"}},
)
#: Neighbouring strata: dashed, each with its own colour and marker shape, so they stay apart in
#: grey print and for colour-blind readers. This patient's stratum is solid and heavy.
NEIGHBOURS = (
    ("#1d4ed8", "rect"), ("#8a4a00", "rectRot"), ("#0f766e", "crossRot"),
    ("#6b21a8", "rect"), ("#9f1239", "rectRot"),
)
CURRENT = {"color": "#1d2433", "dash": [], "width": 4, "marker": "circle", "radius": 4}
HERE = {"color": "#a3120b", "dash": [], "width": 0, "marker": "triangle", "radius": 10}


def _short_band(label: str) -> str:
    return label.removesuffix(" infusions")


def _style(number: int) -> dict[str, Any]:
    color, marker = NEIGHBOURS[number % len(NEIGHBOURS)]
    return {"color": color, "dash": [6, 4], "width": 2, "marker": marker, "radius": 4}


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
    neighbours = 0
    for row in rows:
        values: list[str | None] = [None] * len(bands)
        for band in row.bands:
            values[bands.index(_short_band(band.label))] = f"{band.per_1000.normalize():f}"
        current = row.label == a.cell.row
        style = dict(CURRENT) if current else _style(neighbours)
        neighbours += 0 if current else 1
        label = f"{row.label} (this patient)" if current else row.label
        series.append({"label": label, "row": row.label, "values": values, "current": current,
                       "style": style})
    series.sort(key=lambda s: not s["current"])  # this patient's stratum first in the legend
    here_band = _short_band(a.cell.band)
    what_if = a.overrides.any()
    here = {
        "band": here_band,
        "value": f"{a.cell.per_1000.normalize():f}",
        "infusions": a.exposure.infusions,
        "beyondTable": not any(b.holds(a.exposure.infusions)
                               for r in rows if r.label == a.cell.row for b in r.bands),
        "whatIf": what_if,
        "label": f"You are here{' (what if)' if what_if else ''}: {a.exposure.infusions} "
                 f"infusions, {a.cell.per_1000.normalize():f} per 1,000",
        "style": dict(HERE),
    }
    return {
        "kind": "strata",
        "unit": "per 1,000",
        "bands": bands,
        "series": series,
        "here": here,
        "legend": [{"label": here["label"], "style": here["style"]}]
        + [{"label": s["label"], "style": s["style"]} for s in series],
        "title": f"PML risk per 1,000 by infusions, {a.antibody.status.value} strata",
        "description": (
            f"Line chart of PML risk per 1,000 by completed infusions for the antibody "
            f"{a.antibody.status.value} strata. {here['label']} ({a.cell.row}, band "
            f"{here_band})."
        ),
    }


FINAL = {"color": "#1d4ed8", "dash": [], "width": 2, "marker": "circle", "radius": 4}
PRELIMINARY = {"color": "#4f5868", "dash": [], "width": 0, "marker": "circleOpen", "radius": 5}
WHAT_IF = {"color": "#6b21a8", "dash": [], "width": 0, "marker": "rectRot", "radius": 7}
#: A result reported as a bound (">1.5") is not a value on the line: it is drawn as an arrow
#: that starts at the bound and points the way the true value lies, never as a point on it.
BOUND_ABOVE = {"color": "#1d4ed8", "dash": [], "width": 0, "marker": "arrowUp", "radius": 7}
BOUND_BELOW = {"color": "#1d4ed8", "dash": [], "width": 0, "marker": "arrowDown", "radius": 7}


def bound_of(comparator: str) -> str | None:
    """"above" for ``>``/``>=``, "below" for ``<``/``<=``, None for a plain value."""
    if comparator.startswith(">"):
        return "above"
    if comparator.startswith("<"):
        return "below"
    return None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def index_chart(a: Assessment) -> dict[str, Any] | None:
    """Every dated index on record (final and not used), the what-if index if any, and the
    cut-offs; the x axis is labelled with the test dates themselves."""
    final: list[dict[str, Any]] = [
        {"date": r.effective.isoformat(), "index": f"{r.index.normalize():f}",
         "comparator": r.comparator, "source": r.source, "status": r.status, "used": True}
        for r in a.antibody.history if r.index is not None and r.effective is not None
    ]
    other: list[dict[str, Any]] = [
        {"date": r.effective.isoformat(), "index": f"{r.index.normalize():f}",
         "comparator": r.comparator, "source": r.source, "status": r.status, "used": False}
        for r in a.antibody.not_used if r.index is not None and r.effective is not None
    ]
    override = a.overrides.index
    points = sorted(final + other, key=lambda p: (p["date"], p["source"]))
    if not points and override is None:
        return None
    what_if = (
        {"date": a.assessed_on.isoformat(), "index": f"{Decimal(override).normalize():f}"}
        if override is not None else None
    )
    for p in points:
        p["bound"] = bound_of(str(p["comparator"] or ""))
    plain_final = [p for p in final if p["bound"] is None]
    # "Final" rather than "used": without an estimate nothing was used, yet the results stand.
    series = []
    if plain_final:
        series.append({"key": "final", "label": "Final results", "style": dict(FINAL)})
    if any(p["bound"] == "above" for p in points):
        series.append({"key": "above", "label": "Reported as above a value (true index higher)",
                       "style": dict(BOUND_ABOVE)})
    if any(p["bound"] == "below" for p in points):
        series.append({"key": "below", "label": "Reported as below a value (true index lower)",
                       "style": dict(BOUND_BELOW)})
    if other:
        series.append({"key": "other", "label": "Preliminary (shown, not used)",
                       "style": dict(PRELIMINARY)})
    if what_if:
        series.append({"key": "whatif", "label": "What-if index (clinician)",
                       "style": dict(WHAT_IF)})
    dates: list[str] = sorted({str(p["date"]) for p in points}
                              | ({what_if["date"]} if what_if else set()))
    latest = max(final, key=lambda p: str(p["date"])) if final else None
    if latest is not None:
        said = f"latest final {latest['comparator'] or ''}{latest['index']} on {latest['date']}"
        if a.cell is None:
            said += f" ({a.antibody.status.value}: no estimate)"
    else:
        said = "no final result with an index"
    description = (
        f"Anti-JCV antibody index over time: {_plural(len(points), 'result')}"
        + (f" from {dates[0]} to {dates[-1]}" if len(dates) > 1 else f" on {dates[0]}")
        + f"; {said}; cut-offs at 1.5 and 0.9."
        + (f" What-if index {what_if['index']}." if what_if else "")
    )
    return {
        "kind": "index",
        "points": points,
        "override": what_if,
        "cutoffs": [dict(c) for c in CUTOFFS],
        "series": series,
        "dates": dates,
        "legend": [{"label": s["label"], "style": s["style"]} for s in series]
        + [{"label": c["label"], "style": c["style"]} for c in CUTOFFS],
        "title": "Anti-JCV antibody index over time",
        "description": description,
    }
