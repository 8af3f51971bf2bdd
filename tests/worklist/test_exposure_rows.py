"""Worklist rows for charts whose recorded infusions the evidence says are too few: "no
estimate" with the reason, never the lower band's figure (docs/clinical-basis.md §4).

Each chart is ex05 (25 infusions, index 1.51: 8.8 per 1,000) as an EHR might export it: the
administrations gone and one natalizumab order authored 2024-10-01 left, or every
administration naming a Medication the export does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smart_app.cli import main

from .helpers import FIXTURES, rows_by_patient

AT = "2026-11-25"
EX05 = "ex05-index-1-51-25-infusions"
NATALIZUMAB = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                           "code": "354770"}], "text": "Tysabri 300 mg IV"}


def chart(change: str) -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / f"{EX05}.json").read_text(encoding="utf-8"))
    resources = [e["resource"] for e in data["entry"]]
    if change == "orders-only":
        resources = [r for r in resources if r["resourceType"] != "MedicationAdministration"]
        resources.append({
            "resourceType": "MedicationRequest", "id": "nat-order", "status": "active",
            "intent": "order", "subject": {"reference": f"Patient/{EX05}"},
            "authoredOn": "2024-10-01", "medicationCodeableConcept": NATALIZUMAB,
            "dosageInstruction": [{"timing": {"repeat": {"period": 4, "periodUnit": "wk"}}}],
        })
    else:
        for r in resources:
            if r["resourceType"] == "MedicationAdministration":
                del r["medicationCodeableConcept"]
                r["medicationReference"] = {"reference": "Medication/tysabri-300"}
    return resources


@pytest.mark.parametrize(("change", "reason"), [
    ("orders-only", "Infusions on record: 0; natalizumab ordered since 2024-10-01: about 29 "
                    "infusions — confirm the count"),
    ("unidentified", "25 administration record(s) could be natalizumab infusions"),
])
def test_the_row_is_no_estimate_with_the_reason(tmp_path: Path, change: str,
                                                reason: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "export.ndjson").write_text(
        "".join(json.dumps(r) + "\n" for r in chart(change)), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["worklist", "--from-ndjson", str(folder), "--out", str(out), "--at", AT]) == 0
    row = rows_by_patient(out)[EX05]
    assert (row["status"], row["per_1000"]) == ("no estimate", "")
    assert reason in row["reason"]
