"""Is natalizumab being ordered? The order service's filter for ``order-select``/``order-sign``.

Every order an EHR user selects or signs fires these hooks, so the service must stay silent
(``{"cards": []}``, no data read) unless a natalizumab MedicationRequest is among them. The
drug is recognised as the engine recognises infusions (``fhir.codes.medication_class``: the
configured ``[codes] natalizumab`` plus the defaults, then the names), in the request's own
``medicationCodeableConcept`` or in the Medication its ``medicationReference`` names:
contained (``#id``), in the same ``draftOrders`` Bundle (by id or ``fullUrl``), in the
prefetch, or read from the EHR (relative ``Medication/<id>`` or absolute on the tenant's FHIR
base); and, when the Medication cannot be had, by the reference's ``display``
("natalizumab 300 mg/15 mL").

``order-select``: only the orders named in ``selections`` count (the others were selected
earlier and already had their cards). ``order-sign``: every order in ``draftOrders``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import CodeSets
from ..fhir.codes import Vocabulary, medication_class
from ..fhir.extract import unversioned
from ..risk.records import AgentClass


def draft_resources(bundle: Any) -> list[dict[str, Any]]:
    """The resources of the ``draftOrders`` Bundle (each entry's ``fullUrl`` kept aside)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [e["resource"] for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _full_urls(bundle: Any) -> dict[str, Mapping[str, Any]]:
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    return {e["fullUrl"]: e["resource"] for e in entries or ()
            if isinstance(e, dict) and isinstance(e.get("fullUrl"), str)
            and isinstance(e.get("resource"), dict)}


def medications_by_reference(resources: Iterable[Mapping[str, Any]]
                             ) -> dict[str, Mapping[str, Any]]:
    """``Medication/<id>`` → the Medication, for the Medications at hand."""
    return {f"Medication/{r['id']}": r for r in resources
            if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}


def medication_reference(resource: Mapping[str, Any]) -> str | None:
    """``Medication/<id>`` of a record's ``medicationReference`` (relative, absolute or
    versioned), or None (contained, none, or not a Medication)."""
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, Mapping) else None
    if not isinstance(target, str) or target.startswith("#"):
        return None
    parts = unversioned(target).split("/")
    if len(parts) >= 2 and parts[-2] == "Medication" and parts[-1]:
        return f"Medication/{parts[-1]}"
    return None


def medication_concept(resource: Mapping[str, Any], by_ref: Mapping[str, Mapping[str, Any]],
                       full_urls: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> Mapping[str, Any] | None:
    """The concept naming a record's drug: its own, its Medication's, else the reference's
    display as text; None when nothing names it."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    ref = resource.get("medicationReference")
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference")
    found: Mapping[str, Any] | None = None
    if isinstance(target, str) and target.startswith("#"):
        contained = resource.get("contained")
        found = next((item for item in contained if isinstance(item, dict)
                      and item.get("id") == target[1:]), None) if isinstance(
            contained, list) else None
    elif isinstance(target, str):
        found = (full_urls or {}).get(target)
        key = medication_reference(resource)
        if found is None and key is not None:
            found = by_ref.get(key)
    code = found.get("code") if found is not None else None
    if isinstance(code, dict):
        return code
    display = ref.get("display")
    return {"text": display} if isinstance(display, str) and display.strip() else None


@dataclass(frozen=True)
class DraftOrders:
    """The hook's natalizumab orders, and the Medications it would need to read to know."""

    natalizumab: tuple[str, ...]  # MedicationRequest/<id>
    unresolved: tuple[str, ...]  # Medication/<id> of chosen orders named by nothing else


def natalizumab_orders(context: Mapping[str, Any], hook: str, codes: CodeSets,
                       known: Iterable[Mapping[str, Any]] = ()) -> DraftOrders:
    """The natalizumab orders this hook is about; ``known`` adds Medications from the
    prefetch or read from the EHR."""
    bundle = context.get("draftOrders")
    resources = draft_resources(bundle)
    by_ref = {**medications_by_reference(known), **medications_by_reference(resources)}
    full_urls = _full_urls(bundle)
    selections = context.get("selections")
    chosen = ({s for s in selections if isinstance(s, str)}
              if hook == "order-select" and isinstance(selections, list) else None)
    vocab = Vocabulary.from_config(codes)
    found: list[str] = []
    unresolved: list[str] = []
    for r in resources:
        if r.get("resourceType") != "MedicationRequest":
            continue
        ref = f"MedicationRequest/{r.get('id')}"
        if chosen is not None and ref not in chosen:
            continue
        concept = medication_concept(r, by_ref, full_urls)
        kind = medication_class(concept, vocab)
        if kind is not None and kind[0] is AgentClass.NATALIZUMAB:
            found.append(ref)
            continue
        target = medication_reference(r)
        has_own = isinstance(r.get("medicationCodeableConcept"), dict)
        named = target is not None and (target in by_ref or str(
            (r.get("medicationReference") or {}).get("reference")) in full_urls)
        if target is not None and not has_own and not named:
            unresolved.append(target)
    return DraftOrders(tuple(found), tuple(dict.fromkeys(unresolved)))
