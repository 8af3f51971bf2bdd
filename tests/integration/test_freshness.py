"""The freshness check before a save, against a scripted EHR: what the sandbox always does right
(filter by ``_lastUpdated``, send a Date header) is here done wrong or not at all."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from smart_app.fhir.client import FhirClient, ForeignResource
from smart_app.smart.scopes import GrantedScopes

from .scripted_ehr import Script

pytestmark = pytest.mark.integration
ALL = GrantedScopes.parse("patient/*.rs")
LAB = {"resourceType": "Observation", "id": "o1", "status": "final",
       "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 0.9}}


def fhir(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/fhir+json")


def bundle(*resources: dict[str, Any], more: bool = False) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
            "link": [{"relation": "next", "url": "x"}] if more else []}


class Chart:
    """A chart whose Observations can change; ``_lastUpdated`` optionally unsupported (400)."""

    def __init__(self, script: Script, *, filters: bool = True) -> None:
        self.labs = [LAB]
        self.filters = filters
        self.searches: list[str] = []
        empty = lambda _req: fhir(bundle())  # noqa: E731
        script.routes.update({
            "/fhir/Patient/p1": lambda _req: fhir({"resourceType": "Patient", "id": "p1"}),
            "/fhir/Observation": self.observations,
            "/fhir/MedicationAdministration": empty,
            "/fhir/MedicationStatement": empty,
            "/fhir/MedicationRequest": empty,
        })

    def observations(self, req: Request) -> Response:
        self.searches.append(req.query_string.decode())
        if "_lastUpdated" in req.args:
            if not self.filters:
                return fhir({"resourceType": "OperationOutcome", "issue": []}, 400)
            return fhir(bundle(*self.labs))  # this server lists everything as "changed"
        return fhir(bundle(*self.labs))


def client(base: str) -> FhirClient:
    return FhirClient(requests.Session(), f"{base}/fhir", lambda _r: "t", timeout=5,
                      max_pages=3)


def test_unchanged_entries_in_the_look_back_are_not_changes(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    chart = Chart(script)
    fhir_client = client(base)
    snap = fhir_client.read_chart("p1", ALL)
    assert snap.since and snap.since.endswith("Z")
    same = fhir_client.changed_since("p1", ALL, snap)
    assert not same.changed and same.round_trips == 1 and same.requests == 4
    chart.labs = [{**LAB, "valueQuantity": {"value": 1.6}}]
    changed = fhir_client.changed_since("p1", ALL, snap)
    assert changed.changed and [r["valueQuantity"] for r in changed.updates] == [{"value": 1.6}]
    assert changed.merged(snap.resources) != snap.resources


def test_without_lastupdated_the_chart_is_read_again(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    chart = Chart(script, filters=False)
    fhir_client = client(base)
    snap = fhir_client.read_chart("p1", ALL)
    same = fhir_client.changed_since("p1", ALL, snap)
    assert not same.changed and same.round_trips == 2 and same.reread is not None
    chart.labs = [LAB, {**LAB, "id": "o2"}]
    assert fhir_client.changed_since("p1", ALL, snap).changed


def test_a_page_of_changes_with_more_behind_is_a_change(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    Chart(script)
    fhir_client = client(base)
    snap = fhir_client.read_chart("p1", ALL)
    script.routes["/fhir/Observation"] = lambda _req: fhir(bundle(LAB, more=True))
    result = fhir_client.changed_since("p1", ALL, snap)
    assert result.changed and result.overflow


def test_another_patients_entry_fails_the_check(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    Chart(script)
    fhir_client = client(base)
    snap = fhir_client.read_chart("p1", ALL)
    foreign = {**LAB, "id": "o9", "subject": {"reference": "Patient/p2"}}
    script.routes["/fhir/Observation"] = lambda _req: fhir(bundle(foreign))
    with pytest.raises(ForeignResource):
        fhir_client.changed_since("p1", ALL, snap)


def test_the_snapshot_survives_the_session_store_round_trip(ehr: tuple[str, Script]) -> None:
    base, script = ehr
    Chart(script)
    snap = client(base).read_chart("p1", ALL, history_system="urn:x")
    from smart_app.fhir.client import ChartData

    again = ChartData.from_json(json.loads(json.dumps(snap.to_json())))
    assert again == snap
