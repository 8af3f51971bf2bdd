"""The risk engine: plain inputs + a risk table + a date in, an ``Assessment`` out.

Pure and deterministic (no clock, no I/O), so every rule of docs/clinical-basis.md can be tested
cell by cell and the same inputs always give the same RiskAssessment identifier.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date
from decimal import Decimal

from . import advice as advice_rules
from . import antibody as antibody_rules
from . import exposure as exposure_rules
from . import immunosuppressant as immunosuppressant_rules
from . import lookahead, monitoring
from . import mri as mri_rules
from .immunosuppressant import sources_in_words
from .records import (
    ADMINISTRATION,
    MRI_SOURCES,
    OBSERVATION,
    PRIOR_IS_SOURCES,
    AgentClass,
    Antibody,
    Conflict,
    Copy,
    IndexRange,
    Inputs,
    Overrides,
    ResultUse,
)
from .result import (
    AntibodySummary,
    Assessment,
    Cell,
    Code,
    ExposureSummary,
    Finding,
    NextBand,
    PriorImmunosuppressant,
    Severity,
)
from .table import RiskTable, Row, band_for

SOURCES = (OBSERVATION, *PRIOR_IS_SOURCES)

HIGH_RISK_AFTER_INFUSIONS = 24  # EMA/PRAC higher-risk groups (docs/clinical-basis.md §6)
HIGH_RISK_INDEX = Decimal("1.5")
_ORDER = {Severity.MISSING: 0, Severity.WARNING: 1, Severity.INFO: 2}


def qualitative_risk(
    status: Antibody, infusions: int, prior_is: bool, index: Decimal | IndexRange | None
) -> str:
    if status is Antibody.NEGATIVE:
        return "low"
    if isinstance(index, Decimal):
        index = IndexRange.of(index)
    high_index = index is not None and index.above(HIGH_RISK_INDEX)
    if infusions > HIGH_RISK_AFTER_INFUSIONS and (prior_is or high_index):
        return "high"
    return "moderate"


def category_reason(qualitative: str, prior_is: bool) -> str:
    """One plain sentence: the category follows the EMA risk groups, not the figure alone."""
    if qualitative == "low":
        return (
            "Low because the antibody is negative: the category follows the EMA risk groups, "
            "in which every antibody-negative patient is at lower risk, not the figure alone."
        )
    if qualitative == "high":
        why = "prior immunosuppressant use" if prior_is else "an index above 1.5"
        return (
            "High because the antibody is positive with more than 24 infusions and "
            f"{why}: one of the EMA higher-risk groups."
        )
    return (
        "Moderate because the antibody is positive (every antibody-positive patient is above "
        "the lowest group, whatever the figure) but not in an EMA higher-risk group (more "
        "than 24 infusions with prior immunosuppressant use or an index above 1.5)."
    )


def _fmt(index: Decimal | None) -> str:
    return "none" if index is None else f"{index.normalize():f}"


def _override_findings(
    o: Overrides, chart: tuple[AntibodySummary, ExposureSummary, PriorImmunosuppressant],
    now: tuple[AntibodySummary, ExposureSummary, PriorImmunosuppressant],
) -> list[Finding]:
    """Say what the clinician changed, what the chart said, and every knock-on change."""
    (ab0, ex0, pi0), (ab, ex, pi) = chart, now
    said = []
    if o.antibody is not None or o.index is not None or o.clear_index:
        # What the clinician entered, even where it gives no status (a contradicting pair).
        entered = o.antibody if o.antibody is not None else ab.status
        if entered is not ab0.status:
            said.append(f"antibody status {entered.value} (chart: {ab0.status.value})")
        if ab.index != ab0.index:
            tested = f" of {ab0.tested_on.isoformat()}" if ab0.tested_on else ""
            said.append(f"index {_fmt(ab.index)} (chart: {_fmt(ab0.index)}{tested})")
        if ab.status is ab0.status and ab.index == ab0.index:
            said.append(f"antibody status {ab.status.value}, index {_fmt(ab.index)} (as chart)")
    if o.infusion_count is not None:
        said.append(f"completed infusions {ex.infusions} (chart: {ex0.infusions})")
    if o.prior_immunosuppressant is not None:
        yes = {True: "yes", False: "no"}
        said.append(
            f"prior immunosuppressant {yes[pi.value]} (chart: {yes[pi0.value]}"
            + (f", {', '.join(sorted({m.agent for m in pi0.evidence}))}" if pi0.evidence else "")
            + ")"
        )
    if not said:
        return []
    reason = f" Reason: {o.reason}" if o.reason else ""
    return [
        Finding(
            Code.OVERRIDE,
            Severity.WARNING,
            "Clinician override: " + "; ".join(said) + "." + reason,
        )
    ]


def _summaries(
    inputs: Inputs, at: date, overrides: Overrides
) -> tuple[AntibodySummary, ExposureSummary, PriorImmunosuppressant, list[Finding]]:
    ab, findings = antibody_rules.summarise(inputs.lab_results, at, overrides)
    exp, more = exposure_rules.summarise(inputs.infusions, inputs.medications, overrides, at)
    findings += more
    unread = [t for t in PRIOR_IS_SOURCES if t in inputs.unread]
    prior, more = immunosuppressant_rules.summarise(
        inputs.medications, exp.first, overrides, unread
    )
    findings += more
    return ab, exp, prior, findings


def _unresolved(inputs: Inputs) -> list[Finding]:
    unknown = [m.source for m in inputs.medications if m.agent_class is AgentClass.UNRESOLVED]
    if not unknown:
        return []
    return [
        Finding(
            Code.MEDICATION_UNRESOLVED,
            Severity.WARNING,
            f"{len(unknown)} medication record(s) name a medication the app could not read. "
            "If any is natalizumab or an immunosuppressant, the estimate is wrong: check them.",
            tuple(unknown),
        )
    ]


def _as_of(inputs: Inputs, at: date) -> tuple[Inputs, list[Finding]]:
    """Records dated after the assessment date are not yet known on that date."""
    later = [
        *(r.source for r in inputs.lab_results if r.effective and r.effective > at),
        *(i.source for i in inputs.infusions if i.when and i.when > at),
        *(m.source for m in inputs.medications if m.when and m.when > at),
    ]
    if not later:
        return inputs, []
    kept = replace(
        inputs,
        lab_results=tuple(r for r in inputs.lab_results if not (r.effective and r.effective > at)),
        infusions=tuple(i for i in inputs.infusions if not (i.when and i.when > at)),
        medications=tuple(m for m in inputs.medications if not (m.when and m.when > at)),
    )
    note = Finding(
        Code.AFTER_ASSESSMENT_DATE,
        Severity.WARNING,
        f"{len(later)} record(s) dated after the assessment date {at.isoformat()} are not used.",
        tuple(later),
    )
    return kept, [note]


# Findings whose resources bear on the estimate (not those about records left out).
_BASIS_FINDINGS = {
    Code.ANTIBODY_SEROREVERSION, Code.INDEX_RISING, Code.PRIOR_IS_CONCOMITANT,
    Code.PRIOR_IS_UNDATED, Code.OTHER_MS_THERAPY, Code.EXPOSURE_UNDERCOUNT,
    Code.MEDICATION_UNRESOLVED, Code.EXPOSURE_UNIDENTIFIED, Code.PRIOR_IS_UNIDENTIFIED,
}


def _basis(
    ab: AntibodySummary, exp: ExposureSummary, prior: PriorImmunosuppressant,
    findings: list[Finding], o: Overrides,
) -> tuple[str, ...]:
    """Every resource the estimate rests on; inputs a clinician overrode away are not."""
    antibody_replaced = o.antibody is not None and (o.index is not None or o.clear_index)
    refs = [
        *(() if antibody_replaced else ab.sources),
        *(() if o.infusion_count is not None else (i.source for i in exp.counted)),
        *((m.source for m in prior.evidence) if prior.value else ()),
        *(s for f in findings if f.code in _BASIS_FINDINGS for s in f.sources),
    ]
    return tuple(dict.fromkeys(refs))


def _earlier_index(
    table: RiskTable, ab: AntibodySummary, prior_is: bool, infusions: int
) -> tuple[AntibodySummary, Finding]:
    """A repeat positive reported without an index (docs/clinical-basis.md §3): the most recent
    earlier index is used when its row is higher than "index not available" (the index is
    stable or rises in most patients, so dropping it could only lower the figure), else that
    row; the clinician is told which, with the earlier test's date, either way."""
    earlier = ab.earlier_index
    assert earlier is not None
    tested = ab.tested_on.isoformat() if ab.tested_on else "the latest test"
    carried = replace(ab, index=earlier.index, comparator=earlier.comparator)
    row, _, _ = _row(table, carried, prior_is, infusions)
    fallback = table.row_for(Antibody.POSITIVE, prior_is, None)
    higher = row is not None and (
        fallback is None
        or band_for(row.bands, infusions).per_1000 > band_for(fallback.bands, infusions).per_1000
    )
    said = (f"The latest positive anti-JCV test ({tested}) reports no index; the most recent "
            f"earlier index, {earlier.text} of {earlier.tested_on.isoformat()}, ")
    if higher:
        return replace(
            carried, index_from=earlier.tested_on,
            sources=tuple(dict.fromkeys((*ab.sources, *earlier.sources))),
        ), Finding(
            Code.INDEX_MISSING,
            Severity.WARNING,
            said + "is used: its row is higher than 'index not available', and an index is "
            "stable or rises in most patients. "
            + ("It is near the 1.5 cut-off; the band can change on retest. "
               if not earlier.comparator
               and abs(earlier.index - HIGH_RISK_INDEX) <= antibody_rules.NEAR_CUTOFF else "")
            + "Request the index of the latest test from the laboratory.",
            (*ab.sources, *earlier.sources),
        )
    return ab, Finding(
        Code.INDEX_MISSING,
        Severity.WARNING,
        said + "would not give a higher row, so the 'index not available' row is used. Request "
        "the index of the latest test from the laboratory.",
        (*ab.sources, *earlier.sources),
    )


