"""FHIR R4 JSON → the engine's plain input records.

Reads plain dicts with the standard library (a heavy chart parses in milliseconds; full model
validation of every read would cost a quarter of a second) and keeps, for every record, the
reference of the resource it came from. A resource of another patient is an error, never data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ..config import CodeSets
from ..risk.antibody import INDEX_CUTOFF, NEGATIVE_BELOW, POSITIVE_ABOVE
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


def unversioned(reference: str) -> str:
    """``Medication/1/_history/3`` → ``Medication/1`` (versioned references are legal FHIR)."""
    return reference.split("/_history/", 1)[0]


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


_WORDS_NEGATIVE = re.compile(
    r"\b(not\s+detected|negative|neg|non-?reactive|absent|undetected)\b", re.IGNORECASE
)
_WORDS_INDETERMINATE = re.compile(
    r"\b(indeterminate|equivocal|inconclusive|borderline|ind)\b", re.IGNORECASE
)
_WORDS_POSITIVE = re.compile(r"\b(positive|pos|detected|reactive|present)\b", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*$")


def _qualitative_text(text: str) -> Antibody | None:
    if _WORDS_NEGATIVE.search(text):  # first: "not detected" and "non-reactive" contain a positive
        return Antibody.NEGATIVE
    if _WORDS_INDETERMINATE.search(text):
        return Antibody.INDETERMINATE
    if _WORDS_POSITIVE.search(text):
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
    if isinstance(obs.get("valueString"), str) and not _NUMBER.match(obs["valueString"]):
        found = _qualitative_text(obs["valueString"])
        if found:
            return found
    for interp in obs.get("interpretation") or ():
        for coding in codes.codings(interp):
            code = coding.partition("|")[2].upper()
            if code in codes.INTERPRETATIONS:
                return codes.INTERPRETATIONS[code]
    return None


def _numeric(obs: Resource) -> tuple[str | None, Decimal | None]:
    """(comparator, value) of a valueQuantity, or of a valueString such as "2.35" or "<0.20"."""
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping):
        comparator = quantity.get("comparator")
        return (comparator if isinstance(comparator, str) else None), _decimal(
            quantity.get("value")
        )
    text = obs.get("valueString")
    match = _NUMBER.match(text) if isinstance(text, str) else None
    if match:
        return match.group(1), _decimal(match.group(2))
    return None, None


def _bounded(
    comparator: str, value: Decimal, qualitative: Antibody | None
) -> tuple[Antibody | None, Decimal | None, str]:
    """Read an index reported as a bound ("<0.20", ">5.0"): keep only what the bound proves."""
    said = f"index reported as {comparator}{value.normalize():f}"
    if comparator in ("<", "<="):
        if value < NEGATIVE_BELOW or (comparator == "<" and value == NEGATIVE_BELOW):
            return qualitative or Antibody.NEGATIVE, None, ""
        return qualitative, None, said  # below a bound above 0.20: the status stays open
    # ">x": the index is above x; it is a usable index only if every value above x shares a band.
    if value >= INDEX_CUTOFF:
        return qualitative or Antibody.POSITIVE, value, said
    if value >= POSITIVE_ABOVE:
        return qualitative or Antibody.POSITIVE, None, said
    return qualitative, None, said


def _lab_result(obs: Resource, vocab: Vocabulary) -> LabResult | None:
    kind = codes.jcv_kind(obs.get("code"), vocab)
    if kind is None:
        return None
    if "dataAbsentReason" in obs and not any(k.startswith("value") for k in obs):
        return None  # no result was produced (e.g. a cancelled or unsatisfactory specimen)
    qualitative = _qualitative(obs)
    comparator, value = _numeric(obs)
    index: Decimal | None = None
    note = ""
    unreadable = False
    if value is not None and comparator:
        qualitative, index, note = _bounded(comparator, value, qualitative)
    elif value is not None:
        index = value
    if qualitative is None and index is None:
        # A JCV result we cannot read must stand out, never vanish: an older result would
        # silently take its place. Alone, it makes its test indeterminate.
        note = note or f"value {_shown_value(obs)!r} could not be read"
        qualitative, unreadable = Antibody.INDETERMINATE, True
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
        note=note,
        unreadable=unreadable,
    )


def _shown_value(obs: Resource) -> str:
    for key, value in obs.items():
        if key.startswith("value"):
            if isinstance(value, Mapping):
                return codes.words(value) or str(value.get("value", ""))[:40] or key
            return str(value)[:40]
    return "no value"


def _lab_results(obs: Resource, vocab: Vocabulary) -> list[LabResult]:
    """An Observation, or its components when a lab reports result and index as components."""
    found = _lab_result(obs, vocab)
    if found is not None:
        return [found]
    results = []
    for n, component in enumerate(obs.get("component") or ()):
        if not isinstance(component, Mapping):
            continue
        part = {**obs, **component, "id": f"{obs.get('id')}"}
        part.pop("component", None)
        result = _lab_result(part, vocab)
        if result is not None:
            results.append(replace(result, label=result.label or f"component {n}"))
    return results


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
                medication = self.by_ref.get("/".join(unversioned(ref).split("/")[-2:]))
        if medication is not None and isinstance(medication.get("code"), Mapping):
            return dict(medication["code"])
        display = reference.get("display")
        return {"text": display} if isinstance(display, str) else None


def _version_key(resource: Resource) -> tuple[int, str]:
    meta = resource.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    version = str(meta.get("versionId", ""))
    return (int(version) if version.isdigit() else -1, str(meta.get("lastUpdated", "")))


def latest_versions(resources: Iterable[Resource]) -> list[Resource]:
    """One resource per type/id: the newest version (a history Bundle holds several, and an
    entered-in-error v2 must replace its v1)."""
    newest: dict[str, Resource] = {}
    order: list[str] = []
    for resource in resources:
        key = ref_of(resource) if resource.get("id") else f"#{len(order)}"
        if key not in newest:
            order.append(key)
            newest[key] = resource
        elif _version_key(resource) >= _version_key(newest[key]):
            newest[key] = resource
    return [newest[key] for key in order]


def _medication_evidence(resource: Resource, kind: str, status: str, concept: Any,
                         found: tuple[AgentClass, str] | None) -> MedicationEvidence:
    period = resource.get("effectivePeriod")
    period = period if isinstance(period, Mapping) else {}
    if kind == "MedicationRequest":
        when, ended, noted = parse_date(resource.get("authoredOn")), None, None
    else:
        # dateAsserted is when the history was written down, not when the drug was taken: it
        # only bounds the start, it never dates the use itself.
        when = _effective(resource)
        ended = parse_date(period.get("end"))
        noted = parse_date(resource.get("dateAsserted"))
    agent_class, agent = found or (AgentClass.UNRESOLVED, "unidentified medication")
    return MedicationEvidence(
        ref_of(resource), agent_class, agent, when, status, codes.label(concept),
        ended=ended, noted=noted,
    )


def extract_inputs(
    resources: Iterable[Resource],
    patient_id: str,
    *,
    code_sets: CodeSets | None = None,
    full_urls: Mapping[str, Resource] | None = None,
) -> Inputs:
    """Build ``Inputs`` for ``patient_id``; raises ``ForeignResourceError`` on mixed charts."""
    vocab = Vocabulary.from_config(code_sets)
    resources = latest_versions(resources)
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
            results = _lab_results(resource, vocab)
            labs.extend(results)
            record = results[0] if results else None
        elif kind in NOT_GIVEN:
            if status in NOT_GIVEN[kind] and kind != "MedicationAdministration":
                continue
            if kind == "MedicationRequest" and resource.get("intent") in NOT_ORDERS:
                continue
            concept = meds.concept(resource)
            found = codes.medication_class(concept, vocab)
            if found is None and concept is not None:
                continue  # identified, and not a drug the estimate is about
            evidence_record = _medication_evidence(resource, kind, status, concept, found)
            if kind == "MedicationAdministration" and evidence_record.agent_class is (
                AgentClass.NATALIZUMAB
            ):
                when = _effective(resource)
                record = Infusion(ref_of(resource), when, status, codes.label(concept))
                infusions.append(record)
            elif status not in NOT_GIVEN[kind]:
                record = evidence_record
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

