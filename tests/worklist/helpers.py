"""Shared by the worklist tests: NDJSON written from the fixture patients, and ``pml-risk
assess`` run in-process on a fixture, so a worklist row can be compared with the CLI's answer.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from smart_app.cli import main
from smart_app.sandbox.store import FhirStore

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
INDEX: list[dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
EXPORT_TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
                "MedicationRequest", "Medication")


def fixture_patient(entry: dict[str, Any]) -> str:
    data = json.loads((FIXTURES / entry["file"]).read_text(encoding="utf-8"))
    [pid] = [e["resource"]["id"] for e in data["entry"]
             if e["resource"]["resourceType"] == "Patient"]
    return str(pid)


def write_ndjson(directory: Path, *, mixed: bool = False, gzip_types: tuple[str, ...] = (),
                 types: tuple[str, ...] = EXPORT_TYPES) -> list[Path]:
    """The fixture patients as a Bulk export would deliver them: one file per type (some
    gzipped), or everything in one mixed file. The sandbox's store resolves transaction
    bundles' urn:uuid references, as a server would before exporting."""
    store = FhirStore(FIXTURES)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    mixed_lines: list[str] = []
    for kind in types:
        lines = [json.dumps(e.resource) + "\n" for e in store.search(kind, [])]
        if mixed:
            mixed_lines.extend(lines)
            continue
        path = directory / f"{kind}.ndjson{'.gz' if kind in gzip_types else ''}"
        opener: Any = gzip.open if kind in gzip_types else open
        with opener(path, "wt", encoding="utf-8") as fh:
            fh.writelines(lines)
        written.append(path)
    if mixed:
        path = directory / "export.ndjson"
        path.write_text("".join(mixed_lines[::-1]), encoding="utf-8")  # patients last
        written.append(path)
    return written


def cli_assess(entry: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``pml-risk assess FILE --at AT`` in-process: (exit code, stdout JSON)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["assess", str(FIXTURES / entry["file"]), "--at", entry["at"]])
    return code, json.loads(out.getvalue(), parse_float=Decimal)


def cli_figure(ra: dict[str, Any]) -> tuple[Decimal, str]:
    """(risk per 1,000, qualitative code) of a RiskAssessment (probabilityDecimal is percent)."""
    prediction = ra["prediction"][0]
    per_1000 = Decimal(str(prediction["probabilityDecimal"])) * 10
    return per_1000, prediction["qualitativeRisk"]["coding"][0]["code"]


def rows_by_patient(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "worklist.json").read_text(encoding="utf-8"))
    return {row["patient"]: row for row in data["rows"]}
