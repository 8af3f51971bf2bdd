"""Builders shared by the core tests: the engine's plain records and small FHIR resources.

Dates are fixed so every expectation is reproducible: the assessment date is the fixtures'
2026-11-25, the latest antibody test 2026-09-15 (not stale), the first infusion 2015-01-05
(130 four-weekly infusions still end before the assessment date).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from smart_app.risk import Antibody, Assessment, Inputs, Overrides, assess
from smart_app.risk.records import AgentClass, Infusion, LabResult, MedicationEvidence, ResultUse
from smart_app.risk.result import Finding
from smart_app.risk.table import RiskTable
from smart_app.risk.tables import load_table

AT = date(2026, 11, 25)
TESTED = date(2026, 9, 15)
FIRST_INFUSION = date(2015, 1, 5)
BEFORE_NATALIZUMAB = date(2014, 6, 1)
PATIENT = "p1"

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

_ids = itertools.count(1)


def table() -> RiskTable:
    """The bundled default table, berger-fox-2016."""
    return load_table()


# --- engine records --------------------------------------------------------------------------


def lab(
    qualitative: Antibody | None = None,
    index: str | None = None,
    *,
    on: date | None = TESTED,
    status: str = "final",
    use: ResultUse = ResultUse.USE,
    by_text: bool = False,
    source: str | None = None,
) -> LabResult:
    """One anti-JCV Observation as the adapter would hand it to the engine."""
    return LabResult(
        source=source or f"Observation/lab-{next(_ids)}",
        effective=on,
        use=use,
        status=status,
        qualitative=qualitative,
        index=Decimal(index) if index is not None else None,
        matched_by_text=by_text,
    )


def antibody_test(
    status: Antibody, index: str | None = None, *, on: date = TESTED
) -> tuple[LabResult, ...]:
    """A test: the qualitative result and, when given, its index, on the same day."""
    results = [lab(status, on=on)]
    if index is not None:
        results.append(lab(index=index, on=on))
    return tuple(results)


def infusions(
    n: int, *, start: date = FIRST_INFUSION, every: int = 28, prefix: str = "nat"
) -> tuple[Infusion, ...]:
    """``n`` completed natalizumab infusions, ``every`` days apart."""
    return tuple(
        Infusion(
            f"MedicationAdministration/{prefix}-{k:03d}",
            start + timedelta(days=every * k),
            "completed",
            "Tysabri 300 mg IV",
        )
        for k in range(n)
    )


def medication(
    agent: str,
    when: date | None,
    *,
    agent_class: AgentClass = AgentClass.IMMUNOSUPPRESSANT,
    kind: str = "MedicationStatement",
    source: str | None = None,
) -> MedicationEvidence:
    return MedicationEvidence(
        source=source or f"{kind}/{agent.replace(' ', '-')}-{next(_ids)}",
        agent_class=agent_class,
        agent=agent,
        when=when,
        status="completed",
        label=agent,
    )


def inputs(
    labs: Iterable[LabResult] = (),
    given: Iterable[Infusion] = (),
    meds: Iterable[MedicationEvidence] = (),
    overrides: Overrides | None = None,
) -> Inputs:
    return Inputs(
        patient=f"Patient/{PATIENT}",
        lab_results=tuple(labs),
        infusions=tuple(given),
        medications=tuple(meds),
        overrides=overrides or Overrides(),
    )


def run(data: Inputs, *, at: date = AT, risk_table: RiskTable | None = None) -> Assessment:
    """The pure engine, with the bundled table unless another is given."""
    return assess(data, risk_table or table(), at)


def codes(a: Assessment) -> set[str]:
    return {f.code.value for f in a.findings}


def finding(a: Assessment, code: str) -> Finding:
    found = [f for f in a.findings if f.code.value == code]
    assert found, f"no {code} finding in {sorted(codes(a))}"
    return found[0]


# --- FHIR resources --------------------------------------------------------------------------


def concept(text: str | None = None, *codings: tuple[str, str]) -> dict[str, Any]:
    """A CodeableConcept from (system, code) pairs and an optional text."""
    result: dict[str, Any] = {}
    if codings:
        result["coding"] = [{"system": s, "code": c} for s, c in codings]
    if text is not None:
        result["text"] = text
    return result


JCV_ANTIBODY = concept("JC virus Ab [Presence] in Serum by Immunoassay", (LOINC, "70173-0"))
JCV_INDEX = concept("JC virus Ab index in Serum by Immunoassay", (LOINC, "100977-8"))
JCV_PCR = concept("JC virus DNA by PCR", (LOINC, "42921-7"))
NATALIZUMAB = concept("Tysabri 300 mg IV", (RXNORM, "354770"))


def subject(pid: str = PATIENT) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def patient(pid: str = PATIENT) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid}


def observation(
    oid: str,
    code: dict[str, Any],
    *,
    on: str | None = "2026-09-15",
    status: str = "final",
    pid: str = PATIENT,
    **value: Any,
) -> dict[str, Any]:
    """An Observation; ``value`` holds valueQuantity/valueString/interpretation/… as given."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": code,
        "subject": subject(pid),
    }
    if on is not None:
        resource["effectiveDateTime"] = on
    resource.update(value)
    return resource


def index_value(value: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": Decimal(value)}}


def snomed_result(code: str, text: str | None = None) -> dict[str, Any]:
    return {"valueCodeableConcept": concept(text, (SNOMED, code))}


def administration(
    aid: str,
    on: str | None,
    *,
    status: str = "completed",
    medication: dict[str, Any] | None = None,
    pid: str = PATIENT,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": status,
        "subject": subject(pid),
    }
    if "medicationReference" not in extra:
        resource["medicationCodeableConcept"] = medication or NATALIZUMAB
    if on is not None:
        resource["effectiveDateTime"] = on
    resource.update(extra)
    return resource


def natalizumab_series(
    n: int, *, start: date = FIRST_INFUSION, every: int = 28, prefix: str = "nat"
) -> list[dict[str, Any]]:
    return [
        administration(f"{prefix}-{k:03d}", (start + timedelta(days=every * k)).isoformat())
        for k in range(n)
    ]


def statement(
    sid: str,
    on: str | None,
    medication: dict[str, Any],
    *,
    status: str = "completed",
    pid: str = PATIENT,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": status,
        "subject": subject(pid),
        "medicationCodeableConcept": medication,
    }
    if on is not None:
        resource["effectiveDateTime"] = on
    return resource


def request(
    rid: str,
    authored: str,
    medication: dict[str, Any],
    *,
    intent: str = "order",
    status: str = "completed",
    pid: str = PATIENT,
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": intent,
        "subject": subject(pid),
        "authoredOn": authored,
        "medicationCodeableConcept": medication,
    }


def bundle(resources: Sequence[dict[str, Any]], kind: str = "collection") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "fullUrl": f"http://example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in resources
        ],
    }
