"""Is natalizumab in this patient's care? patient-view's first question, asked of the cheapest
data before anything is assessed.

EHRs fire ``patient-view`` on every chart opened (Oracle Health calls only that hook), and CDS
Hooks 2.0 says a service with no decision support for the user returns an empty array of cards.
A card on a primary-care chart that never saw natalizumab would be noise on every chart in the
hospital, so the card is shown only when natalizumab is in the patient's care:

* a natalizumab administration, statement or order whose status records use or the intent to
  use it (not ``not-done``, ``not-taken``, ``cancelled`` or ``entered-in-error``), dated within
  the window in which PML can still occur: up to 6 months after the last dose (Tysabri
  prescribing information, section 5.1; the tenant's ``care_window_months``);
* or an active, on-hold or draft natalizumab order, or an active (or intended) statement or an
  in-progress administration with no end, whatever its start;
* a record of natalizumab without a date counts: an unknown date is not "long ago".

The medication is recognised as the engine recognises it (``fhir.codes.medication_class``) in
the record's own concept, a contained Medication, one at hand, or the reference's display. The
caller resolves ``Medication/<id>`` references first: a reference nobody could read is not
"no natalizumab" (the view answers 412 instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from ..config import CodeSets
from ..fhir.codes import NATALIZUMAB_NAMES, Vocabulary, codings, words
from ..fhir.extract import parse_date
from ..risk.dates import add_months
from .orders import medication_concept, medications_by_reference

NOT_USE = {
    "MedicationAdministration": {"not-done", "entered-in-error"},
    "MedicationStatement": {"not-taken", "entered-in-error"},
    "MedicationRequest": {"cancelled", "entered-in-error"},
}
OPEN_ORDER = {"active", "on-hold", "draft"}
ONGOING = {"active", "intended", "on-hold", "in-progress"}  # and no end: still being given


def _last_day(resource: Mapping[str, Any]) -> date | None:
    """The latest date a record speaks of (a period's end, else its start or date)."""
    if resource.get("resourceType") == "MedicationRequest":
        return parse_date(resource.get("authoredOn"))
    period = resource.get("effectivePeriod")
    period = period if isinstance(period, Mapping) else {}
    return (parse_date(period.get("end")) or parse_date(period.get("start"))
            or parse_date(resource.get("effectiveDateTime"))
            or parse_date(resource.get("dateAsserted")))


def is_natalizumab(concept: Mapping[str, Any] | None, vocab: Vocabulary) -> bool:
    """Natalizumab as ``fhir.codes.medication_class`` recognises it (its codes, then its
    names), without classifying every other drug: this runs on every chart opened."""
    if not isinstance(concept, Mapping):
        return False
    if not vocab.natalizumab.isdisjoint(codings(concept)):
        return True
    text = words(concept).lower()
    return any(name in text for name in NATALIZUMAB_NAMES)


def _could_count(resource: Mapping[str, Any], since: date) -> bool:
    """Would this record put natalizumab in care if it named natalizumab? (Status and date
    only: no medication is resolved, so older records never cost a read.)"""
    kind = resource.get("resourceType")
    if kind not in NOT_USE:
        return False
    status = resource.get("status")
    status = status if isinstance(status, str) else None
    if status in NOT_USE[kind]:
        return False
    if kind == "MedicationRequest" and status in OPEN_ORDER:
        return True
    period = resource.get("effectivePeriod")
    ended = isinstance(period, Mapping) and period.get("end") is not None
    if kind != "MedicationRequest" and status in ONGOING and not ended:
        return True
    last = _last_day(resource)
    return last is None or last >= since


def candidates(resources: Iterable[Mapping[str, Any]], today: date,
               window_months: int) -> list[Mapping[str, Any]]:
    """The medication records whose drug decides relevance: their Medication references are
    the only ones worth reading before the decision."""
    since = add_months(today, -window_months)
    return [r for r in resources if _could_count(r, since)]


def in_care(resources: Iterable[Mapping[str, Any]], codes: CodeSets, today: date,
            window_months: int) -> str | None:
    """The reference of a record that puts natalizumab in the patient's care, or None.
    Runs before the shape checks (a chart without natalizumab is never assessed), so it reads
    every element defensively."""
    resources = list(resources)
    by_ref = medications_by_reference(resources)
    vocab = Vocabulary.from_config(codes)
    for resource in candidates(resources, today, window_months):
        if is_natalizumab(medication_concept(resource, by_ref), vocab):
            return f"{resource.get('resourceType')}/{resource.get('id')}"
    return None
