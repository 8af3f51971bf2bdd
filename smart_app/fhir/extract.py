"""FHIR R4 JSON → the engine's plain input records.

Reads plain dicts with the standard library (a heavy chart parses in milliseconds; full model
validation of every read would cost a quarter of a second) and keeps, for every record, the
reference of the resource it came from. A resource of another patient is an error, never data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ..config import CodeSets
from ..risk.records import (
    COMPARATORS,
    AgentClass,
    Antibody,
    BrainMri,
    Conflict,
    Copy,
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
# Status "unknown" is not among them: it counts as use, the cautious reading (§5), and an
# unknown-status natalizumab administration is weighed as a possible infusion (§4).
NOT_GIVEN = {
    "MedicationAdministration": {"not-done", "entered-in-error"},
    "MedicationStatement": {"entered-in-error", "not-taken", "intended"},
    "MedicationRequest": {"entered-in-error", "cancelled", "draft"},
}
NOT_ORDERS = {"proposal", "plan", "option"}
# A lab value longer than this is neither a number nor a short result word: it is reported as
# unreadable, and no pattern ever runs over an unbounded string from the EHR.
MAX_VALUE_TEXT = 200
MAX_INDEX_DIGITS = 20


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
    """A plausible index value, or None: finite, not negative, at most 20 significant digits
    and between 1e-7 and 1e6 in size (a 5,000-digit integer or 1e99999999 is not a lab value,
    and formatting it would take the worker down)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and (len(value) > MAX_VALUE_TEXT or not value.isascii()):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not number.is_finite() or number < 0 or len(number.as_tuple().digits) > MAX_INDEX_DIGITS:
        return None
    if number != 0 and not -7 <= number.adjusted() <= 5:
        return None
    return number


# Comparators as laboratories write them (docs/clinical-basis.md §3), longest first so that
# "<=" is never read as "<" followed by "=", nor "less than or equal to" as "less than": reading
# "≤0.20" as "<0.20" would turn a result that may need the confirmatory step into a negative.
# Anything else before the number ("not less than", "≈", "about") leaves the value unreadable.
_COMPARATOR_NOTATIONS: tuple[tuple[str, str], ...] = tuple(sorted(
    {
        "<=": "<=", ">=": ">=", "<": "<", ">": ">",
        "≤": "<=", "≥": ">=", "⩽": "<=", "⩾": ">=", "≦": "<=", "≧": ">=",
        "＜＝": "<=", "＞＝": ">=", "＜=": "<=", "＞=": ">=", "＜": "<", "＞": ">",
        "less than or equal to": "<=", "greater than or equal to": ">=",
        "less than": "<", "greater than": ">", "more than": ">",
    }.items(),
    key=lambda item: -len(item[0]),
))


def read_comparator(text: str) -> tuple[str, str] | None:
    """(ASCII comparator, the rest) of a value that starts with one, in any notation above;
    ("", text) without one; None when the text is too long to be a lab value."""
    if len(text) > MAX_VALUE_TEXT:
        return None
    rest = " ".join(text.split())  # "less  than" as written by a free-text interface
    for written, comparator in _COMPARATOR_NOTATIONS:
        start = rest[:len(written)]
        if start == written or (start.isascii() and start.lower() == written):
            # Words need a boundary: "less thanx" is not a comparator.
            after = rest[len(written):]
            if written[-1].isalpha() and after[:1].isalpha():
                return "", rest
            return comparator, " ".join(after.split())
    return "", rest


def parse_number(text: str) -> tuple[str, Decimal] | None:
    """("<", 0.20) for "<0.20", "≤0.20" or "less than or equal to 0.20"; ("", 2.35) for
    " 2.35 ": a plain decimal with an optional comparator in any common notation, parsed
    without a regular expression (no backtracking, linear in the bounded text); ASCII digits
    only, so "²" or Arabic-Indic digits are not silently read as numbers."""
    found = read_comparator(text)
    if found is None:
        return None
    comparator, rest = found
    whole, dot, fraction = rest.partition(".")
    if not (whole.isascii() and whole.isdigit()):
        return None
    if dot and not (fraction.isascii() and fraction.isdigit()):
        return None
    number = _decimal(rest)
    return None if number is None else (comparator, number)


