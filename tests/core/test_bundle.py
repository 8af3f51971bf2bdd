"""A Bundle file → one patient's resources, or an error that names exactly what is wrong.

The command line shows these messages and codes to whoever fed it the file (an OperationOutcome
on stdout, a line on stderr), so each is pinned here word for word, in-process.
"""

from __future__ import annotations

from typing import Any

import pytest

from smart_app.fhir.bundle import BundleError, read_bundle

from .builders import JCV_ANTIBODY, bundle, observation, patient


def entries(*resources: Any, kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


OBS = observation("ab", JCV_ANTIBODY, valueString="Positive")


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a JSON object (a FHIR Bundle)"),
    ({"resourceType": "Patient", "id": "p1"}, "expected a FHIR Bundle, got Patient"),
    ({"type": "collection"}, "expected a FHIR Bundle, got no resourceType"),
    ({"resourceType": "Bundle", "type": "weird"}, "unknown Bundle.type 'weird'"),
    ({"resourceType": "Bundle"}, "unknown Bundle.type 'None'"),
    ({"resourceType": "Bundle", "type": "collection", "entry": {"resource": {}}},
     "Bundle.entry must be an array"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}, 7]},
     "Bundle.entry[1] is not an object"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "x"}}]},
     "Bundle.entry[0].resource has no resourceType"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": "Patient"}]},
     "Bundle.entry[0].resource has no resourceType"),
    (entries(patient(), {**OBS, "subject": "Patient/p1"}),
     "Bundle.entry[1].resource.subject must be a Reference object"),
    (entries(patient(), {"resourceType": "MedicationStatement", "id": "m", "patient": ["p1"]}),
     "Bundle.entry[1].resource.patient must be a Reference object"),
])
def test_malformed_input_is_a_structure_error_naming_the_place(data: Any, message: str) -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(data)
    assert str(caught.value) == message
    assert caught.value.code == "structure"


def test_two_patients_are_named_both_from_patient_resources_alone() -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(entries(patient("b"), patient("a")))
    assert str(caught.value) == (
        "the Bundle holds resources of more than one patient (Patient/a, Patient/b)")
    assert caught.value.code == "invalid"


def test_a_resource_of_another_patient_is_named() -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(entries(patient("a"), observation("x", JCV_ANTIBODY, pid="b")))
    assert str(caught.value) == (
        "the Bundle holds resources of more than one patient (Patient/a, Patient/b)")


def test_no_patient_at_all() -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle(entries({**OBS, "subject": {"display": "someone"}}))
    assert str(caught.value) == (
        "no Patient identifiable: no Patient resource and no subject reference")
    assert caught.value.code == "invalid"


def test_the_patient_comes_from_the_patient_resource_alone() -> None:
    chart = read_bundle(entries(patient("only")))
    assert chart.patient_id == "only"
    assert [r["resourceType"] for r in chart.resources] == ["Patient"]


def test_the_patient_comes_from_subject_references_alone() -> None:
    chart = read_bundle(entries(observation("a", JCV_ANTIBODY, pid="p9")))
    assert chart.patient_id == "p9"


def test_a_patient_without_an_id_does_not_count_as_a_second_patient() -> None:
    chart = read_bundle(entries({"resourceType": "Patient"}, observation("a", JCV_ANTIBODY)))
    assert chart.patient_id == "p1"


@pytest.mark.parametrize("key", ["subject", "patient"])
def test_urn_uuid_subjects_count_as_the_bundled_patient(key: str) -> None:
    urn = "urn:uuid:0b8d6c1e-7f2a-4c43-9a55-2f0f1e7c9a10"
    obs = {k: v for k, v in OBS.items() if k != "subject"}
    data = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": urn, "resource": patient("p1")},
        {"fullUrl": "urn:uuid:1", "resource": {**obs, key: {"reference": urn}}},
    ]}
    chart = read_bundle(data)
    assert chart.patient_id == "p1"
    assert chart.full_urls[urn]["id"] == "p1"


def test_urn_uuid_subject_of_a_second_bundled_patient_is_refused() -> None:
    first, second = "urn:uuid:aaaa", "urn:uuid:bbbb"
    obs = {k: v for k, v in OBS.items() if k != "subject"}
    data = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": first, "resource": {"resourceType": "Patient"}},
        {"fullUrl": second, "resource": {"resourceType": "Patient", "id": "p2"}},
        {"fullUrl": "urn:uuid:1", "resource": {**obs, "subject": {"reference": second}}},
        {"resource": patient("p1")},
    ]}
    with pytest.raises(BundleError, match=r"\(Patient/p1, Patient/p2\)"):
        read_bundle(data)


def test_operation_outcomes_and_response_only_entries_are_skipped_not_the_rest() -> None:
    warning = {"resourceType": "OperationOutcome", "id": "w",
               "issue": [{"severity": "warning", "code": "informational"}]}
    data = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"response": {"status": "200"}},
        {"resource": patient()},
        {"fullUrl": "http://x/OperationOutcome/w", "resource": warning},
        {"fullUrl": "http://x/Observation/ab", "resource": OBS},
    ]}
    chart = read_bundle(data)
    assert [r["resourceType"] for r in chart.resources] == ["Patient", "Observation"]
    assert list(chart.full_urls) == ["http://x/Observation/ab"]


def test_every_bundle_type_a_server_or_export_sends_is_read() -> None:
    for kind in ("searchset", "collection", "transaction", "batch", "transaction-response",
                 "batch-response", "document", "message", "history"):
        assert read_bundle(bundle([patient()], kind)).patient_id == "p1"


def test_a_long_bundle_type_is_named_by_its_first_40_characters() -> None:
    with pytest.raises(BundleError) as caught:
        read_bundle({"resourceType": "Bundle", "type": "t" * 60})
    assert str(caught.value) == f"unknown Bundle.type {'t' * 40!r}"
