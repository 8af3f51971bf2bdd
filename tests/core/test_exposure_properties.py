"""Properties over generated charts: hiding or removing evidence of natalizumab exposure never
gives a lower figure (docs/clinical-basis.md §4, §8).

The charts are those of ``test_properties`` (the same generator, the same service seam). Each
property compares a chart with a transformed copy; where both give an estimate, the
transformed one is never lower (no estimate is always allowed: the app says what is missing).

- adding evidence of more exposure (a natalizumab order or statement, an administration of a
  medication nobody can identify, a natalizumab administration of status unknown);
- replacing the medication codes of some administrations by references to a Medication the
  chart does not hold, or removing the Medication a chart's administrations name;
- dropping administrations while the natalizumab order that scheduled them remains: all of
  them (Epic's catalog exposes orders but not infusions), or the earliest ones (treatment begun
  elsewhere). Within the 42 days in which an order before a first infusion is normal, a missing
  first infusion cannot be told from that lead time, so the earliest ones left are later.

The budget is small in CI; the long run (1,500 charts per property):

    PML_RISK_PROPERTIES=clinical-long python -m pytest tests/core/test_exposure_properties.py
"""

from __future__ import annotations

import copy
from datetime import date, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from .test_properties import (
    NATALIZUMAB,
    PROFILE,
    SUBJECT,
    Resource,
    assess,
    charts,
    day,
    days,
    never_lower,
)


def natalizumab_administrations(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["resourceType"] == "MedicationAdministration"
            and r.get("medicationCodeableConcept") is NATALIZUMAB]


def first_completed(resources: list[Resource]) -> date | None:
    found = [date.fromisoformat(r["effectiveDateTime"])
             for r in natalizumab_administrations(resources) if r["status"] == "completed"]
    return min(found) if found else None


@st.composite
def more_exposure(draw: st.DrawFn) -> Resource:
    """One record that is evidence of more natalizumab exposure than the chart shows."""
    kind = draw(st.sampled_from(["order", "statement", "unidentified", "status-unknown"]))
    when = day(draw(days)).isoformat()
    if kind == "order":
        return {"resourceType": "MedicationRequest", "id": "more-order", "status": "active",
                "intent": "order", "subject": SUBJECT, "authoredOn": when,
                "medicationCodeableConcept": NATALIZUMAB}
    if kind == "statement":
        return {"resourceType": "MedicationStatement", "id": "more-statement",
                "status": draw(st.sampled_from(["active", "completed"])), "subject": SUBJECT,
                "effectiveDateTime": when, "medicationCodeableConcept": NATALIZUMAB}
    resource: Resource = {"resourceType": "MedicationAdministration", "id": f"more-{kind}",
                          "subject": SUBJECT, "effectiveDateTime": when}
    if kind == "unidentified":
        resource["status"] = "completed"
        resource["medicationReference"] = {"reference": "Medication/not-in-the-chart"}
    else:
        resource["status"] = "unknown"
        resource["medicationCodeableConcept"] = NATALIZUMAB
    return resource


@PROFILE
@given(charts(), st.lists(more_exposure(), min_size=1, max_size=3,
                          unique_by=lambda r: str(r["id"])))
def test_adding_evidence_of_more_exposure_never_lowers_the_figure(
    resources: list[Resource], added: list[Resource]
) -> None:
    never_lower(assess(resources), assess([*resources, *added]))


@PROFILE
@given(charts(), st.data())
def test_replacing_codes_by_unresolvable_references_never_lowers_the_figure(
    resources: list[Resource], data: st.DataObject
) -> None:
    given_ = natalizumab_administrations(resources)
    assume(given_)
    hidden = data.draw(st.sets(st.sampled_from([r["id"] for r in given_]), min_size=1))
    changed = copy.deepcopy(resources)
    for r in changed:
        if r["resourceType"] == "MedicationAdministration" and r["id"] in hidden:
            del r["medicationCodeableConcept"]
            r["medicationReference"] = {"reference": "Medication/tysabri"}
    never_lower(assess(resources), assess(changed))


@PROFILE
@given(charts())
def test_removing_the_medication_the_administrations_name_never_lowers_the_figure(
    resources: list[Resource],
) -> None:
    ids = {r["id"] for r in natalizumab_administrations(resources)}
    assume(ids)
    named = copy.deepcopy(resources)
    for r in named:
        if r["resourceType"] == "MedicationAdministration" and r["id"] in ids:
            del r["medicationCodeableConcept"]
            r["medicationReference"] = {"reference": "Medication/tysabri"}
    medication = {"resourceType": "Medication", "id": "tysabri", "code": NATALIZUMAB}
    with_it = assess([*named, medication])
    # with the Medication, the chart reads as it did with the codes
    assert with_it.assessment.per_1000 == assess(resources).assessment.per_1000
    never_lower(with_it, assess(named))


@PROFILE
@given(charts(), st.data())
def test_dropping_administrations_while_orders_remain_never_lowers_the_figure(
    resources: list[Resource], data: st.DataObject
) -> None:
    first = first_completed(resources)
    assume(first is not None)
    assert first is not None
    given_ = natalizumab_administrations(resources)
    dated = sorted(date.fromisoformat(r["effectiveDateTime"]) for r in given_)
    every = min((b - a).days for a, b in zip(dated, dated[1:], strict=False)) if (
        len(dated) > 1) else 28
    # The order that scheduled the infusions, written two weeks before the first, at the
    # interval they were given (as the sandbox's epic-like EHR serves it).
    order = {"resourceType": "MedicationRequest", "id": "nat-order", "status": "active",
             "intent": "order", "subject": SUBJECT,
             "authoredOn": (first - timedelta(days=14)).isoformat(),
             "medicationCodeableConcept": NATALIZUMAB,
             "dosageInstruction": [{"timing": {"repeat": {"period": max(1, every),
                                                          "periodUnit": "d"}}}]}
    # All of them (an EHR that does not expose infusions), or the earliest ones (treatment
    # begun elsewhere) so far that the order predates the first one left by more than the
    # 42 days in which an order before a first infusion is normal.
    ordered = sorted(given_, key=lambda r: (r["effectiveDateTime"], r["id"]))
    authored = first - timedelta(days=14)
    cuts = [k for k in range(1, len(ordered) + 1)
            if k == len(ordered) or date.fromisoformat(ordered[k]["effectiveDateTime"])
            > authored + timedelta(days=42)]
    k = data.draw(st.sampled_from(cuts))
    dropped = {r["id"] for r in ordered[:k]}
    kept = [r for r in resources if not (r["resourceType"] == "MedicationAdministration"
                                         and r["id"] in dropped)]
    before = assess([*resources, order])
    after = assess([*kept, order])
    never_lower(before, after)
    if before.assessment.complete and not after.assessment.complete:
        assert after.assessment.missing, "no estimate names what is missing"
