"""Calendar arithmetic for staleness and due dates ("6 months" means calendar months)."""

from __future__ import annotations

import calendar
from datetime import date


def add_months(day: date, months: int) -> date:
    """Same day-of-month ``months`` later, clamped to the month's end (31 Aug + 6 = 28/29 Feb)."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def months_between(start: date, end: date) -> int:
    """Whole calendar months from ``start`` to ``end`` (0 when less than a month apart)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if add_months(start, months) > end:
        months -= 1
    return max(months, 0)