def _row(
    table: RiskTable, ab: AntibodySummary, prior_is: bool, infusions: int
) -> tuple[Row | None, IndexRange | None, list[Finding]]:
    """The table row, the index as the row reads it, and what a bound decided
    (docs/clinical-basis.md §3).

    A bound that places the index in one row decides it (">1.5" is above 1.5). A bound that
    leaves two rows possible makes the index unknown for the table: the "index not available"
    row is used, or no estimate where that row would be lower than every row the bound allows.
    Never the lower row because of a bound.
    """
    index = ab.index_range if ab.status is Antibody.POSITIVE else None
    if index is None or index.exact is not None:
        exact = index.exact if index is not None else None
        return table.row_for(ab.status, prior_is, exact), index, []
    shown = ab.index_text
    possible = table.possible_rows(ab.status, prior_is, index)
    if any(not r.index.used for r in possible):
        return next(r for r in possible if not r.index.used), index, []
    if len(possible) == 1 and possible[0].index.decides(index):
        return possible[0], index, [
            Finding(
                Code.ANTIBODY_VALUE_BOUND,
                Severity.INFO,
                f"Index reported as {shown}, a bound rather than an exact value: it places the "
                f"index in the row '{possible[0].label}', which is used.",
                ab.sources,
            )
        ]
    fallback = table.row_for(ab.status, prior_is, None)
    lowest = min(
        (band_for(r.bands, infusions).per_1000 for r in possible), default=None
    )
    if fallback is None or (
        lowest is not None and band_for(fallback.bands, infusions).per_1000 < lowest
    ):
        return None, None, [
            Finding(
                Code.ANTIBODY_VALUE_BOUND,
                Severity.MISSING,
                f"Index reported as {shown}: the bound does not say which row of the table "
                "applies, and the table has no 'index not available' figure at least as high "
                "as every row it allows. No estimate; ask the laboratory for the exact index.",
                ab.sources,
            )
        ]
    return fallback, None, [
        Finding(
            Code.ANTIBODY_VALUE_BOUND,
            Severity.WARNING,
            f"Index reported as {shown}: the bound does not say which row of the table applies "
            f"({' or '.join(r.label for r in possible)}), so the index is treated as not "
            "available and that row is used, never the lower row. Ask the laboratory for the "
            "exact index.",
            ab.sources,
        )
    ]


