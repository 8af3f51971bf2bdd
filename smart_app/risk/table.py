"""A risk table as data: strata (rows) × exposure bands (cells), read from a plain mapping.

Tables are transcribed by a clinical lead, not coded, so a deployment can select the US label or
EU SmPC table without a code change (docs/clinical-basis.md §2). Parsing checks the table's
shape hard: a malformed table must fail at start, never produce a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .records import Antibody, IndexRange


class TableError(ValueError):
    """The table file is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class Band:
    min: int
    max: int | None  # None: open-ended
    per_1000: Decimal
    flag: str = ""

    @property
    def label(self) -> str:
        if self.max is None:
            return f"{self.min}+ infusions"
        return f"{self.min}–{self.max} infusions"

    def holds(self, infusions: int) -> bool:
        return self.min <= infusions and (self.max is None or infusions <= self.max)


def band_for(bands: tuple[Band, ...], infusions: int) -> Band:
    """The band holding ``infusions``; beyond the last band, the last band (never extrapolate)."""
    return next((b for b in bands if b.holds(infusions)), bands[-1])


@dataclass(frozen=True)
class IndexRule:
    """Which index values a row takes: ``missing`` rows take a positive without an index."""

    missing: bool = False
    above: Decimal | None = None  # exclusive
    max: Decimal | None = None  # inclusive

    @property
    def used(self) -> bool:
        return self.missing or self.above is not None or self.max is not None

    def holds(self, index: Decimal | None) -> bool:
        if self.missing:
            return index is None
        if index is None:
            return not self.used
        if self.above is not None and not index > self.above:
            return False
        return self.max is None or index <= self.max

    def decides(self, index: IndexRange) -> bool:
        """Every value the (possibly bounded) index may take falls in this row."""
        return not self.missing and self.used and index.within(self.above, self.max)

    def allows(self, index: IndexRange) -> bool:
        """Some value the (possibly bounded) index may take falls in this row."""
        return not self.missing and self.used and index.meets(self.above, self.max)


@dataclass(frozen=True)
class Row:
    label: str
    antibody: Antibody
    prior_immunosuppressant: bool
    index: IndexRule
    bands: tuple[Band, ...]

    def matches(self, antibody: Antibody, prior_is: bool, index: Decimal | None) -> bool:
        if self.antibody is not antibody or self.prior_immunosuppressant != prior_is:
            return False
        return self.index.holds(index) if self.index.used else True


@dataclass(frozen=True)
class RiskTable:
    id: str
    title: str
    version: str
    unit: str
    sources: tuple[str, ...]
    verified: str
    rows: tuple[Row, ...]

    def row_for(self, antibody: Antibody, prior_is: bool, index: Decimal | None) -> Row | None:
        return next((r for r in self.rows if r.matches(antibody, prior_is, index)), None)

    def possible_rows(
        self, antibody: Antibody, prior_is: bool, index: IndexRange
    ) -> tuple[Row, ...]:
        """The rows an index range leaves possible (a row that ignores the index is always
        possible); one row that *decides* the range is the bound's answer."""
        return tuple(
            r for r in self.rows
            if r.antibody is antibody and r.prior_immunosuppressant == prior_is
            and (not r.index.used or r.index.allows(index))
        )

    @property
    def published_max(self) -> int | None:
        """The longest exposure any row publishes a closed band for (72 infusions here)."""
        ends = [b.max for r in self.rows for b in r.bands if b.max is not None]
        return max(ends) if ends else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RiskTable:
        try:
            rows = tuple(_row(r, n) for n, r in enumerate(data["rows"]))
            table = cls(
                id=_text(data, "id"),
                title=_text(data, "title"),
                version=str(data.get("version", "")),
                unit=str(data.get("unit", "per 1,000")),
                sources=tuple(str(s) for s in data.get("sources", ())),
                verified=str(data.get("verified", "")),
                rows=rows,
            )
        except KeyError as exc:
            raise TableError(f"risk table: missing key {exc}") from exc
        if not table.rows:
            raise TableError("risk table: no rows")
        if not table.sources:
            raise TableError(f"risk table {table.id}: no sources; every figure must trace to one")
        return table


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise TableError(f"risk table: {key} must be a non-empty string")
    return value


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise TableError(f"risk table: {where} is not a number: {value!r}") from exc
    if not number.is_finite() or number <= 0:
        # A zero would read as "no risk", which no source states: refuse it at load.
        raise TableError(f"risk table: {where} must be a finite number > 0 (zero claims no risk)")
    return number


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TableError(f"risk table: {where} must be a whole number of infusions ≥ 0")
    return value


def _index_rule(value: Any, where: str) -> IndexRule:
    if value is None:
        return IndexRule()
    if value == "missing":
        return IndexRule(missing=True)
    if isinstance(value, Mapping) and set(value) <= {"above", "max"} and value:
        return IndexRule(
            above=_decimal(value["above"], f"{where}.above") if "above" in value else None,
            max=_decimal(value["max"], f"{where}.max") if "max" in value else None,
        )
    raise TableError(f"risk table: {where} must be \"missing\" or a table of above/max")


def _row(data: Mapping[str, Any], n: int) -> Row:
    where = f"rows[{n}]"
    if data.get("antibody") not in (Antibody.POSITIVE.value, Antibody.NEGATIVE.value):
        raise TableError(f"risk table: {where}.antibody must be positive or negative")
    antibody = Antibody(data["antibody"])
    if not isinstance(data.get("prior_immunosuppressant"), bool):
        raise TableError(f"risk table: {where}.prior_immunosuppressant must be true or false")
    bands = tuple(
        Band(
            min=_count(c["min"], f"{where}.cells[{k}].min"),
            max=_count(c["max"], f"{where}.cells[{k}].max") if "max" in c else None,
            per_1000=_decimal(c["per_1000"], f"{where}.cells[{k}].per_1000"),
            flag=str(c.get("flag", "")),
        )
        for k, c in enumerate(data["cells"])
    )
    for k, band in enumerate(bands):
        if band.max is not None and band.max < band.min:
            raise TableError(f"risk table: {where}.cells[{k}] ends before it starts")
    if not bands or bands[0].min != 0:
        raise TableError(f"risk table: {where}.cells must start at 0 infusions")
    for before, after in zip(bands, bands[1:], strict=False):
        if before.max is None or after.min != before.max + 1:
            raise TableError(
                f"risk table: {where}.cells leave a gap or overlap after {before.label}"
            )
    return Row(
        label=_text(data, "label"),
        antibody=antibody,
        prior_immunosuppressant=data["prior_immunosuppressant"],
        index=_index_rule(data.get("index"), f"{where}.index"),
        bands=bands,
    )
