"""A FHIR Bundle file → one patient's resources, or a clear reason why not.

Used by the CLI (and the sandbox fixtures): bad input must come back as an error naming what is
wrong, never a traceback and never an estimate over two patients' data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .extract import Resource, ref_of, subject_patient

BUNDLE_TYPES = {"searchset", "collection", "transaction", "batch", "transaction-response",
                "batch-response", "document", "message", "history"}


class BundleError(ValueError):
    """The input is not one patient's FHIR Bundle; ``code`` is the OperationOutcome issue code."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PatientBundle:
    patient_id: str
    resources: tuple[Resource, ...]
    full_urls: Mapping[str, Resource]


def read_bundle(data: Any) -> PatientBundle:
    if not isinstance(data, Mapping):
        raise BundleError("expected a JSON object (a FHIR Bundle)", "structure")
    if data.get("resourceType") != "Bundle":
        kind = data.get("resourceType", "no resourceType")
        raise BundleError(f"expected a FHIR Bundle, got {kind}", "structure")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in BUNDLE_TYPES:
        raise BundleError(f"unknown Bundle.type {str(kind)[:40]!r}", "structure")
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise BundleError("Bundle.entry must be an array", "structure")

    resources: list[Resource] = []
    full_urls: dict[str, Resource] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise BundleError(f"Bundle.entry[{n}] is not an object", "structure")
        resource = entry.get("resource")
        if resource is None:
            continue  # e.g. a batch-response entry with only a response
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise BundleError(f"Bundle.entry[{n}].resource has no resourceType", "structure")
        for key in ("subject", "patient"):
            if key in resource and not isinstance(resource[key], Mapping):
                raise BundleError(
                    f"Bundle.entry[{n}].resource.{key} must be a Reference object", "structure"
                )
        if resource["resourceType"] == "OperationOutcome":
            continue  # searchset warnings from the server, not clinical data
        resources.append(resource)
        if isinstance(entry.get("fullUrl"), str):
            full_urls[entry["fullUrl"]] = resource

    patients = {
        r.get("id") for r in resources if r.get("resourceType") == "Patient" and r.get("id")
    }
    # Subjects written as urn:uuid fullUrls of the bundled Patient count as that patient.
    urn_patients = {
        url: r.get("id") for url, r in full_urls.items() if r.get("resourceType") == "Patient"
    }
    owners: dict[str, str] = {}
    for r in resources:
        owner = subject_patient(r)
        if owner is None:
            subject = r.get("subject") or r.get("patient")
            ref = subject.get("reference") if isinstance(subject, Mapping) else None
            owner = urn_patients.get(ref) if isinstance(ref, str) else None
        if owner:
            owners.setdefault(owner, ref_of(r))
    everyone = {p for p in patients | set(owners) if isinstance(p, str)}
    if len(everyone) > 1:
        listed = ", ".join(f"Patient/{p}" for p in sorted(everyone))
        raise BundleError(f"the Bundle holds resources of more than one patient ({listed})")
    if not everyone:
        raise BundleError("no Patient identifiable: no Patient resource and no subject reference")
    return PatientBundle(everyone.pop(), tuple(resources), full_urls)