def _exposure_evidence(
    inputs: Inputs, table: RiskTable, row: Row | None, exp: ExposureSummary
) -> list[Finding]:
    """Signs that the recorded count is short, weighed against the table's exposure bands.

    When the orders/statements, or counting the unidentified administrations as infusions,
    would put the patient in a higher band than the recorded count, there is no estimate: the
    recorded count would give a lower figure than the evidence allows. In the same band, the
    estimate stands with a warning (docs/clinical-basis.md §4).
    """
    if inputs.overrides.infusion_count is not None or inputs.unknown(ADMINISTRATION):
        return []
    bands = row.bands if row is not None else table.rows[0].bands
    recorded = band_for(bands, exp.infusions)
    findings: list[Finding] = []
    estimate = exp.from_orders
    if estimate is not None and estimate.infusions > exp.infusions:
        higher = band_for(bands, estimate.infusions)
        if higher != recorded:
            findings.append(
                Finding(
                    Code.EXPOSURE_ORDERS_HIGHER,
                    Severity.MISSING,
                    f"Infusions on record: {exp.infusions}; {estimate.since}: about "
                    f"{estimate.infusions} infusions — confirm the count. That is the "
                    f"{higher.label} band, higher than the recorded count's ({recorded.label}), "
                    "so no estimate is made: the EHR may not expose every infusion, or "
                    "treatment began elsewhere. Enter the number of completed infusions as a "
                    "what-if.",
                    estimate.orders,
                )
            )
    if exp.unidentified:
        n = len(exp.unidentified)
        named = ", ".join(exp.unidentified[:3]) + (f" and {n - 3} more" if n > 3 else "")
        moved = band_for(bands, exp.infusions + n) != recorded
        findings.append(
            Finding(
                Code.EXPOSURE_UNIDENTIFIED,
                Severity.MISSING if moved else Severity.WARNING,
                f"{n} administration record(s) could be natalizumab infusions but could not "
                f"be identified (an unreadable medication, or status unknown: {named}): "
                + ("counted as infusions they would move the patient to a higher exposure "
                   "band, so no estimate is made. Check them, or enter the number of "
                   "completed infusions as a what-if."
                   if moved else
                   "counting them would not change the exposure band; check them."),
                exp.unidentified,
            )
        )
    return findings


