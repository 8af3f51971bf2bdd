"""Assessment → FHIR R4 RiskAssessment (docs/clinical-basis.md §7), validated before it leaves.

The identifier is a hash of what the estimate rests on, so saving twice, double-clicking or
relaunching maps onto one resource through conditional create (``If-None-Exist``).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.riskassessment import RiskAssessment

from ..ops import build
from ..risk.result import Assessment
from .codes import SNOMED
from .present import mri_line

IDENTIFIER_SYSTEM = "https://pml-risk.app/fhir/sid/risk-assessment"
METHOD_SYSTEM = "https://pml-risk.app/fhir/CodeSystem/risk-table"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
QUALITATIVE_DISPLAY = {
    "low": "Low likelihood",
    "moderate": "Moderate likelihood",
    "high": "High likelihood",
}
CODE_TEXT = "PML risk (natalizumab)"
CLINICAL_BASIS = "pml-risk docs/clinical-basis.md"
PML = {"system": SNOMED, "code": "22255007",
       "display": "Progressive multifocal leukoencephalopathy"}


class InvalidRiskAssessment(ValueError):
    """The built resource broke a FHIR rule; it must never be written to a chart."""


def _fmt(number: Decimal) -> str:
    return f"{number.normalize():f}"


def identifier_value(a: Assessment, versions: dict[str, str] | None = None) -> str:
    """A deterministic key: same patient, day, table, inputs and basis → same identifier.

    The assessment date is part of it: saving twice on one day (double-click, relaunch) maps
    onto one RiskAssessment, while a reassessment on a later day is a new record in the chart.
    """
    versions = versions or {}
    o = a.overrides
    key = {
        "patient": a.patient,
        "assessed_on": a.assessed_on.isoformat(),
        "unread": list(a.unread),
        "not_offered": list(a.not_offered),
        "table": [a.table_id, a.table_version],
        "antibody": [
            a.antibody.status.value,
            a.antibody.index_text or None,
        ],
        "tested_on": a.antibody.tested_on.isoformat() if a.antibody.tested_on else None,
        "infusions": a.exposure.infusions,
        "prior_is": a.prior_immunosuppressant.value,
        "overrides": [
            o.antibody.value if o.antibody else None,
            _fmt(o.index) if o.index is not None else None,
            o.clear_index,
            o.infusion_count,
            o.prior_immunosuppressant,
            o.reason,  # a new reason is a new note: it must not fold into the earlier save
        ],
        "basis": sorted(f"{ref}|{versions.get(ref, '')}" for ref in a.basis),
    }
    blob = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def rationale(a: Assessment) -> str:
    assert a.cell is not None
    return (
        f"{_fmt(a.cell.per_1000)} per 1,000 patients (about 1 in {a.one_in:,}) for the exposure "
        f"period, from risk table {a.table_id}, cell: {a.cell.words}. {a.category_reason} "
        "probabilityDecimal is expressed in percent."
    )


def _performer(fhir_user: str | None) -> dict[str, str] | None:
    if not fhir_user:
        return None
    parts = fhir_user.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] in ("Practitioner", "PractitionerRole") and parts[-1]:
        return {"reference": f"{parts[-2]}/{parts[-1]}"}
    return None


def check_invariants(resource: dict[str, Any]) -> None:
    """ras-1 and ras-2, which fhir.resources does not evaluate."""
    for n, prediction in enumerate(resource.get("prediction", [])):
        decimal = prediction.get("probabilityDecimal")
        if decimal is not None and not 0 <= Decimal(str(decimal)) <= 100:
            raise InvalidRiskAssessment(f"ras-2: prediction[{n}].probabilityDecimal must be ≤ 100")
        rng = prediction.get("probabilityRange")
        if rng is not None:
            for end in ("low", "high"):
                bound = rng.get(end)
                if bound is not None and (
                    bound.get("code") != "%" or bound.get("system") != "http://unitsofmeasure.org"
                ):
                    raise InvalidRiskAssessment(
                        f"ras-1: prediction[{n}].probabilityRange.{end} must be UCUM %"
                    )


def validate(resource: dict[str, Any]) -> None:
    try:
        RiskAssessment.model_validate(resource)
    except Exception as exc:  # fhir-core raises ValidationError, KeyError or TypeError
        raise InvalidRiskAssessment(f"RiskAssessment failed R4 validation: {exc}") from exc
    check_invariants(resource)


def build_risk_assessment(
    a: Assessment,
    *,
    encounter: str | None = None,
    performer: str | None = None,
    versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The RiskAssessment for a complete assessment, as validated FHIR R4 JSON."""
    if a.cell is None or a.qualitative is None:
        raise ValueError("no estimate: a RiskAssessment is written only when one was made")
    percent = a.cell.per_1000 / 10
    notes = [f.message for f in a.findings]
    if a.next_band is not None:
        notes.insert(0, a.next_band.text)  # the infusion being planned may change the figure
    notes.append(
        f"Risk table {a.table_id} ({a.table_title}, version {a.table_version}); made by "
        f"pml-risk {build.describe()}. Estimates are "
        "period risk per 1,000 patients, not lifetime risk; probabilityDecimal is in percent. "
        f"Rules and sources: {CLINICAL_BASIS}."
    )
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier_value(a, versions)}],
        "status": "final",
        "method": {
            "coding": [{"system": METHOD_SYSTEM, "code": a.table_id}],
            "text": a.table_title,
        },
        "code": {"text": CODE_TEXT},
        "subject": {"reference": a.patient},
        "occurrenceDateTime": a.assessed_on.isoformat(),
        "basis": [{"reference": ref} for ref in a.basis],
        "prediction": [
            {
                "outcome": {"coding": [PML], "text": PML["display"]},
                "probabilityDecimal": float(percent),
                "qualitativeRisk": {
                    "coding": [
                        {
                            "system": RISK_PROBABILITY,
                            "code": a.qualitative,
                            "display": QUALITATIVE_DISPLAY[a.qualitative],
                        }
                    ]
                },
                "rationale": rationale(a),
            }
        ],
        "mitigation": " ".join(filter(None, (
            a.monitoring.mri, a.monitoring.antibody_retest,
            mri_line(a.monitoring.mri_schedule), *(x.text for x in a.advice)))),
        "note": [{"text": text} for text in notes],
    }
    if encounter:
        resource["encounter"] = {"reference": encounter}
    who = _performer(performer)
    if who:
        resource["performer"] = who
    if not resource["basis"]:
        del resource["basis"]
    validate(resource)
    return resource
