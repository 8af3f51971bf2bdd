"""Assessment → FHIR R4 RiskAssessment (docs/clinical-basis.md §7)."""

from __future__ import annotations

from copy import deepcopy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from smart_app.fhir.riskassessment import (
    IDENTIFIER_SYSTEM,
    InvalidRiskAssessment,
    build_risk_assessment,
    check_invariants,
)
from smart_app.risk import Antibody, Assessment, Overrides

from .builders import (
    BEFORE_NATALIZUMAB,
    antibody_test,
    infusions,
    inputs,
    medication,
    run,
)

RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"


def positive(index: str = "1.51", n: int = 25, **kw: Any) -> Assessment:
    return run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(n), **kw))


def prediction(ra: dict[str, Any]) -> dict[str, Any]:
    [only] = ra["prediction"]
    assert isinstance(only, dict)
    return only


@pytest.mark.parametrize(
    ("status", "index", "n", "percent", "risk"),
    [
        (Antibody.POSITIVE, "1.51", 25, Decimal("0.88"), "high"),
        (Antibody.NEGATIVE, "0.1", 10, Decimal("0.002"), "low"),  # 0.02 per 1,000
        (Antibody.NEGATIVE, "0.1", 30, Decimal("0.02"), "low"),
        (Antibody.POSITIVE, "3.0", 60, Decimal("1.01"), "high"),
        (Antibody.POSITIVE, "1.2", 30, Decimal("0.11"), "moderate"),
    ],
)
def test_probability_is_in_percent_and_qualitative_risk_coded(
    status: Antibody, index: str, n: int, percent: Decimal, risk: str
) -> None:
    ra = build_risk_assessment(run(inputs(antibody_test(status, index), infusions(n))))
    p = prediction(ra)
    assert Decimal(str(p["probabilityDecimal"])) == percent
    [coding] = p["qualitativeRisk"]["coding"]
    assert (coding["system"], coding["code"]) == (RISK_PROBABILITY, risk)


def test_resource_is_valid_r4_and_carries_the_required_elements() -> None:
    a = positive()
    ra = build_risk_assessment(a)
    RiskAssessment.model_validate(ra)  # R4B model: raises on any structural error
    assert ra["resourceType"] == "RiskAssessment"
    assert ra["status"] == "final"
    assert ra["subject"] == {"reference": "Patient/p1"}
    assert ra["occurrenceDateTime"] == "2026-11-25"
    assert ra["code"]["text"] == "PML risk (natalizumab)"
    assert ra["method"]["coding"][0]["code"] == "berger-fox-2016"
    assert ra["method"]["text"] == a.table_title
    p = prediction(ra)
    assert {"system": "http://snomed.info/sct", "code": "22255007"}.items() <= (
        p["outcome"]["coding"][0].items()
    )
    assert ra["mitigation"].startswith(a.monitoring.mri)
    assert a.monitoring.antibody_retest in ra["mitigation"]


def test_rationale_names_the_figure_the_cell_and_the_table() -> None:
    rationale = prediction(build_risk_assessment(positive()))["rationale"]
    assert "8.8 per 1,000" in rationale
    assert "about 1 in 114" in rationale
    assert "antibody positive, no prior IS, index > 1.5, 25–48 infusions" in rationale
    assert "berger-fox-2016" in rationale
    assert "percent" in rationale


def test_rationale_groups_thousands_in_one_in_n() -> None:
    a = run(inputs(antibody_test(Antibody.NEGATIVE, "0.1"), infusions(10)))
    rationale = prediction(build_risk_assessment(a))["rationale"]
    assert "0.02 per 1,000 patients (about 1 in 50,000)" in rationale
    assert "antibody negative, no prior IS, 0–24 infusions" in rationale


def test_basis_lists_every_input_resource() -> None:
    labs = antibody_test(Antibody.POSITIVE, "0.8")
    older = antibody_test(Antibody.POSITIVE, "0.5", on=date(2026, 1, 10))
    given = infusions(30)
    prior = medication("azathioprine", BEFORE_NATALIZUMAB)
    a = run(inputs([*older, *labs], given, [prior]))
    refs = [b["reference"] for b in build_risk_assessment(a)["basis"]]
    # The latest test, the infusions, the prior-IS evidence, and the older test behind the
    # "index rising" warning (0.5 → 0.8).
    expected = (
        {r.source for r in labs} | {i.source for i in given} | {prior.source}
        | {r.source for r in older}
    )
    assert set(refs) == expected
    assert len(refs) == len(expected)  # each once


