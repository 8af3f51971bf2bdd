"""Brain MRIs read from FHIR: reports, studies and procedures under brain-MRI codes."""

from __future__ import annotations

from datetime import date
from typing import Any

from smart_app.config import CodeSets
from smart_app.fhir.extract import brain_mris, extract_inputs

from .builders import PATIENT, subject

LOINC_MR_BRAIN = {"system": "http://loinc.org", "code": "24590-2", "display": "MR Brain"}
CPT_70551 = {"system": "http://www.ama-assn.org/go/cpt", "code": "70551"}
SCT_MRI_BRAIN = {"system": "http://snomed.info/sct", "code": "816077007"}


def report(rid: str, on: str, coding: dict[str, str], status: str = "final") -> dict[str, Any]:
    return {"resourceType": "DiagnosticReport", "id": rid, "status": status,
            "code": {"coding": [coding], "text": "MRI brain"}, "subject": subject(),
            "effectiveDateTime": on, "issued": "2026-12-01T10:00:00Z"}


def study(rid: str, on: str, coding: dict[str, str]) -> dict[str, Any]:
    return {"resourceType": "ImagingStudy", "id": rid, "status": "available",
            "subject": subject(), "started": on, "procedureCode": [{"coding": [coding]}]}


def procedure(rid: str, on: str, coding: dict[str, str], status: str = "completed"
              ) -> dict[str, Any]:
    return {"resourceType": "Procedure", "id": rid, "status": status,
            "code": {"coding": [coding]}, "subject": subject(),
            "performedPeriod": {"start": on}}


def test_all_three_kinds_under_well_known_codes() -> None:
    found = brain_mris([report("r1", "2026-03-01T08:00:00Z", LOINC_MR_BRAIN),
                        study("s1", "2026-06-01", CPT_70551),
                        procedure("p1", "2026-09-01", SCT_MRI_BRAIN)], PATIENT)
    assert [(m.source, m.when, m.kind) for m in found] == [
        ("DiagnosticReport/r1", date(2026, 3, 1), "report"),
        ("ImagingStudy/s1", date(2026, 6, 1), "study"),
        ("Procedure/p1", date(2026, 9, 1), "procedure"),
    ]


def test_the_scan_date_not_the_report_date() -> None:
    (m,) = brain_mris([report("r1", "2026-03-01", LOINC_MR_BRAIN)], PATIENT)
    assert m.when == date(2026, 3, 1)


def test_void_and_not_done_records_are_left_out() -> None:
    found = brain_mris([report("r1", "2026-03-01", LOINC_MR_BRAIN, "entered-in-error"),
                        report("r2", "2026-03-02", LOINC_MR_BRAIN, "cancelled"),
                        procedure("p1", "2026-09-01", SCT_MRI_BRAIN, "not-done")], PATIENT)
    assert found == ()


def test_other_imaging_and_name_only_matches_are_not_brain_mris() -> None:
    chest_ct = {"system": "http://loinc.org", "code": "24627-2"}  # CT Chest
    local = {"system": "urn:oid:1.2.3", "code": "MRBRAIN"}
    found = brain_mris([report("r1", "2026-03-01", chest_ct), report("r2", "2026-03-02", local)],
                       PATIENT)
    assert found == ()


def test_a_local_code_by_configuration() -> None:
    local = {"system": "urn:oid:1.2.3", "code": "MRBRAIN"}
    found = brain_mris([report("r2", "2026-03-02", local)], PATIENT,
                       CodeSets(mri=("urn:oid:1.2.3|MRBRAIN",)))
    assert [m.source for m in found] == ["DiagnosticReport/r2"]


def test_extract_inputs_carries_the_mris() -> None:
    inputs = extract_inputs([report("r1", "2026-03-01", LOINC_MR_BRAIN)], PATIENT)
    assert [m.source for m in inputs.mris] == ["DiagnosticReport/r1"]
