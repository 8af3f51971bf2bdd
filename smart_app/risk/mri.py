"""The brain-MRI due date (docs/clinical-basis.md §6): last brain MRI on record + the monitoring
interval of the MAGNIMS consensus (Wattjes et al., 2015 and 2021).

"Every 3–4 months" is read as due at 3 months and overdue after 4, so the reminder comes early
and "overdue" is never said while the interval still allows the scan. A source the app could not
read makes the history unknown, never "no brain MRI on record": a missed scan is not presumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from .dates import add_months, months_between
from .records import MRI_SOURCES, BrainMri
from .result import MriSchedule, MriState

NONE_ON_RECORD = "no brain MRI on record"
_WORDS = {
    "DiagnosticReport": "imaging reports (DiagnosticReport)",
    "ImagingStudy": "imaging studies (ImagingStudy)",
    "Procedure": "procedures (Procedure)",
}


def sources_in_words(types: Sequence[str]) -> str:
    named = [_WORDS.get(t, t) for t in types]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def elapsed(since: date, at: date) -> str:
    """A lapse in the words a clinic uses: days under two weeks, weeks under nine, then months."""
    days = (at - since).days
    if days < 14:
        return _plural(days, "day")
    if days < 63:
        return _plural(days // 7, "week")
    return _plural(months_between(since, at), "month")


def schedule(
    mris: Sequence[BrainMri], months: tuple[int, int] | None, at: date,
    unread: Sequence[str] = (), not_offered: Sequence[str] = (),
) -> MriSchedule:
    """The last brain MRI on or before ``at`` and the next due date.

    ``months`` is (due, overdue) months after the last MRI; None when no interval applies.
    ``unread``/``not_offered`` are resource types: an MRI source that was offered but not read
    hides MRIs; when no MRI source is offered at all the history is unknown too.
    """
    unread_types = tuple(t for t in MRI_SOURCES if t in unread)
    none_offered = all(t in not_offered for t in MRI_SOURCES)
    unknown = unread_types + (tuple(MRI_SOURCES) if none_offered else ())
    dated = [m for m in mris if m.when is not None and m.when <= at]
    undated = [m.source for m in mris if m.when is None]
    if not dated:
        if unknown or undated:
            if unread_types:
                why = f"{sources_in_words(list(unread_types))} could not be read"
            elif none_offered:
                why = "no imaging records were available to the app"
            else:
                why = "the brain MRI on record has no date"
            return MriSchedule(MriState.UNKNOWN, f"brain MRI history unknown: {why}",
                               sources=tuple(undated), unread=unknown)
        return MriSchedule(MriState.NONE_ON_RECORD, NONE_ON_RECORD)
    last = max(m.when for m in dated if m.when is not None)
    sources = tuple(sorted(m.source for m in dated if m.when == last))
    caveat = (f"; {sources_in_words(list(unread_types))} could not be read, so a later MRI may "
              "not be shown" if unread_types else "")
    if months is None:
        return MriSchedule(MriState.SCHEDULED, f"last brain MRI {last.isoformat()}{caveat}",
                           last, sources, unread=unknown)
    due, overdue_from = add_months(last, months[0]), add_months(last, months[1])
    if at < due:
        state, text = MriState.SCHEDULED, f"due {due.isoformat()}"
    elif at <= overdue_from:
        state = MriState.DUE
        text = (f"due today ({due.isoformat()})" if at == due
                else f"due now (since {due.isoformat()})")
    else:
        state, text = MriState.OVERDUE, f"overdue by {elapsed(due, at)} (due {due.isoformat()})"
    return MriSchedule(state, text + caveat, last, sources, due, overdue_from, unknown)
