"""The order card: natalizumab however the EHR names it, the infusion being ordered counted, the
index as the lab reported it, and the retest suggestion around its due date. Direct calls over
loopback HTTP, signed as an EHR signs them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from smart_app.risk.dates import add_months

from .ehr import FHIR_BASE, Ehr, hook_body, serve_ehr

pytestmark = pytest.mark.integration

EX03 = "ex03-index-0-90"
EX04 = "ex04-index-1-50-24-infusions"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NATALIZUMAB = {"resourceType": "Medication", "id": "nat",
               "code": {"coding": [{"system": RXNORM, "code": "354770"}],
                        "text": "natalizumab 300 mg/15 mL"}}


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[Ehr]:
    yield from serve_ehr(tmp_path)


def order_body(patient: str, request: dict[str, Any], *others: dict[str, Any],
               hook: str = "order-sign", **prefetched: dict[str, Any]) -> dict[str, Any]:
    body = hook_body(patient, hook=hook)
    draft = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft",
             "intent": "order", "subject": {"reference": f"Patient/{patient}"}, **request}
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": draft},
                                                *({"resource": r} for r in others)]}
    if hook == "order-select":
        body["context"]["selections"] = ["MedicationRequest/draft-1"]
    body["prefetch"].update(prefetched)
    return body


def order_call(ehr: Ehr, body: dict[str, Any]) -> Any:
    url = ehr.endpoint("pml-risk-order")
    return ehr.call(ehr.token(aud=url), body, url=url)


def test_natalizumab_ordered_by_reference_gets_the_order_card(ehr: Ehr) -> None:
    bundled = {"resourceType": "Bundle", "type": "searchset",
               "entry": [{"resource": NATALIZUMAB}]}
    cases = {
        "relative, in draftOrders": order_body(
            EX04, {"medicationReference": {"reference": "Medication/nat"}}, NATALIZUMAB),
        "absolute, in the prefetch": order_body(
            EX04, {"medicationReference": {"reference": f"{FHIR_BASE}/Medication/nat"}},
            requests=bundled),
        "display only": order_body(
            EX04, {"medicationReference": {"display": "natalizumab 300 mg/15 mL"}}),
        "display of an unread reference, selected": order_body(
            EX04, {"medicationReference": {"display": "Tysabri 300 mg",
                                            "reference": "#missing"}}, hook="order-select"),
    }
    for name, body in cases.items():
        resp = order_call(ehr, body)
        assert resp.status_code == 200, (name, resp.text)
        (card,) = resp.json()["cards"]
        # 24 completed infusions on record + the one being ordered: the 25th, in the 25–48
        # band (1.1 per 1,000), where the chart alone gives 0.2.
        assert card["summary"] == ("PML risk 1.1 per 1,000 (anti-JCV index 1.5, 25th "
                                   "infusion with this order)"), name
        assert "24 administration(s) + this order" in card["detail"]
        assert "clinician" not in card["detail"]  # counted from the order, not an override
    view = ehr.call(ehr.token(), hook_body(EX04)).json()["cards"][0]
    assert view["summary"] == "PML risk 0.2 per 1,000 (anti-JCV index 1.5, 24 infusions)"


def test_other_orders_by_reference_stay_silent(ehr: Ehr) -> None:
    aspirin = {"resourceType": "Medication", "id": "asa",
               "code": {"coding": [{"system": RXNORM, "code": "1191"}], "text": "aspirin"}}
    for body in (order_body(EX04, {"medicationReference": {"reference": "Medication/asa"}},
                            aspirin),
                 order_body(EX04, {"medicationReference": {"display": "aspirin 81 mg"}})):
        resp = order_call(ehr, body)
        assert resp.status_code == 200 and resp.json() == {"cards": []}


def test_an_index_reported_as_a_bound_shows_the_bound(ehr: Ehr) -> None:
    patient = "index-bound-above-cutoff"
    resp = ehr.call(ehr.token(), hook_body(patient))
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert card["summary"] == "PML risk 8.8 per 1,000 (anti-JCV index >1.5, 30 infusions)"
    assert "index >1.5" in card["detail"].replace("\\>", ">")
    warnings = card["detail"].split("**Warnings**", 1)[1].replace("\\", "")
    assert "Index reported as >1.5, a bound rather than an exact value" in warnings


def _retest_chart(tested: date) -> dict[str, Any]:
    """ex03 (positive, index 0.90: retest every 6 months) with its test dated ``tested``."""
    body = hook_body(EX03)
    for entry in body["prefetch"]["observations"]["entry"]:
        resource = entry["resource"]
        if "jcv" in resource["id"]:
            resource["effectiveDateTime"] = f"{tested.isoformat()}T09:30:00Z"
            resource["issued"] = f"{tested.isoformat()}T14:00:00Z"
    return body


def test_the_retest_suggestion_around_its_due_date(ehr: Ehr) -> None:
    assert ehr.settings is not None
    today = datetime.now(ZoneInfo(ehr.settings.timezone)).date()
    due_today = add_months(today, -6)
    assert add_months(due_today, 6) == today
    seen: dict[str, dict[str, Any]] = {}
    for name, tested in (("before", due_today + timedelta(days=1)), ("on", due_today),
                         ("after", due_today - timedelta(days=1))):
        body = _retest_chart(tested)
        body["hook"] = "order-sign"
        body["context"]["draftOrders"] = order_body(
            EX03, {"medicationCodeableConcept": NATALIZUMAB["code"]})["context"]["draftOrders"]
        body["hookInstance"] = str(uuid.uuid4())
        resp = order_call(ehr, body)
        assert resp.status_code == 200, resp.text
        seen[name] = resp.json()["cards"][0]
    # The day before: nothing due, no suggestion.
    assert "suggestions" not in seen["before"]
    # On the due date: the order is suggested, nothing is overdue yet, the card stays info.
    on = seen["on"]
    assert on["suggestions"][0]["label"] == "Order anti-JCV antibody test with index"
    assert "overdue" not in on["summary"] and "overdue" not in on["detail"]
    assert on["indicator"] == "info"
    # The day after: still suggested, now overdue, and the card is a warning.
    after = seen["after"]
    assert after["suggestions"][0]["label"] == "Order anti-JCV antibody test with index"
    assert after["summary"].endswith("; anti-JCV retest overdue")
    assert after["indicator"] == "warning"
