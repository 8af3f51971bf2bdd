"""The risk engine: plain inputs + a risk table + a date in, an ``Assessment`` out.

Pure and deterministic (no clock, no I/O), so every rule of risk-model.md can be tested cell by
cell and the same inputs always give the same RiskAssessment identifier.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from . import antibody as antibody_rules
from . import exposure as exposure_rules
from . import immunosuppressant as immunosuppressant_rules
from . import monitoring
from .records import AgentClass, Antibody, Inputs, Overrides
from .result import (
    AntibodySummary,
    Assessment,
    Cell,
    Code,
    ExposureSummary,
    Finding,
    PriorImmunosuppressant,
    Severity,
)
from .table import RiskTable

HIGH_RISK_AFTER_INFUSIONS = 24  # EMA/PRAC higher-risk groups (risk-model.md §6)
HIGH_RISK_INDEX = Decimal("1.5")
_ORDER = {Severity.MISSING: 0, Severity.WARNING: 1, Severity.INFO: 2}


def qualitative_risk(
    status: Antibody, infusions: int, prior_is: bool, index: Decimal | None
) -> str:
    if status is Antibody.NEGATIVE:
        return "low"
    high_index = index is not None and index > HIGH_RISK_INDEX
    if infusions > HIGH_RISK_AFTER_INFUSIONS and (prior_is or high_index):
        return "high"
    return "moderate"


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
        if ab.status is not ab0.status:
            said.append(f"antibody status {ab.status.value} (chart: {ab0.status.value})")
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
    exp, more = exposure_rules.summarise(inputs.infusions, inputs.medications, overrides)
    findings += more
    prior, more = immunosuppressant_rules.summarise(inputs.medications, exp.first, overrides)
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
    Code.MEDICATION_UNRESOLVED,
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


def assess(inputs: Inputs, table: RiskTable, at: date) -> Assessment:
    inputs, dated_later = _as_of(inputs, at)
    o = inputs.overrides
    ab, exp, prior, findings = _summaries(inputs, at, o)
    findings += dated_later + _unresolved(inputs)
    if o.any():
        chart = _summaries(inputs, at, Overrides())[:3]
        findings += _override_findings(o, chart, (ab, exp, prior))

    cell: Cell | None = None
    qualitative: str | None = None
    if ab.status in (Antibody.POSITIVE, Antibody.NEGATIVE):
        index = ab.index if ab.status is Antibody.POSITIVE else None
        row = table.row_for(ab.status, prior.value, index)
        if row is None:
            findings.append(
                Finding(
                    Code.ANTIBODY_MISSING,
                    Severity.MISSING,
                    f"The risk table {table.id} has no row for this combination of inputs.",
                )
            )
        else:
            band = next((b for b in row.bands if b.holds(exp.infusions)), row.bands[-1])
            if not band.holds(exp.infusions):
                findings.append(
                    Finding(
                        Code.EXPOSURE_BEYOND_TABLE,
                        Severity.WARNING,
                        f"Exposure beyond published data ({band.max} infusions); the "
                        f"{band.min}–{band.max} estimate is shown. Risk is not extrapolated.",
                    )
                )
            cell = Cell(row.label, band.label, band.per_1000, band.flag)
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

    basis = _basis(ab, exp, prior, findings, o)
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
        monitoring=monitoring.advise(ab, exp.infusions, prior.value, at),
        findings=tuple(sorted(findings, key=lambda f: _ORDER[f.severity])),
        basis=basis,
        overrides=inputs.overrides,
    )
