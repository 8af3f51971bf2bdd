"""The sandbox over the project's real fixture bundles (fhir_fixtures/), as the demo uses it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sandbox_helpers import Smart

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "index.json").is_file(), reason="fhir_fixtures not present"
)


@pytest.fixture
def real(config: SandboxConfig, smart: Smart) -> Iterator[Smart]:
    app = create_sandbox(replace(config, fixtures_dir=FIXTURES))
    with serve_in_thread(mounted(app)) as root:
        yield Smart(root, smart.rsa_key, smart.ec_key)


def test_every_indexed_patient_launches_and_reads(real: Smart) -> None:
    index = json.loads((FIXTURES / "index.json").read_text())
    assert real.control()["patients"]
    scope = "launch patient/Patient.r patient/Observation.rs patient/MedicationAdministration.rs"
    for row in index:
        token = real.login("app-public", scope, launch=real.launch(row["id"]))
        assert token["patient"] == row["id"]
        r = real.get(token["access_token"], "MedicationAdministration", patient=row["id"])
        assert r.status_code == 200
        for entry in r.json()["entry"]:
            assert entry["resource"]["subject"]["reference"] == f"Patient/{row['id']}"


def test_home_page_shows_index(real: Smart) -> None:
    html = real.http.get(f"{real.base}/").text
    for row in json.loads((FIXTURES / "index.json").read_text()):
        assert f"launch?patient={row['id']}" in html


def test_include_medication_from_fixture(real: Smart) -> None:
    scope = "launch patient/MedicationAdministration.rs patient/Medication.rs"
    token = real.login("app-public", scope, launch=real.launch("medication-reference"))
    r = real.get(
        token["access_token"],
        "MedicationAdministration",
        patient="medication-reference",
        _include="MedicationAdministration:medication",
        _count=100,
    )
    bundle = r.json()
    modes = [e["search"]["mode"] for e in bundle["entry"]]
    assert modes.count("include") == 1 and bundle["total"] == modes.count("match")
