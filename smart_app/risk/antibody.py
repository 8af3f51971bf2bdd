"""Anti-JCV antibody status and index from lab results (docs/clinical-basis.md §3).

A "test" is the qualitative and index results of one date, or of dates up to three days apart
when they agree; the latest test decides. Results that contradict each other are never
combined and never resolved by picking one. Every way the evidence can be thin (no result,
indeterminate, preliminary, stale, discordant, a bound instead of a value, near a cut-off)
becomes a finding the clinician sees, never a silent guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from enum import Enum

from .dates import add_months, months_between
from .records import Antibody, IndexRange, LabResult, Overrides, ResultUse
from .result import AntibodySummary, Code, EarlierIndex, Finding, Severity

# Assay cut-offs of STRATIFY JCV DxSelect and the table's index cut-off (docs/clinical-basis.md).
NEGATIVE_BELOW = Decimal("0.20")
POSITIVE_ABOVE = Decimal("0.40")
INDEX_CUTOFF = Decimal("1.5")
NEAR_CUTOFF = Decimal("0.1")
RETEST_MONTHS = 6
PAIR_DAYS = 3


class Agreement(Enum):
    AGREE = "agree"
    CONTRADICT = "contradict"
    OPEN = "open"  # a bound that allows both readings


@dataclass(frozen=True)
class Test:
    on: date
    status: Antibody
    index: Decimal | None
    comparator: str
    results: tuple[LabResult, ...]
    conflicts: tuple[tuple[LabResult, LabResult], ...] = ()
    duplicate_index: tuple[LabResult, ...] = ()  # two or more index values on one date


def status_from_index(index: Decimal) -> Antibody:
    if index < NEGATIVE_BELOW:
        return Antibody.NEGATIVE
    if index > POSITIVE_ABOVE:
        return Antibody.POSITIVE
    return Antibody.INDETERMINATE


def status_from_range(index: IndexRange) -> Antibody | None:
    """The status an index range proves; None when a bound spans an assay cut-off."""
    if index.below(NEGATIVE_BELOW):
        return Antibody.NEGATIVE
    if index.above(POSITIVE_ABOVE):
        return Antibody.POSITIVE
    if index.at_least(NEGATIVE_BELOW) and index.at_most(POSITIVE_ABOVE):
        return Antibody.INDETERMINATE
    return None


def agreement(qualitative: Antibody, index: IndexRange) -> Agreement:
    """Whether a qualitative result and an index tell the same story (docs/clinical-basis.md §3).

    An index of 0.20–0.40 agrees with any qualitative result: it is the zone where the lab's
    confirmatory step makes the call, so the qualitative result is that call.
    """
    if qualitative is Antibody.NEGATIVE:
        agree, contradict = index.at_most(POSITIVE_ABOVE), index.above(POSITIVE_ABOVE)
    elif qualitative is Antibody.POSITIVE:
        agree, contradict = index.at_least(NEGATIVE_BELOW), index.below(NEGATIVE_BELOW)
    elif qualitative is Antibody.INDETERMINATE:
        agree = index.at_least(NEGATIVE_BELOW) and index.at_most(POSITIVE_ABOVE)
        contradict = index.below(NEGATIVE_BELOW) or index.above(POSITIVE_ABOVE)
    else:
        return Agreement.OPEN
    if agree:
        return Agreement.AGREE
    return Agreement.CONTRADICT if contradict else Agreement.OPEN


def contradicts(a: LabResult, b: LabResult) -> bool:
    """Two results (or one result with itself) that cannot both be right."""
    if a.unreadable or b.unreadable:
        return False
    # On one date any two calls clash; across dates an indeterminate screen followed by a
    # positive or negative call is the confirmatory step, not a contradiction.
    calls = {a.qualitative, b.qualitative}
    if a is not b and a.qualitative and b.qualitative and len(calls) == 2 and (
        a.effective == b.effective or calls == {Antibody.POSITIVE, Antibody.NEGATIVE}
    ):
        return True
    for qualitative, index in ((a.qualitative, b.index_range), (b.qualitative, a.index_range)):
        if qualitative and index and agreement(qualitative, index) is Agreement.CONTRADICT:
            return True
    if a is not b and a.effective != b.effective and a.index_range and b.index_range:
        # Two index tests days apart, one certainly negative, the other certainly positive.
        statuses = {status_from_range(a.index_range), status_from_range(b.index_range)}
        return statuses == {Antibody.POSITIVE, Antibody.NEGATIVE}
    return False


def _kind(result: LabResult) -> str:
    return "index" if result.index is not None and result.qualitative is None else "qualitative"


def _order(result: LabResult) -> tuple[str, str, str, str]:
    """A total order of results that does not depend on the order the EHR sent them."""
    q = result.qualitative.value if result.qualitative else ""
    return (result.source, q, result.index_text, result.status)


def _highest(results: Sequence[LabResult]) -> LabResult:
    """The result whose index reads highest: on one date the higher index is the cautious one."""
    def key(r: LabResult) -> tuple[Decimal, bool, bool, Decimal, bool]:
        rng = r.index_range
        assert rng is not None
        # Last, a closed top reads higher than an open one: "<=0.20" may be 0.20, "<0.20" not.
        return (rng.low, rng.low_open, rng.high is None, rng.high or Decimal(0),
                not rng.high_open)

    return max(results, key=key)


def _test(on: date, members: Sequence[LabResult]) -> Test:
    # An unreadable or inconclusive part does not spoil a readable result of the same test.
    results = [r for r in members if not r.unreadable] or list(members)
    qualitative = {r.qualitative for r in results if r.qualitative is not None}
    indexed = [r for r in results if r.index is not None]
    highest = _highest(indexed) if indexed else None
    if len(qualitative) == 1:
        status = qualitative.pop()
    elif len(qualitative) > 1:
        status = Antibody.INDETERMINATE  # contradicting calls: flagged as a conflict below
    elif highest is not None and highest.index_range is not None:
        status = status_from_range(highest.index_range) or Antibody.INDETERMINATE
    else:
        status = Antibody.UNKNOWN
    distinct = {r.index_text for r in indexed}
    return Test(
        on,
        status,
        highest.index if highest else None,
        highest.comparator if highest else "",
        tuple(members),
        duplicate_index=tuple(indexed) if len(distinct) > 1 else (),
    )


def _pairs(current: Sequence[LabResult], start: date, day: date,
           members: Sequence[LabResult]) -> bool:
    """A qualitative result and an index days apart are one test only when they agree."""
    if (day - start).days > PAIR_DAYS:
        return False
    before, after = {_kind(m) for m in current}, {_kind(m) for m in members}
    if len(before) != 1 or len(after) != 1 or before == after:
        return False
    for a in current:
        for b in members:
            q, rng = (a, b) if _kind(a) == "qualitative" else (b, a)
            if q.unreadable or rng.unreadable or q.qualitative is None:
                return False
            index = rng.index_range
            if index is None or agreement(q.qualitative, index) is not Agreement.AGREE:
                return False
    return True


def _tests(results: Sequence[LabResult]) -> list[Test]:
    """Group results into tests: one date, or an agreeing missing half within a few days.

    Labs often send the index days after the qualitative result (only ``issued`` set), and
    timezones near midnight split one draw over two dates; pairing agreeing halves keeps the
    index from looking "not available".
    """
    by_day: dict[date, list[LabResult]] = defaultdict(list)
    for result in results:
        assert result.effective is not None
        by_day[result.effective].append(result)
    groups: list[tuple[date, list[LabResult]]] = []
    for day in sorted(by_day):
        members = sorted(by_day[day], key=_order)
        if groups and _pairs(groups[-1][1], groups[-1][0], day, members):
            groups[-1][1].extend(members)
            continue
        groups.append((day, list(members)))
    return [_test(start, members) for start, members in groups]


def _conflicts(latest: Test, usable: Sequence[LabResult]) -> tuple[tuple[LabResult, LabResult],
                                                                    ...]:
    """Results that contradict a result of the latest test within the pairing window."""
    found: dict[tuple[str, ...], tuple[LabResult, LabResult]] = {}
    for a in latest.results:
        assert a.effective is not None
        for b in usable:
            assert b.effective is not None
            if abs((a.effective - b.effective).days) > PAIR_DAYS or not contradicts(a, b):
                continue
            first, second = sorted((a, b), key=lambda r: (r.effective or date.min, _order(r)))
            key = (*_order(first), *_order(second))
            found.setdefault(key, (first, second))
    return tuple(found[k] for k in sorted(found))


def _fmt(index: Decimal) -> str:
    return f"{index.normalize():f}"


def describe(result: LabResult) -> str:
    """"qualitative negative of 2026-10-01", "index 2.0 of 2026-10-03" for messages."""
    when = result.effective.isoformat() if result.effective else "undated"
    parts = []
    if result.qualitative is not None:
        parts.append(f"qualitative {result.qualitative.value}")
    if result.index is not None:
        parts.append(f"index {result.index_text}")
    return f"{' with '.join(parts) or 'result'} of {when}"


def _discordance(test: Test) -> str:
    pairs = []
    for a, b in test.conflicts:
        pairs.append(describe(a) if a is b else f"{describe(a)} and {describe(b)}")
    return "; ".join(pairs)


def summarise(
    results: Sequence[LabResult], at: date, overrides: Overrides
) -> tuple[AntibodySummary, list[Finding]]:
    usable = [r for r in results if r.use is ResultUse.USE and r.effective is not None]
    shown = [r for r in results if r.use is ResultUse.SHOW]
    undated = [r for r in results if r.use is ResultUse.USE and r.effective is None]
    tests = [t for t in _tests(usable) if t.status is not Antibody.UNKNOWN]
    latest = tests[-1] if tests else None
    if latest is not None:
        conflicts = _conflicts(latest, usable)
        if conflicts:
            latest = replace(latest, status=Antibody.INDETERMINATE, conflicts=conflicts)
            tests[-1] = latest
    findings: list[Finding] = []

    status = latest.status if latest else Antibody.UNKNOWN
    index = latest.index if latest else None
    comparator = latest.comparator if latest else ""
    entered_clash = ""
    if overrides.antibody is not None:
        status = overrides.antibody
        if latest is not None and latest.status is not status:
            index, comparator = None, ""  # the chart's index belongs to a test of another call
    elif overrides.index is not None:
        # An index entered without a status is a result like any other: §3 reads the status
        # from it, so 2.0 can never sit silently beside a negative.
        status = status_from_index(overrides.index)
    if overrides.index is not None:
        index, comparator = overrides.index, ""
        if overrides.antibody is not None and agreement(
            overrides.antibody, IndexRange.of(overrides.index)
        ) is Agreement.CONTRADICT:
            # Entered values obey the rule lab results obey: a call and an index that cannot
            # both be true give no estimate, never the figure of the lower-risk half.
            entered_clash = f"antibody {overrides.antibody.value} with index {_fmt(index)}"
            status = Antibody.INDETERMINATE
    elif overrides.clear_index:
        index, comparator = None, ""
    overridden = overrides.antibody is not None or overrides.index is not None or (
        overrides.clear_index
    )
    entered = overrides.antibody is not None or overrides.index is not None
    earlier = None
    if (status is Antibody.POSITIVE and index is None and latest is not None
            and latest.status is Antibody.POSITIVE and not overrides.clear_index):
        earlier = _earlier_index(tests[:-1])

    latest_ids = tuple(r.source for r in latest.results) if latest else ()
    if entered_clash:
        findings.append(
            Finding(
                Code.ANTIBODY_DISCORDANT,
                Severity.MISSING,
                f"The what-if values contradict each other ({entered_clash}, entered by the "
                "clinician): a negative result cannot have an index above 0.40, nor a positive "
                "result an index below 0.20. "
                "Entered values follow the rule lab results follow: no estimate can be made and "
                "nothing can be saved. Correct the entry, or confirm the result with the "
                "laboratory.",
            )
        )
    if latest is not None and latest.conflicts:
        findings.append(
            Finding(
                Code.ANTIBODY_DISCORDANT,
                Severity.WARNING if overridden else Severity.MISSING,
                f"The anti-JCV results disagree ({_discordance(latest)}): results that "
                "contradict each other are never combined or resolved by picking one, so "
                + ("the clinician's entry is used. " if overridden else "no estimate can be "
                   "made. ")
                + "Confirm the result with the laboratory.",
                tuple(dict.fromkeys(r.source for pair in latest.conflicts for r in pair)),
            )
        )
    if status is Antibody.UNKNOWN:
        findings.append(
            Finding(
                Code.ANTIBODY_MISSING,
                Severity.MISSING,
                "No final anti-JCV antibody result on record: no estimate can be made. "
                "Order an anti-JCV antibody test with index (STRATIFY JCV DxSelect).",
            )
        )
    elif entered and status is Antibody.INDETERMINATE and not entered_clash:
        findings.append(_entered_indeterminate(overrides))
    elif status is Antibody.INDETERMINATE and not entered_clash and not (
        latest and latest.conflicts and not overridden
    ):
        findings.append(_indeterminate(latest, overridden))

    # A preliminary result older than the latest usable test is history, not news: list it,
    # but warn only about results that could change the picture.
    pending = [r for r in shown if latest is None or not r.effective or r.effective >= latest.on]
    by_day: dict[date | None, list[LabResult]] = defaultdict(list)
    for r in sorted(pending, key=_order):
        by_day[r.effective].append(r)
    for day in sorted(by_day, key=lambda d: d or date.min):
        group = by_day[day]
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
                tuple(sorted(r.source for r in undated)),
            )
        )
    if latest is not None:
        findings += _latest_findings(latest, tests, at, latest_ids)
    local = sorted({r.source for r in usable + shown if r.matched_by_text})
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
        # An entered index is the clinician's, not the lab result of the chart's latest test.
        index_ids = () if overrides.index is not None else latest_ids
        findings += _index_findings(index, comparator, tests, index_ids, earlier is not None)

    summary = AntibodySummary(
        status=status,
        index=index,
        tested_on=latest.on if latest else None,
        sources=latest_ids,
        history=tuple(sorted(usable, key=lambda r: (r.effective or date.min, _order(r)))),
        not_used=tuple(sorted(shown + undated, key=lambda r: (r.effective or date.min,
                                                              _order(r)))),
        overridden=overridden,
        comparator=comparator,
        discordant=bool(latest and latest.conflicts) or bool(entered_clash),
        earlier_index=earlier,
    )
    return summary, findings


def _earlier_index(earlier: Sequence[Test]) -> EarlierIndex | None:
    """The index of the most recent earlier positive test that reports one: a repeat positive
    reported without an index does not make the index unknown (it is stable or rises in most
    patients); the engine uses it when its row is higher than "index not available"."""
    for test in reversed(earlier):
        if test.status is Antibody.POSITIVE and test.index is not None and not test.conflicts:
            return EarlierIndex(test.index, test.comparator, test.on,
                                tuple(r.source for r in test.results if r.index is not None))
    return None


def _entered_indeterminate(overrides: Overrides) -> Finding:
    """An indeterminate status that comes from the what-if, said as the clinician's entry: the
    chart's lab result of another date is not what is indeterminate."""
    what = (f"The entered anti-JCV index {_fmt(overrides.index)} (what-if)"
            if overrides.index is not None else "The entered anti-JCV result (what-if)")
    return Finding(
        Code.ANTIBODY_INDETERMINATE,
        Severity.MISSING,
        f"{what} is indeterminate: no estimate can be made. An index of 0.20–0.40 needs the "
        "laboratory's confirmatory step; enter its call (positive or negative) with the index, "
        "or order the confirmatory test.",
    )


