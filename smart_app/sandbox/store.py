"""In-memory FHIR resource store: fixture loading, indexes, search and (conditional) create.

Everything is indexed once at load time (type/id, patient compartment, date range) so that a
search over a thousand resources costs a few milliseconds. One lock serialises writes and the
check-then-insert of conditional create, which is what makes two concurrent conditional creates
produce exactly one resource.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import fhir_dates

JSON = dict[str, Any]

#: Fields whose reference puts a resource into a patient's compartment.
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")
#: Search parameters every type understands here; anything else is a 400 (strict on purpose).
_RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_total", "_format", "_summary", "_page", "_elements"}
)
_FILTER_PARAMS = frozenset(
    {
        "_id",
        "_lastUpdated",
        "patient",
        "subject",
        "code",
        "category",
        "status",
        "date",
        "identifier",
        "encounter",
        "medication",
        "type",
        "modality",  # ImagingStudy: the modality of any series
    }
)
SEARCH_PARAMS = _RESULT_PARAMS | _FILTER_PARAMS

#: Types in the Patient compartment: a patient-scoped token only sees its own patient's ones.
#: Other types (Medication, Practitioner, Organization...) are shared reference data.
COMPARTMENT_TYPES = frozenset(
    {
        "Patient", "Observation", "MedicationAdministration", "MedicationRequest",
        "MedicationStatement", "MedicationDispense", "Condition", "RiskAssessment", "Encounter",
        "Procedure", "DiagnosticReport", "AllergyIntolerance", "Immunization", "CarePlan",
        "ServiceRequest", "DocumentReference", "Coverage", "FamilyMemberHistory", "Goal",
        "ImagingStudy", "Specimen", "QuestionnaireResponse", "Flag", "ClinicalImpression",
        "DetectedIssue", "CareTeam", "EpisodeOfCare", "Consent", "Communication", "List",
        "Composition", "NutritionOrder", "DeviceRequest", "Media", "BodyStructure", "Basic",
    }
)  # fmt: skip

PRACTITIONER_DR_ADA: JSON = {
    "resourceType": "Practitioner",
    "id": "dr-ada",
    "active": True,
    "name": [{"family": "Lovelace", "given": ["Ada"], "prefix": ["Dr."]}],
    "qualification": [{"code": {"text": "Neurologist"}}],
}


class SearchError(ValueError):
    """A search request the store cannot answer (unknown parameter, bad value): HTTP 400."""


class PreconditionFailed(ValueError):
    """Conditional create matched more than one resource: HTTP 412."""


@dataclass(frozen=True)
class Entry:
    """One stored resource plus the values its searches need, computed once."""

    resource: JSON
    type: str
    id: str
    patient: str | None
    dates: fhir_dates.Range | None
    seq: int
    #: When the server last changed it (epoch seconds): ``meta.lastUpdated``, else 0.
    updated: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class PatientListing:
    """A row of the sandbox home page: who, and the case in a line."""

    id: str
    name: str
    summary: str  # the scenario's technical note (what the fixture exercises)
    clinical: str = ""  # the case in clinical words
    birth_date: str | None = None
    gender: str | None = None
    mrn: str | None = None


def _patient_facts(patient: Mapping[str, Any] | None) -> dict[str, str | None]:
    """Birth date, sex and MRN of a Patient resource, for the list (untrusted: escaped later)."""
    if not patient:
        return {"birth_date": None, "gender": None, "mrn": None}
    mrn = None
    for ident in patient.get("identifier", []) or []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            mrn = ident["value"]
            break
    birth, gender = patient.get("birthDate"), patient.get("gender")
    return {
        "birth_date": birth if isinstance(birth, str) else None,
        "gender": gender if isinstance(gender, str) else None,
        "mrn": mrn,
    }


def ref_id(value: str, resource_type: str) -> str | None:
    """``Patient/x``, ``x`` or ``http://.../Patient/x`` -> ``x``; other types -> ``None``."""
    parts = value.rstrip("/").split("/")
    if len(parts) == 1:
        return parts[0] or None
    return parts[-1] if parts[-2] == resource_type else None