def _unread_findings(inputs: Inputs) -> list[Finding]:
    o = inputs.overrides
    findings: list[Finding] = []
    if inputs.unknown(OBSERVATION) and o.antibody is None and o.index is None:
        why = ("does not offer lab results (Observation)" if OBSERVATION in inputs.not_offered
               else "did not let the app read lab results (Observation)")
        findings.append(
            Finding(
                Code.ANTIBODY_UNREAD,
                Severity.MISSING,
                f"The EHR {why}: the anti-JCV antibody result is unknown, so no estimate can be "
                "made. Check the app's access with the EHR team, or enter the result as a "
                "what-if.",
            )
        )
    if inputs.unknown(ADMINISTRATION):
        why = ("does not offer natalizumab administrations (MedicationAdministration)"
               if ADMINISTRATION in inputs.not_offered
               else "did not let the app read natalizumab administrations "
               "(MedicationAdministration)")
        if o.infusion_count is None:
            findings.append(
                Finding(
                    Code.EXPOSURE_UNREAD,
                    Severity.MISSING,
                    f"The EHR {why}: the number of infusions is unknown, so no estimate can be "
                    "made. Enter the number of completed infusions as a what-if.",
                )
            )
        else:
            findings.append(
                Finding(
                    Code.EXPOSURE_UNREAD,
                    Severity.WARNING,
                    f"The EHR {why}: the infusion count is the clinician's entry.",
                )
            )
    # Imaging sources are reported with the MRI due date, not here: they bear on monitoring only.
    not_offered = sorted(t for t in inputs.not_offered if t not in MRI_SOURCES)
    if not_offered:
        findings.append(
            Finding(
                Code.SOURCES_NOT_OFFERED,
                Severity.INFO,
                f"This EHR does not offer {sources_in_words(not_offered)} to "
                "apps: not a source here. The app searched "
                + sources_in_words([t for t in SOURCES if t not in inputs.not_offered] or ["none"])
                + ".",
            )
        )
    return findings