def _indeterminate(latest: Test | None, overridden: bool) -> Finding:
    when = f" of {latest.on.isoformat()}" if latest else ""
    ids = tuple(r.source for r in latest.results) if latest else ()
    unread = [r.note for r in latest.results if r.unreadable] if latest else []
    spanning = [
        r for r in (latest.results if latest else ())
        if r.qualitative is None and r.index_range is not None and r.comparator
        and status_from_range(r.index_range) is None
    ]
    if unread and not overridden:
        message = (
            f"The latest anti-JCV antibody result{when} could not be read "
            f"({'; '.join(unread)}): no estimate can be made. Check the result with the "
            "laboratory and ask IT to map its format."
        )
    elif spanning and not overridden:
        message = (
            f"The latest anti-JCV index{when} was reported as {spanning[0].index_text}, which "
            "does not say whether the result is negative (below 0.20), needs the confirmatory "
            "step (0.20–0.40) or is positive: no estimate can be made. Ask the laboratory for "
            "the result."
        )
    else:
        message = (
            f"The latest anti-JCV antibody result{when} is indeterminate: no estimate can be "
            "made. An index of 0.20–0.40 needs the confirmatory inhibition step; order it or "
            "retest."
        )
    return Finding(Code.ANTIBODY_INDETERMINATE, Severity.MISSING, message, ids)