def test_notes_hold_every_warning_and_the_table() -> None:
    a = positive("1.45", 80)
    notes = [n["text"] for n in build_risk_assessment(a)["note"]]
    for f in a.findings:
        assert f.message in notes
    assert any("berger-fox-2016" in text and "per 1,000" in text for text in notes)


def test_identifier_is_deterministic() -> None:
    labs = antibody_test(Antibody.POSITIVE, "1.51")
    first = build_risk_assessment(run(inputs(labs, infusions(25))))
    again = build_risk_assessment(run(inputs(labs, infusions(25))))
    [ident] = first["identifier"]
    assert ident["system"] == IDENTIFIER_SYSTEM
    assert ident == again["identifier"][0]
    assert len(ident["value"]) >= 32

    more = build_risk_assessment(run(inputs(labs, infusions(26))))
    overridden = build_risk_assessment(
        run(inputs(labs, infusions(25), overrides=Overrides(infusion_count=26)))
    )
    prior = build_risk_assessment(
        run(inputs(labs, infusions(25), overrides=Overrides(prior_immunosuppressant=True)))
    )
    values = {ra["identifier"][0]["value"] for ra in (first, more, overridden, prior)}
    assert len(values) == 4


def test_identifier_changes_with_a_new_version_of_a_basis_resource() -> None:
    a = positive()
    source = a.basis[0]
    v1 = build_risk_assessment(a, versions={source: "1"})["identifier"][0]["value"]
    v2 = build_risk_assessment(a, versions={source: "2"})["identifier"][0]["value"]
    assert v1 != v2


def test_encounter_and_practitioner_performer() -> None:
    ra = build_risk_assessment(
        positive(),
        encounter="Encounter/e1",
        performer="https://ehr.example/fhir/Practitioner/dr-7",
    )
    assert ra["encounter"] == {"reference": "Encounter/e1"}
    assert ra["performer"] == {"reference": "Practitioner/dr-7"}
    RiskAssessment.model_validate(ra)


def test_practitioner_role_performer() -> None:
    ra = build_risk_assessment(positive(), performer="PractitionerRole/r1")
    assert ra["performer"] == {"reference": "PractitionerRole/r1"}


@pytest.mark.parametrize(
    "user", ["https://ehr.example/fhir/Patient/p1", "RelatedPerson/r1", None, ""]
)
def test_no_performer_unless_a_practitioner_launched(user: str | None) -> None:
    ra = build_risk_assessment(positive(), performer=user)
    assert "performer" not in ra
    assert "encounter" not in ra


def test_no_risk_assessment_without_an_estimate() -> None:
    a = run(inputs([], infusions(10)))
    with pytest.raises(ValueError, match="no estimate"):
        build_risk_assessment(a)


def test_ras2_probability_over_100_percent_is_refused() -> None:
    ra = build_risk_assessment(positive())
    bad = deepcopy(ra)
    bad["prediction"][0]["probabilityDecimal"] = 150
    with pytest.raises(InvalidRiskAssessment, match="ras-2"):
        check_invariants(bad)
    at_limit = deepcopy(ra)
    at_limit["prediction"][0]["probabilityDecimal"] = 100
    check_invariants(at_limit)


def test_ras1_probability_range_must_be_percent() -> None:
    ra = build_risk_assessment(positive())
    bad = deepcopy(ra)
    del bad["prediction"][0]["probabilityDecimal"]
    bad["prediction"][0]["probabilityRange"] = {
        "low": {"value": 0.5, "unit": "per 1000"},
        "high": {"value": 1, "system": "http://unitsofmeasure.org", "code": "%"},
    }
    with pytest.raises(InvalidRiskAssessment, match="ras-1"):
        check_invariants(bad)


def test_override_values_appear_in_the_notes() -> None:
    a = positive(overrides=Overrides(index=Decimal("0.9"), infusion_count=30,
                                     reason="outside lab report"))
    notes = " ".join(n["text"] for n in build_risk_assessment(a)["note"])
    assert "index 0.9 (chart:" in notes
    assert "completed infusions 30 (chart:" in notes
    assert "outside lab report" in notes
    assert prediction(build_risk_assessment(a))["probabilityDecimal"] == pytest.approx(0.11)
