"""FHIR R4 JSON → the engine's plain input records.

Reads plain dicts with the standard library (a heavy chart parses in milliseconds; full model
validation of every read would cost a quarter of a second) and keeps, for every record, the
reference of the resource it came from. A resource of another patient is an error, never data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ..config import CodeSets
from ..risk.records import (
    AgentClass,
    Antibody,
    Infusion,
    Inputs,
    LabResult,
    MedicationEvidence,
    ResultUse,
)
from . import codes
from .codes import Vocabulary

Resource = Mapping[str, Any]

OBSERVATION_USE = {
    "final": ResultUse.USE,
    "amended": ResultUse.USE,
    "corrected": ResultUse.USE,
    "entered-in-error": ResultUse.IGNORE,
    "cancelled": ResultUse.IGNORE,
}
# Records that say the drug was never given (or the record is void) are not evidence of use.
NOT_GIVEN = {
    "MedicationAdministration": {"not-done", "entered-in-error", "unknown"},
    "MedicationStatement": {"entered-in-error", "not-taken", "intended", "unknown"},
    "MedicationRequest": {"entered-in-error", "cancelled", "draft", "unknown"},
}
NOT_ORDERS = {"proposal", "plan"}


class ForeignResourceError(ValueError):
    """A resource belongs to another patient than the one assessed."""

    def __init__(self, reference: str, patient: str) -> None:
        super().__init__(f"{reference} belongs to {patient}, not to the patient assessed")
        self.reference = reference
        self.patient = patient


def parse_date(value: Any) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant as written (partial dates allowed)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def ref_of(resource: Resource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def patient_of(reference: Any) -> str | None:
    """The patient id in a subject/patient Reference ("Patient/1", absolute, or versioned)."""
    if not isinstance(reference, Mapping):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if "Patient" in parts:
        i = len(parts) - 1 - parts[::-1].index("Patient")
        if i + 1 < len(parts) and parts[i + 1]:
            return parts[i + 1]
    return None


def subject_patient(resource: Resource) -> str | None:
    if resource.get("resourceType") == "Patient":
        pid = resource.get("id")
        return pid if isinstance(pid, str) else None
    for key in ("subject", "patient"):
        found = patient_of(resource.get(key))
        if found:
            return found
    return None


def _effective(resource: Resource, *fallbacks: str) -> date | None:
    found = parse_date(resource.get("effectiveDateTime"))
    if found is None and isinstance(resource.get("effectivePeriod"), Mapping):
        found = parse_date(resource["effectivePeriod"].get("start"))
    for key in fallbacks:
        if found is None:
            found = parse_date(resource.get(key))
    return found


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _qualitative_text(text: str) -> Antibody | None:
    lowered = text.lower()
    if "not detected" in lowered or "negative" in lowered:
        return Antibody.NEGATIVE
    if "indeterminate" in lowered or "equivocal" in lowered or "inconclusive" in lowered:
        return Antibody.INDETERMINATE
    if "positive" in lowered or "detected" in lowered:
        return Antibody.POSITIVE
    return None


def _qualitative(obs: Resource) -> Antibody | None:
    concept = obs.get("valueCodeableConcept")
    if isinstance(concept, Mapping):
        for coding in codes.codings(concept):
            system, _, code = coding.partition("|")
            if system == codes.SNOMED and code in codes.SNOMED_RESULTS:
                return codes.SNOMED_RESULTS[code]
        found = _qualitative_text(codes.words(concept))
        if found:
            return found
    if isinstance(obs.get("valueString"), str):
        found = _qualitative_text(obs["valueString"])
        if found:
            return found
    for interp in obs.get("interpretation") or ():
        for coding in codes.codings(interp):
            code = coding.partition("|")[2].upper()
            if code in codes.INTERPRETATIONS:
                return codes.INTERPRETATIONS[code]
    return None


def _lab_result(obs: Resource, vocab: Vocabulary) -> LabResult | None:
    kind = codes.jcv_kind(obs.get("code"), vocab)
    if kind is None:
        return None
    qualitative = _qualitative(obs)
    index: Decimal | None = None
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping):
        value = _decimal(quantity.get("value"))
        comparator = quantity.get("comparator")
        if value is not None and comparator in ("<", "<="):
            # "<0.20" is a negative screen, not an index to place in a band.
            if qualitative is None and value <= Decimal("0.20"):
                qualitative = Antibody.NEGATIVE
        else:
            index = value
    if qualitative is None and index is None:
        return None
    status = str(obs.get("status", "unknown"))
    return LabResult(
        source=ref_of(obs),
        effective=_effective(obs, "issued"),
        use=OBSERVATION_USE.get(status, ResultUse.SHOW),
        status=status,
        qualitative=qualitative,
        index=index,
        matched_by_text=kind[1],
        label=codes.label(obs.get("code")),
    )


class _Medications:
    """Resolves ``medicationReference`` through contained, included or bundled Medications."""

    def __init__(self, resources: Iterable[Resource], full_urls: Mapping[str, Resource]):
        self.by_ref: dict[str, Resource] = {
            ref_of(r): r for r in resources if r.get("resourceType") == "Medication"
        }
        self.full_urls = full_urls

    def concept(self, resource: Resource) -> Mapping[str, Any] | None:
        if isinstance(resource.get("medicationCodeableConcept"), Mapping):
            return dict(resource["medicationCodeableConcept"])
        reference = resource.get("medicationReference")
        if not isinstance(reference, Mapping):
            return None
        ref = reference.get("reference")
        medication: Resource | None = None
        if isinstance(ref, str):
            if ref.startswith("#"):
                medication = next(
                    (c for c in resource.get("contained") or () if c.get("id") == ref[1:]), None
                )
            elif ref in self.full_urls:
                medication = self.full_urls[ref]
            else:
                medication = self.by_ref.get("/".join(ref.split("/")[-2:]))
        if medication is not None and isinstance(medication.get("code"), Mapping):
            return dict(medication["code"])
        display = reference.get("display")
        return {"text": display} if isinstance(display, str) else None


def extract_inputs(
    resources: Iterable[Resource],
    patient_id: str,
    *,
    code_sets: CodeSets | None = None,
    full_urls: Mapping[str, Resource] | None = None,
) -> Inputs:
    """Build ``Inputs`` for ``patient_id``; raises ``ForeignResourceError`` on mixed charts."""
    vocab = Vocabulary.from_config(code_sets)
    resources = list(resources)
    meds = _Medications(resources, full_urls or {})
    labs: list[LabResult] = []
    infusions: list[Infusion] = []
    evidence: list[MedicationEvidence] = []
    versions: dict[str, str] = {}

    for resource in resources:
        owner = subject_patient(resource)
        if owner is not None and owner != patient_id:
            raise ForeignResourceError(ref_of(resource), f"Patient/{owner}")
        kind = resource.get("resourceType")
        status = str(resource.get("status", "unknown"))
        record: LabResult | Infusion | MedicationEvidence | None = None
        if kind == "Observation":
            record = _lab_result(resource, vocab)
            if record is not None:
                labs.append(record)
        elif kind in NOT_GIVEN:
            if status in NOT_GIVEN[kind] and kind != "MedicationAdministration":
                continue
            if kind == "MedicationRequest" and resource.get("intent") in NOT_ORDERS:
                continue
            concept = meds.concept(resource)
            found = codes.medication_class(concept, vocab)
            if found is None:
                continue
            agent_class, agent = found
            when = (
                parse_date(resource.get("authoredOn"))
                if kind == "MedicationRequest"
                else _effective(resource, "dateAsserted")
            )
            if kind == "MedicationAdministration" and agent_class is AgentClass.NATALIZUMAB:
                record = Infusion(ref_of(resource), when, status, codes.label(concept))
                infusions.append(record)
            elif status not in NOT_GIVEN[kind]:
                record = MedicationEvidence(
                    ref_of(resource), agent_class, agent, when, status, codes.label(concept)
                )
                evidence.append(record)
        meta = resource.get("meta")
        version = meta.get("versionId") if isinstance(meta, Mapping) else None
        if record is not None and isinstance(version, str):
            versions[ref_of(resource)] = version

    return replace(
        Inputs(
            patient=f"Patient/{patient_id}",
            lab_results=tuple(labs),
            infusions=tuple(infusions),
            medications=tuple(evidence),
        ),
        versions=tuple(sorted(versions.items())),
    )

