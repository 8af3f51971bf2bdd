"""FHIR R4 JSON → engine records (``extract_inputs``; docs/clinical-basis.md §1, §3–§5)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from smart_app.config import CodeSets
from smart_app.fhir.bundle import read_bundle
from smart_app.fhir.extract import ForeignResourceError, extract_inputs
from smart_app.risk import Antibody, Assessment
from smart_app.risk.records import AgentClass

from .builders import (
    BEFORE_NATALIZUMAB,
    JCV_ANTIBODY,
    JCV_INDEX,
    JCV_PCR,
    LOINC,
    NATALIZUMAB,
    PATIENT,
    RXNORM,
    administration,
    bundle,
    codes,
    concept,
    finding,
    index_value,
    natalizumab_series,
    observation,
    patient,
    request,
    run,
    snomed_result,
    statement,
)

POSITIVE_1_0 = [
    observation("ab", JCV_ANTIBODY, **snomed_result("10828004", "Positive")),
    observation("idx", JCV_INDEX, **index_value("1.0")),
]


def assess_chart(*resources: dict[str, Any], code_sets: CodeSets | None = None,
                 **kw: Any) -> Assessment:
    return run(extract_inputs([patient(), *resources], PATIENT, code_sets=code_sets, **kw))


# --- another patient's data is an error ---------------------------------------------------------

@pytest.mark.parametrize(
    "reference",
    ["Patient/other", "http://example.org/fhir/Patient/other",
     "Patient/other/_history/2"],
)
def test_resource_of_another_patient_raises(reference: str) -> None:
    foreign = observation("idx-x", JCV_INDEX, **index_value("2.0"))
    foreign["subject"] = {"reference": reference}
    with pytest.raises(ForeignResourceError) as raised:
        extract_inputs([patient(), *POSITIVE_1_0, foreign], PATIENT)
    assert raised.value.reference == "Observation/idx-x"
    assert raised.value.patient == "Patient/other"
    assert "Patient/other" in str(raised.value)


def test_another_patient_resource_raises() -> None:
    with pytest.raises(ForeignResourceError):
        extract_inputs([patient(), patient("other")], PATIENT)


def test_medication_of_another_patient_raises_whatever_it_is() -> None:
    with pytest.raises(ForeignResourceError):
        extract_inputs([patient(), administration("n1", "2020-01-01", pid="other")], PATIENT)


@pytest.mark.parametrize(
    "reference", ["Patient/p1", "https://ehr.example/fhir/Patient/p1", "Patient/p1/_history/7"]
)
def test_own_patient_references_in_any_form_are_accepted(reference: str) -> None:
    admin = administration("n1", "2020-01-01")
    admin["subject"] = {"reference": reference}
    data = extract_inputs([patient(), admin], PATIENT)
    assert [i.source for i in data.infusions] == ["MedicationAdministration/n1"]


# --- natalizumab infusions ----------------------------------------------------------------------

def test_only_completed_administrations_are_counted_once_per_id() -> None:
    series = natalizumab_series(24)
    others = [
        administration("nd", "2016-11-01", status="not-done"),
        administration("eie", "2016-11-02", status="entered-in-error"),
        administration("ip", "2016-11-03", status="in-progress"),
        administration("st", "2016-11-04", status="stopped"),
    ]
    duplicate = dict(series[0])  # the same resource twice (e.g. two search pages)
    a = assess_chart(*POSITIVE_1_0, *series, *others, duplicate)
    assert a.exposure.infusions == 24
    assert a.per_1000 == Decimal("0.2")  # still 0–24: none of the others pushed it to 25
    assert {i.source for i in a.exposure.counted} == {
        f"MedicationAdministration/nat-{k:03d}" for k in range(24)
    }


def test_tyruko_and_tysabri_by_text_count_together() -> None:
    tysabri = [administration(f"t{k}", f"2020-{k + 1:02d}-01",
                              medication=concept("Tysabri 300 mg")) for k in range(12)]
    tyruko = [administration(f"b{k}", f"2021-{k + 1:02d}-01",
                             medication=concept(None, ("urn:local", "X"))) for k in range(12)]
    for resource in tyruko:
        resource["medicationCodeableConcept"]["coding"][0]["display"] = "Tyruko (natalizumab-sztn)"
    tyruko.append(administration("b12", "2022-01-01", medication=concept("TYRUKO 300MG")))
    a = assess_chart(*POSITIVE_1_0, *tysabri, *tyruko)
    assert a.exposure.infusions == 25
    assert a.per_1000 == Decimal("1.1")


def test_administration_dates_fall_back_to_effective_period_start() -> None:
    admin = administration("n1", None, effectivePeriod={"start": "2020-02-03T10:00:00Z",
                                                         "end": "2020-02-03T11:00:00Z"})
    a = assess_chart(*POSITIVE_1_0, admin)
    assert a.exposure.first == date(2020, 2, 3)


def _medication(mid: str, text: str = "Tysabri (natalizumab) 300 mg/15 mL") -> dict[str, Any]:
    return {"resourceType": "Medication", "id": mid,
            "code": concept(text, (RXNORM, "354770"))}


def test_medication_reference_to_a_contained_medication() -> None:
    admin = administration("n1", "2020-01-01", medicationReference={"reference": "#med1"},
                           contained=[_medication("med1")])
    assert assess_chart(*POSITIVE_1_0, admin).exposure.infusions == 1


@pytest.mark.parametrize(
    "reference", ["Medication/tys", "http://example.org/fhir/Medication/tys"]
)
def test_medication_reference_to_an_included_medication(reference: str) -> None:
    admins = [administration(f"n{k}", f"2020-{k + 1:02d}-01",
                             medicationReference={"reference": reference}) for k in range(3)]
    a = assess_chart(_medication("tys"), *POSITIVE_1_0, *admins)
    assert a.exposure.infusions == 3


def test_medication_reference_to_a_urn_uuid_full_url() -> None:
    urn = "urn:uuid:6a1f0c4e-2b7e-4d55-9a3b-1f1b2f3c4d5e"
    med = _medication("ignored-id")
    admin = administration("n1", "2020-01-01", medicationReference={"reference": urn})
    resources = [patient(), med, *POSITIVE_1_0, admin]
    assert run(extract_inputs(resources, PATIENT)).exposure.infusions == 0  # unresolved
    a = run(extract_inputs(resources, PATIENT, full_urls={urn: med}))
    assert a.exposure.infusions == 1


def test_urn_uuid_references_resolve_through_read_bundle() -> None:
    urn_patient = "urn:uuid:00000000-0000-4000-8000-000000000001"
    urn_med = "urn:uuid:00000000-0000-4000-8000-000000000002"
    admin = administration("n1", "2020-01-01", medicationReference={"reference": urn_med})
    admin["subject"] = {"reference": urn_patient}
    data = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": urn_patient, "resource": patient()},
            {"fullUrl": urn_med, "resource": _medication("m")},
            {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000003", "resource": admin},
            *({"resource": r} for r in POSITIVE_1_0),
        ],
    }
    chart = read_bundle(data)
    assert chart.patient_id == PATIENT
    inputs = extract_inputs(chart.resources, chart.patient_id, full_urls=chart.full_urls)
    assert [i.source for i in inputs.infusions] == ["MedicationAdministration/n1"]


def test_medication_reference_display_only_is_matched_by_name() -> None:
    admin = administration("n1", "2020-01-01",
                           medicationReference={"reference": "Medication/missing",
                                                "display": "Tysabri 300 mg"})
    assert assess_chart(*POSITIVE_1_0, admin).exposure.infusions == 1


def test_configured_natalizumab_product_code() -> None:
    product = concept("300 MG in 15 ML Injection", ("http://hl7.org/fhir/sid/ndc", "64406-008"))
    admin = administration("n1", "2020-01-01", medication=product)
    assert assess_chart(*POSITIVE_1_0, admin).exposure.infusions == 0
    extra = CodeSets(natalizumab=("http://hl7.org/fhir/sid/ndc|64406-008",))
    assert assess_chart(*POSITIVE_1_0, admin, code_sets=extra).exposure.infusions == 1


@pytest.mark.parametrize(("intent", "warned"),
                         [("plan", False), ("proposal", False), ("order", True)])
def test_natalizumab_request_intent(intent: str, warned: bool) -> None:
    old_order = request("rq", "2013-06-01", NATALIZUMAB, intent=intent)
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), old_order)
    assert ("exposure-undercount" in codes(a)) is warned


def test_natalizumab_statement_predating_administrations_is_read() -> None:
    earlier = statement("ms", "2014-01-15", concept("Tysabri"))
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(14), earlier)
    assert "2014-01-15" in finding(a, "exposure-undercount").message
    assert a.exposure.infusions == 14


# --- prior immunosuppressants ------------------------------------------------------------------

AZATHIOPRINE = concept("Azathioprine 50 mg tablet")
BEFORE = BEFORE_NATALIZUMAB.isoformat()


@pytest.mark.parametrize(
    ("drug", "agent"),
    [
        (concept("MTX 15 mg weekly", (RXNORM, "6851")), "methotrexate"),
        (concept("CYC 750 mg/m2", (RXNORM, "3002")), "cyclophosphamide"),
        (concept("MMF 1 g", (RXNORM, "68149")), "mycophenolate"),
        (concept("Imuran 50 mg"), "azathioprine"),
        (concept("Novantrone 12 mg/m2"), "mitoxantrone"),
        (concept("CellCept 500 mg"), "mycophenolate"),
        (concept("Myfortic 360 mg"), "mycophenolate"),
        (concept("mycophenolic acid 360 mg"), "mycophenolate"),
        (concept("Cytoxan"), "cyclophosphamide"),
        (concept("Trexall 2.5 mg"), "methotrexate"),
    ],
)
def test_immunosuppressant_by_rxnorm_code_or_name(drug: dict[str, Any], agent: str) -> None:
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), statement("s", BEFORE, drug))
    pi = a.prior_immunosuppressant
    assert pi.value is True
    assert [m.agent for m in pi.evidence] == [agent]
    assert a.per_1000 == Decimal("12")
    assert "MedicationStatement/s" in a.basis


@pytest.mark.parametrize("kind", ["administration", "statement", "request"])
def test_immunosuppressant_from_each_medication_resource(kind: str) -> None:
    resource = {
        "administration": administration("x", BEFORE, medication=AZATHIOPRINE),
        "statement": statement("x", BEFORE, AZATHIOPRINE),
        "request": request("x", BEFORE, AZATHIOPRINE),
    }[kind]
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), resource)
    assert a.prior_immunosuppressant.value is True


@pytest.mark.parametrize(
    "resource",
    [
        request("x", BEFORE, AZATHIOPRINE, intent="plan"),
        request("x", BEFORE, AZATHIOPRINE, intent="proposal"),
        request("x", BEFORE, AZATHIOPRINE, status="cancelled"),
        request("x", BEFORE, AZATHIOPRINE, status="entered-in-error"),
        request("x", BEFORE, AZATHIOPRINE, status="draft"),
        statement("x", BEFORE, AZATHIOPRINE, status="not-taken"),
        statement("x", BEFORE, AZATHIOPRINE, status="entered-in-error"),
        administration("x", BEFORE, medication=AZATHIOPRINE, status="not-done"),
        administration("x", BEFORE, medication=AZATHIOPRINE, status="entered-in-error"),
    ],
    ids=["plan", "proposal", "cancelled", "request-eie", "draft", "not-taken", "statement-eie",
         "not-done", "administration-eie"],
)
def test_records_of_a_drug_not_given_are_not_prior_use(resource: dict[str, Any]) -> None:
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), resource)
    assert a.prior_immunosuppressant.value is False
    assert a.per_1000 == Decimal("1.1")


def test_configured_immunosuppressant_code() -> None:
    local = concept("Tab 50", ("http://www.nlm.nih.gov/research/umls/rxnorm", "1256"))
    resources = [*POSITIVE_1_0, *natalizumab_series(30), statement("s", BEFORE, local)]
    assert assess_chart(*resources).prior_immunosuppressant.value is False
    extra = CodeSets(immunosuppressants={"azathioprine": (f"{RXNORM}|1256",)})
    a = assess_chart(*resources, code_sets=extra)
    assert a.prior_immunosuppressant.value is True
    assert a.prior_immunosuppressant.evidence[0].agent == "azathioprine"


@pytest.mark.parametrize("name", ["Tecfidera 240 mg", "Copaxone 40 mg", "Ocrevus",
                                  "interferon beta-1a", "Mavenclad"])
def test_other_ms_therapies_are_listed_not_counted(name: str) -> None:
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), statement("s", BEFORE, concept(name)))
    assert a.prior_immunosuppressant.value is False
    assert [m.agent_class for m in a.prior_immunosuppressant.other_therapies] == [
        AgentClass.OTHER_MS_THERAPY
    ]
    assert "other-ms-therapy" in codes(a)


def test_immunosuppressant_order_dates_come_from_authored_on() -> None:
    after = request("rq", "2016-05-01", concept("methotrexate 15 mg"))
    a = assess_chart(*POSITIVE_1_0, *natalizumab_series(30), after)
    assert a.prior_immunosuppressant.value is False
    assert [m.when for m in a.prior_immunosuppressant.concomitant] == [date(2016, 5, 1)]


# --- antibody observations --------------------------------------------------------------------

def test_jc_virus_dna_pcr_is_not_an_antibody_result() -> None:
    pcr = observation("pcr", JCV_PCR, valueCodeableConcept=concept("Detected"))
    pcr_quantity = observation("pcr2", JCV_PCR, valueQuantity={"value": Decimal("250")})
    data = extract_inputs([patient(), pcr, pcr_quantity], PATIENT)
    assert data.lab_results == ()
    a = run(data)
    assert not a.complete and "antibody-missing" in codes(a)


def test_local_lab_code_recognised_by_text_is_used_and_warned() -> None:
    local_ab = observation("lab1", concept("JC Virus Antibody", ("urn:oid:1.2.3.4.5", "JCVAB")),
                           valueString="Positive")
    local_idx = observation("lab2", concept("JCV Antibody Index", ("urn:oid:1.2.3.4.5", "IDX")),
                            **index_value("0.7"))
    a = assess_chart(local_ab, local_idx, *natalizumab_series(30))
    assert a.per_1000 == Decimal("1.1")
    assert set(finding(a, "antibody-local-code").sources) == {"Observation/lab1",
                                                              "Observation/lab2"}


def test_configured_local_lab_code() -> None:
    unnamed = concept("Panel 7 result", ("urn:oid:1.2.3.4.5", "J7"))
    obs = observation("lab1", unnamed, **index_value("2.1"))
    assert not assess_chart(obs, *natalizumab_series(30)).complete
    extra = CodeSets(jcv_index=("urn:oid:1.2.3.4.5|J7",))
    a = assess_chart(obs, *natalizumab_series(30), code_sets=extra)
    assert a.antibody.status is Antibody.POSITIVE
    assert a.per_1000 == Decimal("8.8")
    assert "antibody-local-code" not in codes(a)  # configured: not a guess by name


def test_configured_local_qualitative_code() -> None:
    obs = observation("lab1", concept("Lab 12", ("urn:local", "Q12")), valueString="Negative")
    extra = CodeSets(jcv_antibody=("urn:local|Q12",))
    assert assess_chart(obs, *natalizumab_series(30), code_sets=extra).per_1000 == Decimal("0.2")


def test_unrelated_observations_are_not_antibody_results() -> None:
    others = [
        observation("hr", concept("Heart rate", (LOINC, "8867-4")), **index_value("72")),
        observation("wbc", concept("Leukocytes", (LOINC, "6690-2")), **index_value("6.1")),
    ]
    assert extract_inputs([patient(), *others], PATIENT).lab_results == ()


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"effectiveDateTime": "2026-09-15T23:30:00-05:00"}, date(2026, 9, 15)),
        ({"effectivePeriod": {"start": "2026-09-14"}}, date(2026, 9, 14)),
        ({"issued": "2026-09-17T14:05:00Z"}, date(2026, 9, 17)),
        ({"effectiveDateTime": "2026-09"}, date(2026, 9, 1)),
    ],
)
def test_observation_effective_date(dates: dict[str, Any], expected: date) -> None:
    obs = observation("idx", JCV_INDEX, on=None, **index_value("1.0"), **dates)
    [result] = extract_inputs([patient(), obs], PATIENT).lab_results
    assert result.effective == expected


def test_source_versions_are_kept() -> None:
    obs = observation("idx", JCV_INDEX, **index_value("1.0"), meta={"versionId": "3"})
    data = extract_inputs([patient(), obs, *natalizumab_series(1)], PATIENT)
    assert data.versions == (("Observation/idx", "3"),)


def test_decimal_index_precision_is_kept() -> None:
    obs = observation("idx", JCV_INDEX, valueQuantity={"value": 1.51})
    [result] = extract_inputs([patient(), obs], PATIENT).lab_results
    assert result.index == Decimal("1.51")


def test_bundle_round_trip_gives_the_same_inputs() -> None:
    resources = [patient(), *POSITIVE_1_0, *natalizumab_series(3)]
    chart = read_bundle(bundle(resources))
    assert extract_inputs(chart.resources, chart.patient_id) == extract_inputs(resources, PATIENT)
