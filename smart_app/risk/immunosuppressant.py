"""Prior immunosuppressant use (docs/clinical-basis.md §5).

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


KIND_WORDS = {
    "MedicationStatement": "statement",
    "MedicationRequest": "order",
    "MedicationAdministration": "administration",
}
SOURCE_WORDS = {
    "Observation": "lab results (Observation)",
    "MedicationAdministration": "medication administrations (MedicationAdministration)",
    "MedicationStatement": "medication history (MedicationStatement)",
    "MedicationRequest": "medication orders (MedicationRequest)",
}


def sources_in_words(types: Sequence[str]) -> str:
    named = [SOURCE_WORDS.get(t, t) for t in types]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _not_counted(records: Sequence[MedicationEvidence]) -> str:
    parts = []
    for m in records:
        when = m.when.isoformat() if m.when else "undated"
        kind = KIND_WORDS.get(m.resource_type, "record")
        parts.append(f"{m.agent} {kind} {when} ({m.excluded})")
    return "; ".join(parts)


def summarise(
    medications: Sequence[MedicationEvidence],
    first_infusion: date | None,
    overrides: Overrides,
    unread_sources: Sequence[str] = (),
) -> tuple[PriorImmunosuppressant, list[Finding]]:
    not_counted = sorted(
        (m for m in medications if m.excluded), key=lambda m: (m.when or date.min, m.source)
    )
    medications = sorted(
        (m for m in medications if not m.excluded), key=lambda m: (m.when or date.min, m.source)
    )
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
    # A record whose drug could not be identified, dated before the first infusion (or
    # undated), might be one of the five agents: use is unknown, never "none on record".
    unidentified = [
        m for m in medications
        if m.agent_class is AgentClass.UNRESOLVED
        and (first_infusion is None or m.when is None or m.when < first_infusion)
    ]
    others = [m for m in medications if m.agent_class is AgentClass.OTHER_MS_THERAPY]
    value = bool(prior) if overrides.prior_immunosuppressant is None else (
        overrides.prior_immunosuppressant
    )
    findings: list[Finding] = []

    if not prior and overrides.prior_immunosuppressant is None and unread_sources:
        findings.append(
            Finding(
                Code.PRIOR_IS_UNREAD,
                Severity.WARNING,
                f"Prior immunosuppressant use unknown: {sources_in_words(unread_sources)} could "
                "not be read from the EHR. The estimate uses the 'no prior immunosuppressant' "
                "row; if the patient ever took " + ", ".join(AGENTS) + ", the risk is higher. "
                "Confirm with the patient and override if needed.",
            )
        )
    elif not prior and overrides.prior_immunosuppressant is None and unidentified:
        findings.append(
            Finding(
                Code.PRIOR_IS_UNIDENTIFIED,
                Severity.WARNING,
                f"Prior immunosuppressant use unknown: {len(unidentified)} medication "
                "record(s) dated before the first natalizumab infusion name a medication the "
                "app could not identify. The estimate uses the 'no prior immunosuppressant' "
                "row; if any is " + ", ".join(AGENTS) + ", the risk is higher. Check them and "
                "override if needed.",
                tuple(m.source for m in unidentified),
            )
        )
    elif not prior and overrides.prior_immunosuppressant is None:
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
    status_unknown = [m for m in prior if m.status == "unknown"]
    if status_unknown:
        findings.append(
            Finding(
                Code.PRIOR_IS_STATUS_UNKNOWN,
                Severity.WARNING,
                f"{_names(status_unknown).capitalize()} on record with status unknown: "
                "counted as prior use; override if it was not taken.",
                tuple(m.source for m in status_unknown),
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
    if not_counted:
        findings.append(
            Finding(
                Code.RECORDS_NOT_COUNTED,
                Severity.INFO,
                f"Other records (not counted): {_not_counted(not_counted)}. They are not "
                "evidence of use; review them if the chart may be wrong.",
                tuple(m.source for m in not_counted),
            )
        )
    summary = PriorImmunosuppressant(
        value=value,
        on_record=bool(prior),
        evidence=tuple(prior),
        concomitant=tuple(concomitant),
        other_therapies=tuple(others),
        overridden=overrides.prior_immunosuppressant is not None,
        not_counted=tuple(not_counted),
        unread_sources=tuple(unread_sources),
        unidentified=tuple(m.source for m in unidentified),
    )
    return summary, findings
