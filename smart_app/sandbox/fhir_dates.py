"""FHIR date/dateTime values as closed time ranges, and the R4 search prefix rules over them.

A FHIR date has an implicit precision (``2024`` is the whole year), so both the search value and
the resource value are ranges; the prefixes (``ge``, ``lt``...) compare ranges as the R4 search
page defines. Values without a time zone are taken as UTC, which is enough for test fixtures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Range = tuple[float, float]
_TINY = 1e-6
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")

#: Resource fields searched by the ``date`` parameter, in order of preference.
DATE_FIELDS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "authoredOn",
    "occurrenceDateTime",
    "occurrencePeriod",
    "period",
    "date",  # DocumentReference, Composition, ClinicalImpression
)


def _next_month(year: int, month: int) -> datetime:
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def parse_range(value: str) -> Range:
    """Parse ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a full dateTime into ``[start, end]``.

    Raises ``ValueError`` for anything else.
    """
    value = value.strip()
    if len(value) == 4 and value.isdigit():
        year = int(value)
        start = datetime(year, 1, 1, tzinfo=UTC)
        return start.timestamp(), datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() - _TINY
    if len(value) == 7 and value[4] == "-":
        year, month = int(value[:4]), int(value[5:])
        start = datetime(year, month, 1, tzinfo=UTC)
        return start.timestamp(), _next_month(year, month).timestamp() - _TINY
    if len(value) == 10:
        start = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return start.timestamp(), (start + timedelta(days=1)).timestamp() - _TINY
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = moment.timestamp()
    return stamp, stamp + (1 - _TINY if moment.microsecond == 0 else 0.0)


def resource_range(resource: Mapping[str, Any]) -> Range | None:
    """The time range the ``date`` search parameter sees on a resource, if any."""
    for field in DATE_FIELDS:
        value = resource.get(field)
        if isinstance(value, str):
            try:
                return parse_range(value)
            except ValueError:
                return None
        if isinstance(value, dict):
            try:
                low = parse_range(value["start"])[0] if "start" in value else -math.inf
                high = parse_range(value["end"])[1] if "end" in value else math.inf
            except ValueError:
                return None
            return low, high
    return None


def split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in PREFIXES and len(value) > 2 and value[2].isdigit():
        return value[:2], value[2:]
    return "eq", value


def matches(prefix: str, target: Range, search: Range) -> bool:
    """R4 search semantics of ``prefix`` for a target range against a search range."""
    t_low, t_high = target
    s_low, s_high = search
    if prefix == "eq":
        return s_low <= t_low and t_high <= s_high
    if prefix == "ne":
        return not (s_low <= t_low and t_high <= s_high)
    if prefix == "gt":
        return t_high > s_high
    if prefix == "lt":
        return t_low < s_low
    if prefix == "ge":
        return t_high >= s_low
    if prefix == "le":
        return t_low <= s_high
    if prefix == "sa":
        return t_low > s_high
    if prefix == "eb":
        return t_high < s_low
    raise ValueError(prefix)