_WORDS_NEGATIVE = re.compile(
    r"\b(not\s+detected|negative|neg|non-?reactive|absent|undetected)\b", re.IGNORECASE
)
_WORDS_INDETERMINATE = re.compile(
    r"\b(indeterminate|equivocal|inconclusive|borderline|ind)\b", re.IGNORECASE
)
_WORDS_POSITIVE = re.compile(r"\b(positive|pos|detected|reactive|present)\b", re.IGNORECASE)


def _qualitative_text(text: str) -> Antibody | None:
    if len(text) > MAX_VALUE_TEXT:
        return None
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
    text = obs.get("valueString")
    if isinstance(text, str) and parse_number(text) is None:
        found = _qualitative_text(text)
        if found:
            return found
    for interp in codes.items(obs.get("interpretation")):
        for coding in codes.codings(interp):
            code = coding.partition("|")[2].upper()
            if code in codes.INTERPRETATIONS:
                return codes.INTERPRETATIONS[code]
    return None


def _numeric(obs: Resource) -> tuple[str, Decimal | None]:
    """(comparator, value) of a valueQuantity, or of a valueString such as "2.35" or "<0.20";
    a comparator that is not one of < <= > >= (e.g. "ad") makes the value unreadable."""
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping):
        comparator = quantity.get("comparator")
        value = _decimal(quantity.get("value"))
        if comparator is None:
            return "", value
        if isinstance(comparator, str):  # a Unicode "≥" sent in place of the FHIR code ">="
            read = read_comparator(comparator)
            comparator = read[0] if read is not None and not read[1] else comparator
        return (comparator, value) if comparator in COMPARATORS else ("", None)
    text = obs.get("valueString")
    parsed = parse_number(text) if isinstance(text, str) else None
    return parsed if parsed is not None else ("", None)


def _lab_result(obs: Resource, vocab: Vocabulary) -> LabResult | None:
    kind = codes.jcv_kind(obs.get("code"), vocab)
    if kind is None:
        return None
    if "dataAbsentReason" in obs and not any(k.startswith("value") for k in obs):
        return None  # no result was produced (e.g. a cancelled or unsatisfactory specimen)
    qualitative = _qualitative(obs)
    comparator, index = _numeric(obs)
    note = ""
    unreadable = False
    if index is None:
        comparator = ""
    if qualitative is None and index is None:
        # A JCV result we cannot read must stand out, never vanish: an older result would
        # silently take its place. Alone, it makes its test indeterminate.
        note = f"value {_shown_value(obs)!r} could not be read"
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
        comparator=comparator,
    )