def patient_of(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for name in _PATIENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            found = ref_id(value["reference"], "Patient")
            if found and "/" in value["reference"]:
                return found
    return None


def _codings(value: Any) -> Iterator[Mapping[str, Any]]:
    """All Coding objects of a CodeableConcept or list of them."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            yield from (c for c in item.get("coding", []) if isinstance(c, dict))


def _token_matches(token: str, system: Any, code: Any) -> bool:
    if "|" not in token:
        return bool(code == token)
    want_system, want_code = token.split("|", 1)
    if want_system == "":
        return system is None and code == want_code
    if want_code == "":
        return bool(system == want_system)
    return bool(system == want_system and code == want_code)


def _rewrite_refs(node: Any, mapping: Mapping[str, str]) -> Any:
    """Resolve ``urn:uuid:`` / fullUrl references of a transaction bundle to ``Type/id``."""
    if isinstance(node, dict):
        return {
            k: (
                mapping.get(v, v)
                if k == "reference" and isinstance(v, str)
                else _rewrite_refs(v, mapping)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, mapping) for v in node]
    return node


def _bundle_resources(data: Any, source: Path) -> list[JSON]:
    if not isinstance(data, dict) or "resourceType" not in data:
        raise ValueError(f"{source}: not a FHIR resource")
    if data["resourceType"] != "Bundle":
        return [data]
    resources: list[JSON] = []
    mapping: dict[str, str] = {}
    for entry in data.get("entry", []):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise ValueError(f"{source}: bundle entry without a resource")
        resource = dict(resource)
        resource.setdefault("id", str(uuid.uuid4()))
        ref = f"{resource['resourceType']}/{resource['id']}"
        if isinstance(entry.get("fullUrl"), str):
            mapping[entry["fullUrl"]] = ref
        resources.append(resource)
    return [_rewrite_refs(r, mapping) for r in resources] if mapping else resources


@dataclass
class FhirStore:
    """The sandbox's FHIR data. Mutable by design; guarded by ``lock``."""

    fixtures_dir: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    _by_type: dict[str, dict[str, Entry]] = field(default_factory=dict)
    _by_patient: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)
    _seq: int = 0
    patients: list[PatientListing] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reload()

    # -- loading -------------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)load every fixture bundle; created resources are dropped."""
        with self.lock:
            self._by_type = {}
            self._by_patient = {}
            self._seq = 0
            files = sorted(self.fixtures_dir.glob("*.json")) if self.fixtures_dir.is_dir() else []
            for path in files:
                if path.name == "index.json":
                    continue
                data = json.loads(path.read_text(encoding="utf-8"))
                for resource in _bundle_resources(data, path):
                    self._put(resource)
            if "dr-ada" not in self._by_type.get("Practitioner", {}):
                self._put(copy.deepcopy(PRACTITIONER_DR_ADA))
            self.patients = self._listings(self.fixtures_dir / "index.json")

    def _listings(self, index: Path) -> list[PatientListing]:
        known = self._by_type.get("Patient", {})
        if index.is_file():
            data = json.loads(index.read_text(encoding="utf-8"))
            rows = data.get("patients", []) if isinstance(data, dict) else data
            out = [
                PatientListing(
                    str(r["id"]), str(r.get("name", r["id"])), str(r.get("summary", "")),
                    str(r.get("clinical", "")),
                    **_patient_facts(known[str(r["id"])].resource
                                     if str(r["id"]) in known else None),
                )
                for r in rows
                if isinstance(r, dict) and "id" in r
            ]
            if out:
                return out
        return [PatientListing(e.id, _display_name(e.resource), "", "",
                               **_patient_facts(e.resource))
                for e in known.values()]

    def _put(self, resource: JSON) -> Entry:
        self._seq += 1
        entry = Entry(
            resource=resource,
            type=str(resource["resourceType"]),
            id=str(resource["id"]),
            patient=patient_of(resource),
            dates=fhir_dates.resource_range(resource),
            seq=self._seq,
            updated=_last_updated(resource),
        )
        bucket = self._by_type.setdefault(entry.type, {})
        old = bucket.get(entry.id)
        if old is not None and old.patient is not None:
            self._by_patient[(entry.type, old.patient)].remove(old)
        bucket[entry.id] = entry
        if entry.patient is not None:
            self._by_patient.setdefault((entry.type, entry.patient), []).append(entry)
        return entry

    def put(self, resource: JSON) -> Entry:
        """Store a copy of ``resource`` as given (its id kept), replacing any with that id."""
        with self.lock:
            return self._put(copy.deepcopy(resource))

    # -- reads ---------------------------------------------------------------------------------
    def get(self, resource_type: str, resource_id: str) -> Entry | None:
        with self.lock:
            return self._by_type.get(resource_type, {}).get(resource_id)

    def resolve(self, reference: str) -> Entry | None:
        """Resolve a relative (``Type/id``) or absolute reference to a stored resource."""
        parts = reference.rstrip("/").split("/")
        if len(parts) < 2:
            return None
        return self.get(parts[-2], parts[-1])

    def patient_ids(self) -> list[str]:
        with self.lock:
            return list(self._by_type.get("Patient", {}))

    def types(self) -> list[str]:
        with self.lock:
            return sorted(self._by_type)

    def search(
        self,
        resource_type: str,
        params: Iterable[tuple[str, str]],
        compartment: str | None = None,
    ) -> list[Entry]:
        """Entries of ``resource_type`` matching all ``params`` (AND; commas inside are OR).

        ``compartment`` limits results to one patient (patient-scoped tokens). Result order is
        load/creation order unless ``_sort`` is given. Raises ``SearchError`` for a bad query.
        """
        filters: list[tuple[str, str]] = []
        sort: str | None = None
        for name, value in params:
            base = name.split(":", 1)[0]
            if base not in SEARCH_PARAMS or (":" in name and base not in ("code", "category")):
                raise SearchError(f"Unsupported search parameter '{name}' for {resource_type}")
            if base == "_sort":
                if value not in ("date", "-date"):
                    raise SearchError(f"Unsupported _sort '{value}' (only date, -date)")
                sort = value
            elif base in _FILTER_PARAMS:
                filters.append((base, value))

        patient_filter = compartment
        for name, value in filters:
            if name in ("patient", "subject"):
                wanted = ref_id(value, "Patient")
                if wanted is None:
                    raise SearchError(f"{name} must reference a Patient")
                if patient_filter is not None and patient_filter != wanted:
                    return []
                patient_filter = wanted

        with self.lock:
            if resource_type == "Patient" and patient_filter is not None:
                found = self._by_type.get("Patient", {}).get(patient_filter)
                candidates = [found] if found else []
            elif patient_filter is not None:
                candidates = list(self._by_patient.get((resource_type, patient_filter), ()))
            else:
                candidates = list(self._by_type.get(resource_type, {}).values())
            checks = [self._filter(name, value) for name, value in filters]
            result = [e for e in candidates if all(check(e) for check in checks)]
        if sort is not None:
            present = [e for e in result if e.dates is not None]
            absent = [e for e in result if e.dates is None]
            present.sort(key=lambda e: e.dates[0] if e.dates else 0.0, reverse=sort == "-date")
            result = present + absent
        return result

    def _filter(self, name: str, value: str) -> Any:
        """A predicate over entries for one search parameter (comma-separated values = OR)."""
        values = [v for v in value.split(",") if v]
        if not values:
            raise SearchError(f"Empty value for search parameter '{name}'")
        if name in ("patient", "subject"):
            return lambda e: True  # applied through the compartment index
        if name == "_id":
            return lambda e: e.id in values
        if name == "_lastUpdated":
            bounds = []
            for item in values:
                prefix, raw = fhir_dates.split_prefix(item)
                try:
                    bounds.append((prefix, fhir_dates.parse_range(raw)))
                except ValueError as exc:
                    raise SearchError(f"Invalid _lastUpdated '{item}'") from exc
            return lambda e: all(
                fhir_dates.matches(p, (e.updated, e.updated), r) for p, r in bounds
            )
        if name == "status":
            return lambda e: e.resource.get("status") in values
        if name == "date":
            ranges = []
            for item in values:
                prefix, raw = fhir_dates.split_prefix(item)
                try:
                    ranges.append((prefix, fhir_dates.parse_range(raw)))
                except ValueError as exc:
                    raise SearchError(f"Invalid date '{item}'") from exc
            return lambda e: (
                e.dates is not None and any(fhir_dates.matches(p, e.dates, r) for p, r in ranges)
            )
        if name in ("code", "category", "type"):
            return lambda e: any(
                _token_matches(v, c.get("system"), c.get("code"))
                for c in self._concepts(e, name)
                for v in values
            )
        if name == "identifier":
            return lambda e: any(
                _token_matches(v, i.get("system"), i.get("value"))
                for i in e.resource.get("identifier", [])
                if isinstance(i, dict)
                for v in values
            )
        if name == "modality":
            return lambda e: any(
                _token_matches(v, m.get("system"), m.get("code"))
                for series in e.resource.get("series", []) if isinstance(series, dict)
                for m in [series.get("modality")] if isinstance(m, dict)
                for v in values
            )
        if name in ("encounter", "medication"):
            kind = name.capitalize()
            fields = ("encounter", "context") if name == "encounter" else ("medicationReference",)
            wanted = {ref_id(v, kind) for v in values}
            return lambda e: any(
                isinstance(e.resource.get(f), dict)
                and ref_id(str(e.resource[f].get("reference", "")), kind) in wanted
                for f in fields
            )
        raise SearchError(f"Unsupported search parameter '{name}'")  # pragma: no cover

    def _concepts(self, entry: Entry, name: str) -> Iterator[Mapping[str, Any]]:
        resource = entry.resource
        if name == "category":
            yield from _codings(resource.get("category"))
            return
        if name == "type":  # DocumentReference.type (a single CodeableConcept)
            yield from _codings([resource.get("type")])
            return
        yield from _codings(resource.get("code"))
        yield from _codings(resource.get("medicationCodeableConcept"))
        med = resource.get("medicationReference")
        if isinstance(med, dict) and isinstance(med.get("reference"), str):
            target = self._by_type.get("Medication", {}).get(
                med["reference"].rstrip("/").split("/")[-1]
            )
            if target is not None:
                yield from _codings(target.resource.get("code"))

    # -- writes --------------------------------------------------------------------------------
    def amend(self, resource: JSON) -> Entry:
        """Store ``resource`` under its own id (a new version when it exists), stamped now.

        What a clinician's edit in the EHR does to the chart; the control endpoint uses it so
        tests can change a chart between the page opening and the save.
        """
        with self.lock:
            stored = dict(resource)
            stored.setdefault("id", str(uuid.uuid4()))
            old = self.get(str(stored["resourceType"]), str(stored["id"]))
            version = 1
            if old is not None:
                try:
                    version = int(old.resource.get("meta", {}).get("versionId", "1")) + 1
                except (TypeError, ValueError):
                    version = 2
            meta = dict(stored.get("meta") or {})
            meta["versionId"] = str(version)
            meta["lastUpdated"] = datetime.now(UTC).isoformat(timespec="milliseconds")
            stored["meta"] = meta
            return self._put(stored)

    def create(self, resource: JSON) -> Entry:
        """Store a new resource with a server-assigned id and ``meta``."""
        with self.lock:
            stored = dict(resource)
            stored["id"] = str(uuid.uuid4())
            meta = dict(stored.get("meta") or {})
            meta["versionId"] = "1"
            meta["lastUpdated"] = datetime.now(UTC).isoformat(timespec="milliseconds")
            stored["meta"] = meta
            return self._put(stored)

    def conditional_create(
        self,
        resource: JSON,
        criteria: list[tuple[str, str]],
        compartment: str | None,
    ) -> tuple[Entry, bool]:
        """Create unless ``criteria`` match; ``(entry, created)``; >1 match: PreconditionFailed."""
        with self.lock:
            found = self.search(str(resource["resourceType"]), criteria, compartment)
            if len(found) > 1:
                raise PreconditionFailed(f"{len(found)} resources match If-None-Exist")
            if found:
                return found[0], False
            return self.create(resource), True


def _last_updated(resource: Mapping[str, Any]) -> float:
    """``meta.lastUpdated`` as epoch seconds; a fixture without one counts as never changed
    (the epoch), so only what changes while the sandbox runs is found by ``_lastUpdated``."""
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if isinstance(value, str):
        try:
            return fhir_dates.parse_range(value)[0]
        except ValueError:
            pass
    return 0.0


def _display_name(patient: Mapping[str, Any]) -> str:
    for name in patient.get("name", []):
        if isinstance(name, dict):
            if name.get("text"):
                return str(name["text"])
            given = " ".join(str(g) for g in name.get("given", []))
            return f"{given} {name.get('family', '')}".strip()
    return str(patient.get("id", "?"))