def _assess_one(inputs: Inputs, table: RiskTable, at: date) -> Assessment:
    inputs, dated_later = _as_of(inputs, at)
    o = inputs.overrides
    ab, exp, prior, findings = _summaries(inputs, at, o)
    findings += dated_later + _unresolved(inputs) + _unread_findings(inputs)
    if o.any():
        chart = _summaries(inputs, at, Overrides())[:3]
        findings += _override_findings(o, chart, (ab, exp, prior))
    if inputs.unknown(OBSERVATION) and o.antibody is None and o.index is None:
        findings = [f for f in findings if f.code is not Code.ANTIBODY_MISSING]
    if inputs.unknown(ADMINISTRATION) and o.infusion_count is None:
        findings = [f for f in findings if f.code is not Code.EXPOSURE_NONE]
        exp = replace(exp, unknown="not offered" if ADMINISTRATION in inputs.not_offered
                      else "unread")

    # Extended-interval dosing changes how the figure should be read (the table is not adjusted
    # for it): a warning to read with care, not background information.
    findings = [replace(f, severity=Severity.WARNING)
                if f.code is Code.EXPOSURE_EXTENDED_INTERVAL else f for f in findings]
    cell: Cell | None = None
    qualitative: str | None = None
    reason = ""
    ahead: NextBand | None = None
    blocked = any(f.severity is Severity.MISSING for f in findings)
    if ab.status is Antibody.POSITIVE and ab.index is None and ab.earlier_index is not None:
        ab, carried = _earlier_index(table, ab, prior.value, exp.infusions)
        findings.append(carried)
    if ab.status in (Antibody.POSITIVE, Antibody.NEGATIVE):
        row, index, more = _row(table, ab, prior.value, exp.infusions)
        findings += more
        if row is None and not more:
            findings.append(
                Finding(
                    Code.ANTIBODY_MISSING,
                    Severity.MISSING,
                    f"The risk table {table.id} has no row for this combination of inputs.",
                )
            )
        elif row is not None:
            band = band_for(row.bands, exp.infusions)
            if not band.holds(exp.infusions):
                findings.append(
                    Finding(
                        Code.EXPOSURE_BEYOND_TABLE,
                        Severity.WARNING,
                        f"Exposure beyond published data ({band.max} infusions); the "
                        f"{band.min}–{band.max} estimate is shown. Risk is not extrapolated.",
                    )
                )
            published = table.published_max
            if (ab.status is Antibody.NEGATIVE and published is not None
                    and exp.infusions > published):
                findings.append(
                    Finding(
                        Code.EXPOSURE_BEYOND_FOLLOW_UP,
                        Severity.INFO,
                        f"More than {published} infusions: the published follow-up of "
                        f"antibody-negative patients ends at about {published} months; the "
                        "figure is unchanged.",
                    )
                )
            cell = Cell(row.label, band.label, band.per_1000, band.flag)
            if not exp.unknown:
                ahead = lookahead.next_band(table, row, exp.infusions)
            if band.flag:
                findings.append(Finding(Code.TABLE_CELL_FLAGGED, Severity.WARNING, band.flag))
            if prior.value and ab.status is Antibody.POSITIVE and ab.index is not None:
                # The index does not pick the row, so "near the cut-off" would mislead.
                findings = [f for f in findings if f.code is not Code.INDEX_NEAR_CUTOFF]
                findings.append(
                    Finding(
                        Code.INDEX_NOT_USED,
                        Severity.INFO,
                        "Prior immunosuppressant use: the index is shown but not used; the "
                        "prior-immunosuppressant row applies at any index.",
                    )
                )
            qualitative = qualitative_risk(ab.status, exp.infusions, prior.value, index)
            reason = category_reason(qualitative, prior.value)
    if ab.status in (Antibody.POSITIVE, Antibody.NEGATIVE):
        row_for_bands = table.row_for(ab.status, prior.value, None)
    else:
        row_for_bands = None
    short = _exposure_evidence(inputs, table, row_for_bands, exp)
    if any(f.code is Code.EXPOSURE_ORDERS_HIGHER for f in short):
        # The recorded count is not the patient's: "first band used" would mislead.
        findings = [f for f in findings if f.code is not Code.EXPOSURE_NONE]
    findings += short
    if blocked or any(f.severity is Severity.MISSING for f in findings):
        cell, qualitative, reason, ahead = None, None, "", None

    basis = _basis(ab, exp, prior, findings, o)
    advice = monitoring.advise(ab, exp.infusions, prior.value, at, exposure_known=not exp.unknown)
    advice = replace(advice, mri_schedule=mri_rules.schedule(
        inputs.mris, advice.mri_months, at, inputs.unread, inputs.not_offered))
    return Assessment(
        patient=inputs.patient,
        assessed_on=at,
        table_id=table.id,
        table_title=table.title,
        table_version=table.version,
        antibody=ab,
        exposure=exp,
        prior_immunosuppressant=prior,
        cell=cell,
        qualitative=qualitative,
        monitoring=advice,
        findings=tuple(sorted(findings, key=lambda f: _ORDER[f.severity])),
        basis=basis,
        overrides=inputs.overrides,
        category_reason=reason,
        unread=tuple(sorted(inputs.unread)),
        not_offered=tuple(sorted(inputs.not_offered)),
        next_band=ahead,
        advice=advice_rules.for_category(qualitative),
    )


