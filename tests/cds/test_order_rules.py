"""Is natalizumab being ordered? The order hooks' filter, rule by rule (docs/clinical-basis.md,
"CDS Hooks"). Every order an EHR user selects or signs fires these hooks: a missed natalizumab
order keeps the PML figure from the prescriber at the moment it matters, and a card on any other
order is noise on every order in the hospital. test_order_cards.py shows the same through the
service; here each way an order can name its drug meets the filter directly."""

from __future__ import annotations

from typing import Any

import pytest

from smart_app.cds import orders
from smart_app.config import CodeSets

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NATALIZUMAB = {"coding": [{"system": RXNORM, "code": "354770"}]}
ASPIRIN = {"coding": [{"system": RXNORM, "code": "1191"}], "text": "aspirin"}
NO_CODES = CodeSets()


def order(oid: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": oid, "status": "draft",
            "intent": "order", **fields}


def medication(mid: str, code: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Medication", "id": mid, "code": code}


def drafts(*resources: dict[str, Any], urls: tuple[str, ...] = ()) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for k, resource in enumerate(resources):
        entry: dict[str, Any] = {"resource": resource}
        if k < len(urls) and urls[k]:
            entry["fullUrl"] = urls[k]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def found(*resources: dict[str, Any], hook: str = "order-sign", urls: tuple[str, ...] = (),
          known: tuple[dict[str, Any], ...] = (), codes: CodeSets = NO_CODES,
          **context: Any) -> orders.DraftOrders:
    return orders.natalizumab_orders({"draftOrders": drafts(*resources, urls=urls), **context},
                                     hook, codes, known)


def by_ref(ref: str, display: str | None = None) -> dict[str, Any]:
    reference: dict[str, Any] = {"reference": ref}
    if display is not None:
        reference["display"] = display
    return {"medicationReference": reference}


@pytest.mark.parametrize("how", [
    "own code", "own name", "contained", "in the bundle", "by fullUrl", "prefetched",
    "absolute", "versioned", "display only"])
def test_every_way_an_order_can_name_natalizumab_is_recognised(how: str) -> None:
    nat = medication("nat", NATALIZUMAB)
    cases: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
        "own code": ([order("o1", medicationCodeableConcept=NATALIZUMAB)], {}),
        "own name": ([order("o1", medicationCodeableConcept={"text": "Tyruko 300 mg"})], {}),
        "contained": ([order("o1", contained=[{**nat, "id": "m"}], **by_ref("#m"))], {}),
        "in the bundle": ([order("o1", **by_ref("Medication/nat")), nat], {}),
        "by fullUrl": ([order("o1", **by_ref("urn:uuid:0a1b")), nat],
                       {"urls": ("", "urn:uuid:0a1b")}),
        "prefetched": ([order("o1", **by_ref("Medication/nat"))], {"known": (nat,)}),
        "absolute": ([order("o1", **by_ref("https://ehr.example/fhir/Medication/nat"))],
                     {"known": (nat,)}),
        "versioned": ([order("o1", **by_ref("Medication/nat/_history/3"))], {"known": (nat,)}),
        "display only": ([order("o1", **by_ref("Medication/x", "natalizumab 300 mg/15 mL"))],
                         {}),
    }
    resources, extra = cases[how]
    result = found(*resources, **extra)
    assert result.natalizumab == ("MedicationRequest/o1",)
    assert result.unresolved == ()


def test_other_orders_and_other_resources_are_not_natalizumab() -> None:
    result = found(order("o1", medicationCodeableConcept=ASPIRIN),
                   {"resourceType": "ServiceRequest", "id": "s1",
                    "code": {"text": "natalizumab infusion"}},
                   order("o2", **by_ref("Medication/asp")), medication("asp", ASPIRIN))
    assert result == orders.DraftOrders((), ())


def test_the_sites_own_natalizumab_code_is_recognised() -> None:
    local = {"coding": [{"system": "urn:oid:1.2.3", "code": "77"}]}
    assert found(order("o1", medicationCodeableConcept=local)).natalizumab == ()
    site = CodeSets(natalizumab=("urn:oid:1.2.3|77",))
    assert found(order("o1", medicationCodeableConcept=local), codes=site).natalizumab == (
        "MedicationRequest/o1",)


def test_order_select_counts_only_the_orders_just_selected() -> None:
    both = (order("o1", medicationCodeableConcept=NATALIZUMAB),
            order("o2", medicationCodeableConcept=NATALIZUMAB))
    assert found(*both, hook="order-select",
                 selections=["MedicationRequest/o2"]).natalizumab == ("MedicationRequest/o2",)
    assert found(*both, hook="order-sign",
                 selections=["MedicationRequest/o2"]).natalizumab == (
        "MedicationRequest/o1", "MedicationRequest/o2")
    # Without a usable list of selections, every draft order counts.
    assert found(*both, hook="order-select", selections="MedicationRequest/o2").natalizumab == (
        "MedicationRequest/o1", "MedicationRequest/o2")
    assert found(*both, hook="order-select", selections=[3, "MedicationRequest/o1"]
                 ).natalizumab == ("MedicationRequest/o1",)


def test_a_medication_nobody_has_is_to_be_read_once_never_taken_as_not_natalizumab() -> None:
    result = found(order("o1", **by_ref("Medication/m9")),
                   order("o2", **by_ref("https://ehr.example/fhir/Medication/m9")),
                   order("o3", **by_ref("Medication/m8")))
    assert result == orders.DraftOrders((), ("Medication/m9", "Medication/m8"))


