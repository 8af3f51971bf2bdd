"""Is natalizumab being ordered? The order service's filter for ``order-select``/``order-sign``.

Every order an EHR user selects or signs fires these hooks, so the service must stay silent
(``{"cards": []}``, no data read) unless a natalizumab MedicationRequest is among them. The
drug is recognised as the engine recognises infusions (``fhir.codes.medication_class``: the
configured ``[codes] natalizumab`` plus the defaults, then the names), in the request's own
``medicationCodeableConcept`` or in the Medication it references (contained, or in the same
``draftOrders`` Bundle).

``order-select``: only the orders named in ``selections`` count (the others were selected
earlier and already had their cards). ``order-sign``: every order in ``draftOrders``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import CodeSets
from ..fhir.codes import Vocabulary, medication_class
from ..risk.records import AgentClass


def _resources(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [e["resource"] for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _medication(request: Mapping[str, Any], by_ref: Mapping[str, Mapping[str, Any]]
                ) -> Mapping[str, Any] | None:
    concept = request.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    ref = request.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str):
        return None
    if target.startswith("#"):
        for item in request.get("contained") or ():
            if isinstance(item, dict) and item.get("id") == target[1:]:
                code = item.get("code")
                return code if isinstance(code, dict) else None
        return None
    found = by_ref.get(target) or by_ref.get("/".join(target.split("/")[-2:]))
    code = found.get("code") if found else None
    return code if isinstance(code, dict) else None


def natalizumab_orders(context: Mapping[str, Any], hook: str, codes: CodeSets) -> list[str]:
    """``MedicationRequest/<id>`` of the natalizumab orders this hook is about."""
    resources = _resources(context.get("draftOrders"))
    by_ref: dict[str, Mapping[str, Any]] = {}
    for r in resources:
        if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str):
            by_ref[f"Medication/{r['id']}"] = r
    selections = context.get("selections")
    chosen = ({s for s in selections if isinstance(s, str)}
              if hook == "order-select" and isinstance(selections, list) else None)
    vocab = Vocabulary.from_config(codes)
    found = []
    for r in resources:
        if r.get("resourceType") != "MedicationRequest":
            continue
        ref = f"MedicationRequest/{r.get('id')}"
        if chosen is not None and ref not in chosen:
            continue
        kind = medication_class(_medication(r, by_ref), vocab)
        if kind is not None and kind[0] is AgentClass.NATALIZUMAB:
            found.append(ref)
    return found
