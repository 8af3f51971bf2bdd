"""Anti-JCV antibody status and index from lab results (risk-model.md §3).

A "test" is the qualitative and index results sharing an effective date; the latest test
decides. Every way the evidence can be thin (no result, indeterminate, preliminary, stale,
discordant, near a cut-off) becomes a finding the clinician sees, never a silent guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .dates import add_months, months_between
from .records import Antibody, LabResult, Overrides, ResultUse
from .result import AntibodySummary, Code, Finding, Severity

# Assay cut-offs of STRATIFY JCV DxSelect (reference.md §1.6) and the table's index cut-off.
NEGATIVE_BELOW = Decimal("0.20")
POSITIVE_ABOVE = Decimal("0.40")
INDEX_CUTOFF = Decimal("1.5")
NEAR_CUTOFF = Decimal("0.1")
RETEST_MONTHS = 6
PAIR_DAYS = 3


@dataclass(frozen=True)
class Test:
    on: date
    status: Antibody
    index: Decimal | None
    results: tuple[LabResult, ...]
    discordant: bool


def status_from_index(index: Decimal) -> Antibody:
    if index < NEGATIVE_BELOW:
        return Antibody.NEGATIVE
    if index > POSITIVE_ABOVE:
        return Antibody.POSITIVE
    return Antibody.INDETERMINATE


def _test(on: date, members: Sequence[LabResult]) -> Test:
    # An unreadable or inconclusive part does not spoil a readable result of the same test.
    results = [r for r in members if not r.unreadable] or list(members)
    qualitative = {r.qualitative for r in results if r.qualitative is not None}
    indices = [r.index for r in results if r.index is not None]
    # Two index values on one day: take the higher, the conservative reading.
    index = max(indices) if indices else None
    if len(qualitative) == 1:
        status = qualitative.pop()
    elif len(qualitative) > 1:
        status = Antibody.INDETERMINATE  # the lab reported contradicting results the same day
    elif index is not None:
        status = status_from_index(index)
    else:
        status = Antibody.UNKNOWN
    discordant = len({r.qualitative for r in results if r.qualitative}) > 1 or (
        index is not None
        and status in (Antibody.POSITIVE, Antibody.NEGATIVE)
        and status_from_index(index) not in (status, Antibody.INDETERMINATE)
    )
    return Test(on, status, index, tuple(members), discordant)


def _kind(result: LabResult) -> str:
    return "index" if result.index is not None and result.qualitative is None else "qualitative"


def _tests(results: Sequence[LabResult]) -> list[Test]:
    """Group results into tests: same date, or the missing half of a test within a few days.

    Labs often send the index days after the qualitative result (only ``issued`` set), and
    timezones near midnight split one draw over two dates; pairing them keeps the index from
    looking "not available".
    """
    groups: list[tuple[date, list[LabResult]]] = []
    for result in sorted(
        (r for r in results if r.effective is not None), key=lambda r: (r.effective, r.source)
    ):
        assert result.effective is not None
        if groups:
            start, members = groups[-1]
            kinds = {_kind(m) for m in members}
            same_day = result.effective == members[-1].effective
            completes = _kind(result) not in kinds and len(kinds) == 1
            if same_day or (completes and (result.effective - start).days <= PAIR_DAYS):
                members.append(result)
                continue
        groups.append((result.effective, [result]))
    return [_test(start, members) for start, members in groups]


def _fmt(index: Decimal) -> str:
    return f"{index.normalize():f}"


def summarise(
    results: Sequence[LabResult], at: date, overrides: Overrides
) -> tuple[AntibodySummary, list[Finding]]:
    usable = [r for r in results if r.use is ResultUse.USE and r.effective is not None]
    shown = [r for r in results if r.use is ResultUse.SHOW]
    undated = [r for r in results if r.use is ResultUse.USE and r.effective is None]
    tests = [t for t in _tests(usable) if t.status is not Antibody.UNKNOWN]
    latest = tests[-1] if tests else None
    findings: list[Finding] = []

    status = latest.status if latest else Antibody.UNKNOWN
    index = latest.index if latest else None
    if overrides.antibody is not None:
        status = overrides.antibody
        if status is Antibody.POSITIVE and latest is not None and latest.status is not status:
            index = None  # the chart's index belongs to a non-positive test: not this result's
    elif overrides.index is not None:
        # An index entered without a status is a result like any other: §3 reads the status
        # from it, so 2.0 can never sit silently beside a negative.
        status = status_from_index(overrides.index)
    if overrides.index is not None:
        index = overrides.index
    elif overrides.clear_index:
        index = None
    overridden = overrides.antibody is not None or overrides.index is not None or (
        overrides.clear_index
    )

    latest_ids = tuple(r.source for r in latest.results) if latest else ()
    if status is Antibody.UNKNOWN:
        findings.append(
            Finding(
                Code.ANTIBODY_MISSING,
                Severity.MISSING,
                "No final anti-JCV antibody result on record: no estimate can be made. "
                "Order an anti-JCV antibody test with index (STRATIFY JCV DxSelect).",
            )
        )
    elif status is Antibody.INDETERMINATE:
        when = f" of {latest.on.isoformat()}" if latest else ""
        unread = [r.note for r in latest.results if r.unreadable] if latest else []
        findings.append(
            Finding(
                Code.ANTIBODY_INDETERMINATE,
                Severity.MISSING,
                f"The latest anti-JCV antibody result{when} could not be read "
                f"({'; '.join(unread)}): no estimate can be made. Check the result with the "
                "laboratory and ask IT to map its format."
                if unread and not overridden
                else f"The latest anti-JCV antibody result{when} is indeterminate: no estimate "
                "can be made. An index of 0.20–0.40 needs the confirmatory inhibition step; "
                "order it or retest.",
                latest_ids,
            )
        )
    if latest is not None and status is not Antibody.INDETERMINATE:
        bounded = [r for r in latest.results if r.note]
        if bounded:
            findings.append(
                Finding(
                    Code.ANTIBODY_VALUE_BOUND,
                    Severity.WARNING,
                    "; ".join(r.note for r in bounded).capitalize() + ": not an exact value, "
                    "so only what the bound proves is used. Ask the laboratory for the index.",
                    tuple(r.source for r in bounded),
                )
            )

    # A preliminary result older than the latest usable test is history, not news: list it,
    # but warn only about results that could change the picture.
    pending = [r for r in shown if latest is None or not r.effective or r.effective >= latest.on]
    by_day: dict[date | None, list[LabResult]] = defaultdict(list)
    for r in pending:
        by_day[r.effective].append(r)
    for day, group in by_day.items():
        when = day.isoformat() if day else "undated"
        statuses = " / ".join(sorted({r.status for r in group}))
        findings.append(
            Finding(
                Code.ANTIBODY_PRELIMINARY,
                Severity.WARNING,
                f"A {statuses} anti-JCV result ({when}) is shown but not used; only final, "
                "amended or corrected results count. Recheck when it is final.",
                tuple(r.source for r in group),
            )
        )
    if undated:
        findings.append(
            Finding(
                Code.ANTIBODY_UNDATED,
                Severity.WARNING,
                "An anti-JCV result has no effective or issued date and cannot be placed in "
                "time; it is not used.",
                tuple(r.source for r in undated),
            )
        )
    if latest is not None:
        if add_months(latest.on, RETEST_MONTHS) < at:
            due = add_months(latest.on, RETEST_MONTHS)
            findings.append(
                Finding(
                    Code.ANTIBODY_STALE,
                    Severity.WARNING,
                    f"Last anti-JCV test {months_between(latest.on, at)} months ago "
                    f"({latest.on.isoformat()}): retest due since {due.isoformat()}.",
                    latest_ids,
                )
            )
        if latest.status is Antibody.NEGATIVE and any(
            t.status is Antibody.POSITIVE for t in tests[:-1]
        ):
            earlier = [t for t in tests[:-1] if t.status is Antibody.POSITIVE][-1]
            findings.append(
                Finding(
                    Code.ANTIBODY_SEROREVERSION,
                    Severity.WARNING,
                    f"The latest result is negative but an earlier test "
                    f"({earlier.on.isoformat()}) was positive: results can revert and "
                    "false negatives occur (3 % analytically). Consider retesting before "
                    "relying on the negative stratum.",
                    tuple(r.source for r in earlier.results),
                )
            )
        if latest.discordant:
            findings.append(
                Finding(
                    Code.ANTIBODY_DISCORDANT,
                    Severity.WARNING,
                    f"The qualitative result and the index of {latest.on.isoformat()} disagree; "
                    "the qualitative result is used. Check with the laboratory.",
                    latest_ids,
                )
            )
    local = [r.source for r in usable + shown if r.matched_by_text]
    if local:
        findings.append(
            Finding(
                Code.ANTIBODY_LOCAL_CODE,
                Severity.WARNING,
                "Some anti-JCV results were recognised by their name, not by a configured code. "
                "Check they are the STRATIFY JCV DxSelect antibody test and ask IT to map the "
                "local code.",
                tuple(local),
            )
        )
    if status is Antibody.POSITIVE:
        if index is None:
            findings.append(
                Finding(
                    Code.INDEX_MISSING,
                    Severity.WARNING,
                    "Antibody positive without a numeric index: the 'index not available' row "
                    "is used. Request the index from the laboratory.",
                    latest_ids,
                )
            )
        elif abs(index - INDEX_CUTOFF) <= NEAR_CUTOFF:
            findings.append(
                Finding(
                    Code.INDEX_NEAR_CUTOFF,
                    Severity.WARNING,
                    f"Index {_fmt(index)} is near the 1.5 cut-off; the band can change on "
                    "retest (16 % of duplicate samples fell in another band).",
                    latest_ids,
                )
            )
        indexed = [t for t in tests if t.index is not None][-3:]
        if len(indexed) >= 2 and all(
            a.index is not None and b.index is not None and a.index < b.index
            for a, b in zip(indexed, indexed[1:], strict=False)
        ):
            trail = " → ".join(_fmt(t.index) for t in indexed if t.index is not None)
            findings.append(
                Finding(
                    Code.INDEX_RISING,
                    Severity.WARNING,
                    f"The index is rising across the last tests ({trail}).",
                    tuple(r.source for t in indexed for r in t.results),
                )
            )

    summary = AntibodySummary(
        status=status,
        index=index,
        tested_on=latest.on if latest else None,
        sources=latest_ids,
        history=tuple(sorted(usable, key=lambda r: (r.effective or date.min, r.source))),
        not_used=tuple(shown + undated),
        overridden=overridden,
    )
    return summary, findings
