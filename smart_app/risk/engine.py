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
from .records import Antibody, Inputs, Overrides
from .result import Assessment, Cell, Code, Finding, Severity
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


def _override_findings(o: Overrides) -> list[Finding]:
    said = []
    if o.antibody is not None:
        said.append(f"antibody status set to {o.antibody.value}")
    if o.index is not None:
        said.append(f"index set to {o.index.normalize():f}")
    elif o.clear_index:
        said.append("index treated as not available")
    if o.infusion_count is not None:
        said.append(f"infusion count set to {o.infusion_count}")
    if o.prior_immunosuppressant is not None:
        answer = "yes" if o.prior_immunosuppressant else "no"
        said.append(f"prior immunosuppressant use set to {answer}")
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
        Severity.INFO,
        f"{len(later)} record(s) dated after the assessment date {at.isoformat()} are not used.",
        tuple(later),
    )
    return kept, [note]


def assess(inputs: Inputs, table: RiskTable, at: date) -> Assessment:
    inputs, dated_later = _as_of(inputs, at)
    ab, findings = antibody_rules.summarise(inputs.lab_results, at, inputs.overrides)
    findings += dated_later
    exp, more = exposure_rules.summarise(inputs.infusions, inputs.medications, inputs.overrides)
    findings += more
    prior, more = immunosuppressant_rules.summarise(
        inputs.medications, exp.first, inputs.overrides
    )
    findings += more
    findings += _override_findings(inputs.overrides)

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

    basis = [*ab.sources, *(i.source for i in exp.counted), *(m.source for m in prior.evidence)]
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
        basis=tuple(dict.fromkeys(basis)),
        overrides=inputs.overrides,
    )