MAX_EXACT_VARIANTS = 64


def _variants(conflicts: tuple[Conflict, ...]) -> list[tuple[Copy, ...]]:
    """The ways the conflicting copies can be resolved, one copy per resource.

    Every combination when there are few; otherwise the resolutions that count the most and
    the least (the cell moves with the counts of infusions, prior-use records and usable
    results), plus all-first and all-last copies.
    """
    total = 1
    for c in conflicts:
        total *= len(c.copies)
    if total <= MAX_EXACT_VARIANTS:
        return list(itertools.product(*(c.copies for c in conflicts)))

    def weight(copy: Copy) -> int:
        return (
            sum(1 for i in copy.infusions if i.status == "completed")
            + sum(1 for m in copy.medications if not m.excluded)
            + sum(1 for r in copy.lab_results if r.use is ResultUse.USE)
        )

    most = tuple(max(c.copies, key=weight) for c in conflicts)
    least = tuple(min(c.copies, key=weight) for c in conflicts)
    first = tuple(c.copies[0] for c in conflicts)
    last = tuple(c.copies[-1] for c in conflicts)
    return list(dict.fromkeys([most, least, first, last]))


def _with(inputs: Inputs, copies: tuple[Copy, ...]) -> Inputs:
    return replace(
        inputs,
        lab_results=inputs.lab_results + tuple(r for c in copies for r in c.lab_results),
        infusions=inputs.infusions + tuple(i for c in copies for i in c.infusions),
        medications=inputs.medications + tuple(m for c in copies for m in c.medications),
        conflicts=(),
    )


def assess(inputs: Inputs, table: RiskTable, at: date) -> Assessment:
    if not inputs.conflicts:
        result = _assess_one(inputs, table, at)
        if not inputs.unordered:
            return result
        named = ", ".join(inputs.unordered[:5]) + (
            f" and {len(inputs.unordered) - 5} more" if len(inputs.unordered) > 5 else "")
        finding = Finding(
            Code.RESOURCE_CONFLICT,
            Severity.WARNING,
            f"The EHR sent different copies of {named} with nothing to say which is current; "
            "every copy gives the same inputs, so the estimate stands. Ask the EHR team to "
            "check these records.",
            inputs.unordered,
        )
        return replace(result, findings=tuple(
            sorted((*result.findings, finding), key=lambda f: _ORDER[f.severity])
        ))
    # The same resource twice with different content and nothing to order the copies: weigh
    # every resolution. The figure shown is the highest; where they give different cells,
    # no estimate (docs/clinical-basis.md §8).
    results = [_assess_one(_with(inputs, v), table, at) for v in _variants(inputs.conflicts)]
    cells = {(a.cell.row, a.cell.band) if a.cell else None for a in results}
    shown = max(results, key=lambda a: (a.per_1000 is not None, a.per_1000 or Decimal(0)))
    refs = tuple(c.reference for c in inputs.conflicts) + inputs.unordered
    named = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
    if len(cells) == 1:
        finding = Finding(
            Code.RESOURCE_CONFLICT,
            Severity.WARNING,
            f"The EHR sent different copies of {named} with nothing to say which is current; "
            "every copy gives the same table cell, so the estimate stands. Ask the EHR team "
            "to check these records.",
            refs,
        )
        return replace(shown, findings=tuple(
            sorted((*shown.findings, finding), key=lambda f: _ORDER[f.severity])
        ))
    finding = Finding(
        Code.RESOURCE_CONFLICT,
        Severity.MISSING,
        f"The EHR sent different copies of {named} with nothing to say which is current, and "
        "the copies give different table cells: no estimate can be made. Ask the EHR team to "
        "correct these records, or enter the inputs as a what-if.",
        refs,
    )
    return replace(
        shown, cell=None, qualitative=None, category_reason="", next_band=None, advice=(),
        findings=tuple(sorted((*shown.findings, finding), key=lambda f: _ORDER[f.severity])),
    )
