"""The synthetic patients of fhir_fixtures/ and their expected results (index.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
INDEX: list[dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
BY_ID: dict[str, dict[str, Any]] = {entry["id"]: entry for entry in INDEX}
IDS = list(BY_ID)


def bundle_path(fixture_id: str) -> Path:
    return FIXTURES / str(BY_ID[fixture_id]["file"])


def patient_id(fixture_id: str) -> str:
    data = json.loads(bundle_path(fixture_id).read_text(encoding="utf-8"))
    [pid] = [e["resource"]["id"] for e in data["entry"]
             if e["resource"]["resourceType"] == "Patient"]
    return str(pid)