def test_an_order_that_names_its_drug_otherwise_needs_no_read() -> None:
    # Its own concept, a Medication at hand, or one named by fullUrl: nothing to read.
    result = found(order("o1", medicationCodeableConcept=ASPIRIN, **by_ref("Medication/m9")),
                   order("o2", **by_ref("Medication/asp")), medication("asp", ASPIRIN),
                   order("o3", **by_ref("urn:uuid:77")), medication("u", ASPIRIN),
                   urls=("", "", "", "", "urn:uuid:77"))
    assert result == orders.DraftOrders((), ())
    only_selected = found(order("o1", **by_ref("Medication/m9")), hook="order-select",
                          selections=["MedicationRequest/o2"])
    assert only_selected.unresolved == ()


@pytest.mark.parametrize(("reference", "expected"), [
    ({"reference": "Medication/m1"}, "Medication/m1"),
    ({"reference": "https://ehr.example/fhir/Medication/m1"}, "Medication/m1"),
    ({"reference": "Medication/m1/_history/2"}, "Medication/m1"),
    ({"reference": "#m1"}, None),
    ({"reference": "Medication/"}, None),
    ({"reference": "Substance/m1"}, None),
    ({"reference": "m1"}, None),
    ({"display": "natalizumab"}, None),
    ("Medication/m1", None),
])
def test_the_medication_a_reference_names(reference: Any, expected: str | None) -> None:
    assert orders.medication_reference({"medicationReference": reference}) == expected


def test_draft_orders_are_read_only_from_a_bundle() -> None:
    nat = order("o1", medicationCodeableConcept=NATALIZUMAB)
    assert orders.draft_resources({"resourceType": "Bundle", "entry": [
        {"resource": nat}, {"resource": "x"}, "y", {"fullUrl": "urn:uuid:1"}]}) == [nat]
    assert orders.draft_resources({"resourceType": "Parameters", "entry": [
        {"resource": nat}]}) == []
    assert orders.draft_resources({"resourceType": "Bundle", "entry": {"resource": nat}}) == []
    assert orders.draft_resources([nat]) == []


def test_the_drug_of_an_order_comes_from_its_own_concept_first() -> None:
    own = order("o1", medicationCodeableConcept=ASPIRIN, **by_ref("Medication/nat"))
    nat = medication("nat", NATALIZUMAB)
    assert orders.medication_concept(own, {"Medication/nat": nat}) == ASPIRIN
    coded = order("o2", **by_ref("Medication/nat", "something else"))
    assert orders.medication_concept(coded, {"Medication/nat": nat}) == NATALIZUMAB
    uncoded = medication("nat", "natalizumab")  # type: ignore[arg-type]
    assert orders.medication_concept(coded, {"Medication/nat": uncoded}) == {
        "text": "something else"}
    assert orders.medication_concept(order("o3", **by_ref("Medication/x", " ")), {}) is None
    assert orders.medication_concept(order("o4"), {}) is None
    assert orders.medication_concept(order("o5", medicationReference="Medication/nat"),
                                     {"Medication/nat": nat}) is None
    missing = order("o6", contained="not a list", **by_ref("#m"))
    assert orders.medication_concept(missing, {}) is None


def test_a_resource_of_another_kind_never_stops_the_search() -> None:
    result = found({"resourceType": "ServiceRequest", "id": "s1"},
                   order("o1", medicationCodeableConcept=NATALIZUMAB))
    assert result.natalizumab == ("MedicationRequest/o1",)


def test_draft_orders_that_are_not_a_bundle_name_no_order() -> None:
    for odd in ([order("o1", medicationCodeableConcept=NATALIZUMAB)], "Bundle", None):
        assert orders.natalizumab_orders({"draftOrders": odd}, "order-sign", NO_CODES) == (
            orders.DraftOrders((), ()))


def test_a_medication_named_by_its_full_url_is_that_entrys_whatever_its_id() -> None:
    url = "https://ehr.example/fhir/Medication/m9"
    nat = found(order("o1", **by_ref(url)), medication("zz", NATALIZUMAB), urls=("", url))
    assert nat == orders.DraftOrders(("MedicationRequest/o1",), ())
    other = found(order("o1", **by_ref(url)), medication("zz", ASPIRIN), urls=("", url))
    assert other == orders.DraftOrders((), ())  # named by the bundle: nothing left to read


def test_only_a_medication_answers_for_a_medication_reference() -> None:
    # FHIR ids are unique per type: an order with id "m9" is not Medication/m9.
    result = found(order("o1", **by_ref("Medication/m9")),
                   order("m9", medicationCodeableConcept=ASPIRIN))
    assert result.unresolved == ("Medication/m9",)


def test_a_contained_medication_is_found_by_its_id_among_others() -> None:
    contained = [medication("a", ASPIRIN), "junk", medication("m", NATALIZUMAB)]
    assert found(order("o1", contained=contained, **by_ref("#m"))).natalizumab == (
        "MedicationRequest/o1",)
    absent = order("o2", contained=[medication("a", NATALIZUMAB)], **by_ref("#m"))
    assert orders.medication_concept(absent, {}) is None
    assert orders.medication_reference(by_ref("#x/Medication/m1")) is None