def _short(value: Any) -> str:
    """At most 40 characters of a value, without ever formatting a huge number in full."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return "a number of more than 40 digits"
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > 40:
        return "a number out of range"
    if isinstance(value, str):
        return value[:40]
    if isinstance(value, Mapping | list):
        return type(value).__name__
    return str(value)[:40]


def _shown_value(obs: Resource) -> str:
    for key, value in obs.items():
        if key.startswith("value"):
            if isinstance(value, Mapping):
                return codes.words(value)[:40] or _short(value.get("value", "")) or key
            return _short(value)
    return "no value"


def _lab_results(obs: Resource, vocab: Vocabulary) -> list[LabResult]:
    """An Observation, or its components when a lab reports result and index as components."""
    found = _lab_result(obs, vocab)
    if found is not None:
        return [found]
    results = []
    for n, component in enumerate(codes.items(obs.get("component"))):
        if not isinstance(component, Mapping):
            continue
        part = {**obs, **component, "id": f"{obs.get('id')}"}
        part.pop("component", None)
        result = _lab_result(part, vocab)
        if result is not None:
            results.append(replace(result, label=result.label or f"component {n}"))
    return results


def _named(concept: Any) -> Mapping[str, Any] | None:
    """The concept, or None when it carries neither a coding nor any text (unidentified)."""
    if not isinstance(concept, Mapping) or not (codes.codings(concept) or codes.words(concept)):
        return None
    return dict(concept)


class _Medications:
    """Resolves ``medicationReference`` through contained, included or bundled Medications.

    A reference that resolves to nothing the app can read is *unidentified* (None), never "not
    natalizumab"; a display on the reference naming the drug still identifies it. Every copy
    of an included Medication is kept: copies that nothing orders are weighed like any other
    conflicting copies (docs/clinical-basis.md §8).
    """

    def __init__(self, groups: Iterable[Sequence[Resource]], full_urls: Mapping[str, Resource]):
        self.by_ref: dict[str, Sequence[Resource]] = {
            ref_of(g[0]): g for g in groups if g and g[0].get("resourceType") == "Medication"
        }
        self.full_urls = full_urls

    def _included(self, resource: Resource) -> tuple[str | None, Sequence[Resource]]:
        """(the Medication's type/id, its copies) for a reference outside the resource."""
        reference = resource.get("medicationReference")
        ref = reference.get("reference") if isinstance(reference, Mapping) else None
        if not isinstance(ref, str) or ref.startswith("#"):
            return None, ()
        if ref in self.full_urls:
            found = self.full_urls[ref]
            key = ref_of(found)
            return key, self.by_ref.get(key, (found,))
        key = "/".join(unversioned(ref).split("/")[-2:])
        return key, self.by_ref.get(key, ())

    def conflicted(self, resource: Resource) -> str | None:
        """The included Medication this resource names when it came in unordered copies."""
        if isinstance(resource.get("medicationCodeableConcept"), Mapping):
            return None
        key, copies = self._included(resource)
        return key if len(copies) > 1 else None

    def concepts(self, resource: Resource) -> list[Mapping[str, Any] | None]:
        """The medication concept, once per copy of the Medication it names (usually one)."""
        if isinstance(resource.get("medicationCodeableConcept"), Mapping):
            return [_named(resource["medicationCodeableConcept"])]
        reference = resource.get("medicationReference")
        if not isinstance(reference, Mapping):
            return [None]
        ref = reference.get("reference")
        medications: Sequence[Resource] = ()
        if isinstance(ref, str) and ref.startswith("#"):
            contained = next(
                (c for c in codes.items(resource.get("contained"))
                 if isinstance(c, Mapping) and c.get("id") == ref[1:]),
                None,
            )
            medications = (contained,) if contained is not None else ()
        elif isinstance(ref, str):
            medications = self._included(resource)[1]
        display = reference.get("display")
        shown = _named({"text": display}) if isinstance(display, str) else None
        return [_named(m.get("code")) or shown for m in medications] or [shown]

    def concept(self, resource: Resource) -> Mapping[str, Any] | None:
        return self.concepts(resource)[0]


def _version_key(resource: Resource) -> tuple[int, str]:
    meta = resource.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    version = meta.get("versionId")
    version = version if isinstance(version, str) and len(version) <= 18 else ""
    updated = meta.get("lastUpdated")
    return (
        int(version) if version.isascii() and version.isdigit() else -1,
        updated[:40] if isinstance(updated, str) else "",
    )


def _content(resource: Resource) -> str:
    """A canonical text of a resource, to tell copies apart and order them independently of
    the order the EHR sent them."""
    try:
        return json.dumps(resource, sort_keys=True, default=str, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError):
        return "~unprintable"


def _newest(copies: Sequence[Resource]) -> list[Resource]:
    """The newest copies of one resource by ``meta.versionId``, then ``meta.lastUpdated``;
    several distinct ones when nothing orders them (canonically sorted)."""
    if len(copies) == 1:  # the usual case: nothing to order, no canonical text needed
        return list(copies)
    best = max(_version_key(r) for r in copies)
    distinct = {_content(r): r for r in copies if _version_key(r) == best}
    return [distinct[k] for k in sorted(distinct)]


def newest_copies(copies: Sequence[Resource]) -> list[Resource]:
    """The copy rule for callers holding the copies of one resource (the worklist's staged
    Patients): the newest, or the several distinct newest when nothing orders them."""
    return _newest(copies)


def latest_versions(resources: Iterable[Resource]) -> list[Resource]:
    """One resource per type/id: the newest version (a history Bundle holds several, and an
    entered-in-error v2 must replace its v1). Conflicting copies that nothing orders give the
    first in canonical order here; ``extract_inputs`` weighs them all."""
    return [copies[0] for copies in _resource_copies(resources)]


def _resource_copies(resources: Iterable[Resource]) -> list[list[Resource]]:
    groups: dict[str, list[Resource]] = {}
    for n, resource in enumerate(resources):
        rid = resource.get("id")
        key = ref_of(resource) if isinstance(rid, str) and rid else f"#{n}"
        groups.setdefault(key, []).append(resource)
    return [_newest(copies) for copies in groups.values()]


def _medication_evidence(resource: Resource, kind: str, status: str, concept: Any,
                         found: tuple[AgentClass, str] | None,
                         excluded: str = "") -> MedicationEvidence:
    period = resource.get("effectivePeriod")
    period = period if isinstance(period, Mapping) else {}
    every = None
    if kind == "MedicationRequest":
        when, ended, noted = parse_date(resource.get("authoredOn")), None, None
        every = dosing_interval_days(resource)
    else:
        # dateAsserted is when the history was written down, not when the drug was taken: it
        # only bounds the start, it never dates the use itself.
        when = _effective(resource)
        ended = parse_date(period.get("end"))
        noted = parse_date(resource.get("dateAsserted"))
    agent_class, agent = found or (AgentClass.UNRESOLVED, "unidentified medication")
    return MedicationEvidence(
        ref_of(resource), agent_class, agent, when, status, codes.label(concept),
        ended=ended, noted=noted, excluded=excluded, every_days=every,
    )


_UNIT_DAYS = {"d": 1, "wk": 7, "mo": 30}


def dosing_interval_days(order: Resource) -> int | None:
    """Days between doses from the first ``dosageInstruction.timing.repeat`` (``frequency``
    per ``period`` ``periodUnit``), or None when the order does not say (or says in hours)."""
    dosage = order.get("dosageInstruction")
    first = dosage[0] if isinstance(dosage, list) and dosage else None
    timing = first.get("timing") if isinstance(first, Mapping) else None
    repeat = timing.get("repeat") if isinstance(timing, Mapping) else None
    if not isinstance(repeat, Mapping):
        return None
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    frequency = repeat.get("frequency", 1)
    if (isinstance(period, bool) or not isinstance(period, int | float) or period <= 0
            or unit not in _UNIT_DAYS or isinstance(frequency, bool)
            or not isinstance(frequency, int) or frequency <= 0):
        return None
    days = int(period * _UNIT_DAYS[unit] // frequency)
    return days if 0 < days <= 366 else None


def _excluded(kind: str, status: str, resource: Resource) -> str:
    """Why a medication record is not evidence of use (listed, never dropped silently)."""
    if status in NOT_GIVEN[kind]:
        return f"status {status}"
    intent = resource.get("intent")
    if kind == "MedicationRequest" and intent in NOT_ORDERS:
        return f"order intent {intent}"
    return ""


@dataclass(frozen=True)
class _Reader:
    vocab: Vocabulary
    meds: _Medications
    patient_id: str

    def alternatives(self, resource: Resource) -> list[Copy]:
        """The records one resource yields, once per copy of the Medication it names."""
        if resource.get("resourceType") not in NOT_GIVEN:
            return [self.records(resource)]
        return [self.records(resource, c) for c in self.meds.concepts(resource)]

    def records(self, resource: Resource, medication: Any = ...) -> Copy:
        """The engine records one resource yields (none for resources the estimate ignores);
        ``medication`` is the medication concept to read it with (default: its first)."""
        owner = subject_patient(resource)
        if owner is not None and owner != self.patient_id:
            raise ForeignResourceError(ref_of(resource), f"Patient/{owner}")
        kind = resource.get("resourceType")
        status = resource.get("status")
        status = status[:40] if isinstance(status, str) else "unknown"
        if kind == "Observation":
            return Copy(lab_results=tuple(_lab_results(resource, self.vocab)))
        if not isinstance(kind, str) or kind not in NOT_GIVEN:
            return Copy()
        concept = self.meds.concept(resource) if medication is ... else medication
        found = codes.medication_class(concept, self.vocab)
        if found is None and concept is not None:
            return Copy()  # identified, and not a drug the estimate is about
        if kind == "MedicationAdministration" and found is not None and found[0] is (
            AgentClass.NATALIZUMAB
        ):
            when = _effective(resource)
            return Copy(infusions=(Infusion(ref_of(resource), when, status,
                                            codes.label(concept)),))
        excluded = _excluded(kind, status, resource)
        if excluded and found is None:
            return Copy()  # a void record of a medication nobody can identify: no evidence
        return Copy(medications=(
            _medication_evidence(resource, kind, status, concept, found, excluded),
        ))


def _version(resource: Resource) -> str | None:
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, Mapping) else None
    return version if isinstance(version, str) else None


#: Statuses that say the scan did not happen, or the record is void.
MRI_VOID = frozenset({"cancelled", "entered-in-error", "not-done", "preparation", "on-hold",
                      "stopped", "in-progress", "unknown"})
_MRI_KIND = {"DiagnosticReport": "report", "ImagingStudy": "study", "Procedure": "procedure"}


def _mri_codes(resource: Resource) -> list[str]:
    kind = resource.get("resourceType")
    if kind == "ImagingStudy":
        return [c for concept in codes.items(resource.get("procedureCode"))
                for c in codes.codings(concept)]
    return codes.codings(resource.get("code"))


def _mri_date(resource: Resource) -> date | None:
    kind = resource.get("resourceType")
    if kind == "ImagingStudy":
        return parse_date(resource.get("started"))
    if kind == "Procedure":
        found = parse_date(resource.get("performedDateTime"))
        period = resource.get("performedPeriod")
        if found is None and isinstance(period, Mapping):
            found = parse_date(period.get("start"))
        return found
    return _effective(resource)  # a report: when the scan was done, not when it was issued


def brain_mris(resources: Iterable[Resource], patient_id: str,
               code_sets: CodeSets | None = None) -> tuple[BrainMri, ...]:
    """The brain MRIs among imaging reports, studies and procedures, matched by code only (a
    name match could take an MR angiogram for a brain MRI and push the due date back).

    Records of other patients are skipped (``extract_inputs`` refuses them); void records and
    scans not done are left out. Oldest first, in a canonical order.
    """
    wanted = codes.BRAIN_MRI | set(code_sets.mri if code_sets else ())
    found: dict[str, BrainMri] = {}
    for resource in latest_versions(resources):
        kind = resource.get("resourceType")
        if kind not in _MRI_KIND or subject_patient(resource) != patient_id:
            continue
        status = resource.get("status")
        status = status[:40] if isinstance(status, str) else "unknown"
        if status in MRI_VOID:
            continue
        if not wanted.intersection(_mri_codes(resource)):
            continue
        concept = (codes.items(resource.get("procedureCode")) or [None])[0] \
            if kind == "ImagingStudy" else resource.get("code")
        mri = BrainMri(ref_of(resource), _mri_date(resource), _MRI_KIND[str(kind)], status,
                       codes.label(concept if isinstance(concept, Mapping) else None))
        found[mri.source] = mri
    return tuple(sorted(found.values(), key=lambda m: (m.when or date.min, m.source)))


def extract_inputs(
    resources: Iterable[Resource],
    patient_id: str,
    *,
    code_sets: CodeSets | None = None,
    full_urls: Mapping[str, Resource] | None = None,
    unread: Iterable[str] = (),
    not_offered: Iterable[str] = (),
) -> Inputs:
    """Build ``Inputs`` for ``patient_id``; raises ``ForeignResourceError`` on mixed charts.

    ``unread`` and ``not_offered`` name the resource types the EHR did not let the app read
    and those it does not offer at all; the engine treats them as unknown
    (docs/clinical-basis.md §8).
    Records come out in a canonical order, so the order the EHR sent them never matters.
    """
    vocab = Vocabulary.from_config(code_sets)
    groups = _resource_copies(resources)
    meds = _Medications(groups, full_urls or {})
    reader = _Reader(vocab, meds, patient_id)
    labs: list[LabResult] = []
    infusions: list[Infusion] = []
    evidence: list[MedicationEvidence] = []
    versions: dict[str, str] = {}
    conflicts: list[Conflict] = []
    unordered: list[str] = []
    # Resources naming a Medication that came in unordered copies: their records, once per
    # copy, are weighed together as that Medication's conflict (one copy is current for all).
    dependents: dict[str, list[list[Copy]]] = {}

    def keep(record: Copy) -> None:
        labs.extend(record.lab_results)
        infusions.extend(record.infusions)
        evidence.extend(record.medications)

    for copies in groups:
        medication = meds.conflicted(copies[0]) if len(copies) == 1 else None
        if medication is not None:
            dependents.setdefault(medication, []).append(reader.alternatives(copies[0]))
            continue
        found = [alt for c in copies for alt in reader.alternatives(c)]
        distinct = list(dict.fromkeys(found))
        if len(distinct) > 1:
            conflicts.append(Conflict(ref_of(copies[0]), tuple(distinct)))
            continue
        record = distinct[0]
        keep(record)
        if len(copies) > 1 and (record != Copy() or copies[0].get("resourceType") == "Patient"):
            unordered.append(ref_of(copies[0]))
        version = _version(copies[0])
        if version is not None and record != Copy():
            versions[ref_of(copies[0])] = version

    for medication, per_resource in dependents.items():
        merged = [
            Copy(
                lab_results=tuple(sorted(
                    (r for alts in per_resource for r in alts[n].lab_results), key=repr)),
                infusions=tuple(sorted(
                    (i for alts in per_resource for i in alts[n].infusions), key=repr)),
                medications=tuple(sorted(
                    (m for alts in per_resource for m in alts[n].medications), key=repr)),
            )
            for n in range(len(per_resource[0]))
        ]
        distinct = list(dict.fromkeys(merged))
        if len(distinct) > 1:
            conflicts.append(Conflict(medication, tuple(distinct)))
        else:
            keep(distinct[0])
            unordered.append(medication)

    return Inputs(
        patient=f"Patient/{patient_id}",
        lab_results=tuple(sorted(labs, key=repr)),
        infusions=tuple(sorted(infusions, key=repr)),
        medications=tuple(sorted(evidence, key=repr)),
        versions=tuple(sorted(versions.items())),
        unread=tuple(sorted(set(unread))),
        not_offered=tuple(sorted(set(not_offered))),
        conflicts=tuple(sorted(conflicts, key=lambda c: c.reference)),
        unordered=tuple(sorted(set(unordered))),
        mris=brain_mris([g[0] for g in groups], patient_id, code_sets),
    )