def _latest_findings(
    latest: Test, tests: Sequence[Test], at: date, latest_ids: tuple[str, ...]
) -> list[Finding]:
    findings: list[Finding] = []
    unreadable = [r for r in latest.results if r.unreadable]
    if unreadable and latest.status is not Antibody.INDETERMINATE:
        findings.append(
            Finding(
                Code.ANTIBODY_UNREADABLE,
                Severity.WARNING,
                f"Part of the anti-JCV test of {latest.on.isoformat()} could not be read ("
                + "; ".join(r.note for r in unreadable)
                + "): only the readable part is used. Check the result with the laboratory and "
                "ask IT to map its format.",
                tuple(r.source for r in unreadable),
            )
        )
    due = add_months(latest.on, RETEST_MONTHS)
    if due < at:
        findings.append(
            Finding(
                Code.ANTIBODY_STALE,
                Severity.WARNING,
                f"Last anti-JCV test {months_between(latest.on, at)} months ago "
                f"({latest.on.isoformat()}): retest due since {due.isoformat()}.",
                latest_ids,
            )
        )
    earlier_positive = [t for t in tests[:-1] if t.status is Antibody.POSITIVE]
    if latest.status is Antibody.NEGATIVE and earlier_positive:
        earlier = earlier_positive[-1]
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
    if latest.duplicate_index and latest.status is Antibody.POSITIVE:
        values = ", ".join(sorted({r.index_text for r in latest.duplicate_index}))
        findings.append(
            Finding(
                Code.INDEX_DUPLICATE,
                Severity.WARNING,
                f"Several index values on {latest.on.isoformat()} ({values}): the higher is "
                "used. Check with the laboratory which is the reported result.",
                tuple(r.source for r in latest.duplicate_index),
            )
        )
    return findings


