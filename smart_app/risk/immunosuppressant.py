"""Prior immunosuppressant use (risk-model.md §5).

"Prior" means before the first natalizumab infusion: the source analyses studied a history of
classic immunosuppressants, so later use is concomitant (warned, not counted), and other MS
therapies are listed for the clinician to judge rather than silently choosing a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from .records import AgentClass, MedicationEvidence, Overrides
from .result import Code, Finding, PriorImmunosuppressant, Severity

AGENTS = ("mitoxantrone", "azathioprine", "methotrexate", "cyclophosphamide", "mycophenolate")


def _names(evidence: Sequence[MedicationEvidence]) -> str:
    return ", ".join(sorted({e.agent for e in evidence}))


def summarise(
    medications: Sequence[MedicationEvidence], first_infusion: date | None, overrides: Overrides
) -> tuple[PriorImmunosuppressant, list[Finding]]:
    agents = [m for m in medications if m.agent_class is AgentClass.IMMUNOSUPPRESSANT]
    # Prior: use had begun before the first infusion. A record whose start is unknown cannot be
    # placed after it, so it counts (and says so): the conservative reading.
    prior = [
        m
        for m in agents
        if first_infusion is None
        or m.when is None
        or (m.started_by is not None and m.started_by < first_infusion)
    ]
    later = [m for m in agents if m not in prior]
    continued = [
        m
        for m in prior
        if first_infusion is not None
        and (
            (m.ended is not None and m.ended >= first_infusion)
            or (m.ended is None and m.status == "active")
        )
    ]
    concomitant = later + continued
    others = [m for m in medications if m.agent_class is AgentClass.OTHER_MS_THERAPY]
    value = bool(prior) if overrides.prior_immunosuppressant is None else (
        overrides.prior_immunosuppressant
    )
    findings: list[Finding] = []

    if not prior and overrides.prior_immunosuppressant is None:
        findings.append(
            Finding(
                Code.PRIOR_IS_NONE_ON_RECORD,
                Severity.INFO,
                "No prior immunosuppressant on record (" + ", ".join(AGENTS) + "). Outside "
                "history is often missing from the chart: confirm with the patient and "
                "override if needed.",
            )
        )
    undated = [
        m
        for m in prior
        if m.when is None
        and first_infusion is not None
        and (m.started_by is None or m.started_by >= first_infusion)
    ]
    if undated:
        findings.append(
            Finding(
                Code.PRIOR_IS_UNDATED,
                Severity.WARNING,
                f"{_names(undated).capitalize()} on record without a start date: counted as "
                "prior use because it cannot be placed after the first infusion. Confirm and "
                "override if it began later.",
                tuple(m.source for m in undated),
            )
        )
    if concomitant:
        findings.append(
            Finding(
                Code.PRIOR_IS_CONCOMITANT,
                Severity.WARNING,
                f"{_names(concomitant).capitalize()} on record after the first natalizumab "
                "infusion: concomitant immunosuppression (use begun before it still counts as "
                "prior) raises concern in itself; review.",
                tuple(m.source for m in concomitant),
            )
        )
    if others:
        findings.append(
            Finding(
                Code.OTHER_MS_THERAPY,
                Severity.INFO,
                f"Other MS therapy on record ({_names(others)}): not counted as prior "
                "immunosuppressant use in the source analyses; clinician to judge.",
                tuple(m.source for m in others),
            )
        )
    summary = PriorImmunosuppressant(
        value=value,
        on_record=bool(prior),
        evidence=tuple(prior),
        concomitant=tuple(concomitant),
        other_therapies=tuple(others),
        overridden=overrides.prior_immunosuppressant is not None,
    )
    return summary, findings