def _index_findings(
    index: Decimal | None, comparator: str, tests: Sequence[Test], latest_ids: tuple[str, ...],
    earlier: bool = False,
) -> list[Finding]:
    findings: list[Finding] = []
    if index is None and not earlier:  # with an earlier index the engine says which row
        findings.append(
            Finding(
                Code.INDEX_MISSING,
                Severity.WARNING,
                "Antibody positive without a numeric index: the 'index not available' row "
                "is used. Request the index from the laboratory.",
                latest_ids,
            )
        )
    elif index is not None and not comparator and abs(index - INDEX_CUTOFF) <= NEAR_CUTOFF:
        findings.append(
            Finding(
                Code.INDEX_NEAR_CUTOFF,
                Severity.WARNING,
                f"Index {_fmt(index)} is near the 1.5 cut-off; the band can change on "
                "retest (16 % of duplicate samples fell in another band).",
                latest_ids,
            )
        )
    exact = [t for t in tests if t.index is not None and not t.comparator][-3:]
    if len(exact) >= 2 and all(
        a.index is not None and b.index is not None and a.index < b.index
        for a, b in zip(exact, exact[1:], strict=False)
    ):
        trail = " → ".join(_fmt(t.index) for t in exact if t.index is not None)
        findings.append(
            Finding(
                Code.INDEX_RISING,
                Severity.WARNING,
                f"The index is rising across the last tests ({trail}).",
                tuple(r.source for t in exact for r in t.results),
            )
        )
    return findings
