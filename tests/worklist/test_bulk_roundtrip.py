"""``pml-risk worklist --tenant --group`` against the sandbox EHR over loopback HTTP: Backend
Services token → Group export → worklist files, and each vendor behaviour the client must
survive (slow export, transient errors, no MedicationAdministration in the export, storage that
must not see the token, short-lived tokens, a refused _typeFilter).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from smart_app.cli import main
from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread
from smart_app.smart import keys

from .helpers import (
    FIXTURES,
    INDEX,
    ROOT,
    cli_assess,
    cli_figure,
    fixture_patient,
    rows_by_patient,
)

pytestmark = pytest.mark.integration

AT = "2026-11-25"
CLIENT_ID = "pml-risk-backend"
GROUP = "natalizumab-cohort"


@pytest.fixture(scope="module")
def signing_keys() -> keys.SigningKeys:
    return keys.generate()


@dataclass
class Ehr:
    root: str
    config: Path
    out: Path
    scratch: Path
    sandbox: Flask

    @property
    def base(self) -> str:
        return f"{self.root}/sandbox"

    def bulk(self, **changes: Any) -> dict[str, Any]:
        if changes:
            r = requests.post(f"{self.base}/_control/bulk", json=changes, timeout=10)
        else:
            r = requests.get(f"{self.base}/_control/bulk", timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def control(self, **changes: Any) -> dict[str, Any]:
        r = requests.post(f"{self.base}/_control", json=changes, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.bulk()["events"] if e["event"] == kind]

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self.control()["requests"])

    def worklist(self, *more: str) -> int:
        return main(["worklist", "--config", str(self.config), "--tenant", "Sandbox",
                     "--group", GROUP, "--out", str(self.out), "--at", AT, *more])

    def rows(self) -> dict[str, dict[str, Any]]:
        return rows_by_patient(self.out)

    def summary(self) -> dict[str, Any]:
        data = json.loads((self.out / "worklist.json").read_text(encoding="utf-8"))
        return dict(data["worklist"])


@pytest.fixture
def ehr(tmp_path: Path, signing_keys: keys.SigningKeys,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Ehr]:
    """The sandbox on a loopback port; the app's keys registered as a backend client."""
    keys_file = tmp_path / "jwks-private.json"
    keys.save(signing_keys, keys_file)
    sandbox = create_sandbox(SandboxConfig(
        fixtures_dir=FIXTURES,
        clients=(SandboxClient(CLIENT_ID, "private_key_jwt", ("http://app.test/callback",),
                               jwks=signing_keys.public_jwks()),),
        allow_control=True,
    ))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with serve_in_thread(mounted(sandbox)) as root:
        conf = tmp_path / "pml-risk.toml"
        # The app's launch client and the backend system are registered separately (Epic).
        conf.write_text(
            f'keys_file = "{keys_file}"\nbase_url = "https://pml-risk.test"\n'
            f'fhir_timeout = 5\n[[tenants]]\nname = "Sandbox"\niss = "{root}/sandbox/fhir"\n'
            f'client_id = "pml-risk-launch"\nbackend_client_id = "{CLIENT_ID}"\n'
            'auth = "private_key_jwt"\nsigning_alg = "ES384"\n',
            encoding="utf-8")
        yield Ehr(root, conf, tmp_path / "out", scratch, sandbox)


def assert_rows_equal_cli(rows: dict[str, dict[str, Any]]) -> None:
    assert len(rows) == len(INDEX)
    for entry in INDEX:
        row = rows[fixture_patient(entry)]
        code, body = cli_assess(entry)
        if code == 0:
            per_1000, category = cli_figure(body)
            assert (Decimal(row["per_1000"]), row["category"]) == (per_1000, category), entry["id"]
        else:
            assert (row["status"], row["per_1000"]) == ("no estimate", ""), entry["id"]
        assert row["infusions"] == entry["expected"]["infusions"], entry["id"]


def test_round_trip_token_export_worklist(ehr: Ehr) -> None:
    assert ehr.worklist() == 0
    assert_rows_equal_cli(ehr.rows())
    # Backend Services: one client_credentials token request, signed with the app's key.
    tokens = [r for r in ehr.requests_log() if r["path"] == "/sandbox/auth/token"]
    assert len(tokens) == 1 and tokens[0]["status"] == 200
    [kickoff] = ehr.events("kickoff")
    assert kickoff["types"] == ["Patient", "Observation", "MedicationAdministration",
                                "MedicationStatement", "MedicationRequest", "Medication",
                                "DiagnosticReport", "ImagingStudy", "Procedure"]
    assert kickoff["type_filter"] == {"Observation": [{"category": "laboratory"}]}
    assert [e["job"] for e in ehr.events("delete")] == [kickoff["job"]]
    assert ehr.bulk()["jobs"] == []  # deleted on the server too
    summary = ehr.summary()
    assert summary["source"] == "bulk-export" and summary["group"] == GROUP
    assert summary["transactionTime"].endswith("Z")
    assert summary["export"]["deleted"] is True
    assert list(ehr.scratch.iterdir()) == []
    # No chart link configured: no link that would open the app on "No patient selected".
    assert ehr.rows()["ex05-index-1-51-25-infusions"]["link"] == ""
    html = (ehr.out / "worklist.html").read_text(encoding="utf-8")
    assert "No chart links" in html and "launch the app from there" in html
    ehr.config.write_text(ehr.config.read_text(encoding="utf-8").replace(
        'auth = "private_key_jwt"', 'worklist_link = "https://ehr.test/chart/{patient}"\n'
        'auth = "private_key_jwt"'), encoding="utf-8")
    assert ehr.worklist() == 0
    assert ehr.rows()["ex05-index-1-51-25-infusions"]["link"] == \
        "https://ehr.test/chart/ex05-index-1-51-25-infusions"
    assert "No chart links" not in (ehr.out / "worklist.html").read_text(encoding="utf-8")


def test_slow_export_honours_retry_after(ehr: Ehr) -> None:
    ehr.bulk(slow_polls=2, retry_after=1)
    started = time.monotonic()
    assert ehr.worklist() == 0
    polls = ehr.events("poll")
    assert [p["status"] for p in polls] == [202, 202, 200]
    assert time.monotonic() - started >= 2  # it waited as told, not hammering the server
    assert ehr.summary()["counts"]["patients"] == len(INDEX)


def test_transient_errors_are_retried(ehr: Ehr) -> None:
    ehr.bulk(transient_errors=2, retry_after=0)
    assert ehr.worklist() == 0
    assert [p["status"] for p in ehr.events("poll")] == [500, 500, 200]
    assert_rows_equal_cli(ehr.rows())


def test_a_failing_export_still_deletes_the_job_and_leaves_nothing(
    ehr: Ehr, capsys: pytest.CaptureFixture[str]
) -> None:
    ehr.bulk(transient_errors=50, retry_after=0)
    assert ehr.worklist() == 1
    err = capsys.readouterr().err
    assert "kept failing" in err and "Traceback" not in err
    assert len(ehr.events("delete")) == 1
    assert not ehr.out.exists() or not any(ehr.out.iterdir())
    assert list(ehr.scratch.iterdir()) == []


def test_without_medication_administration_falls_back_to_per_patient_searches(ehr: Ehr) -> None:
    ehr.bulk(no_medication_administration=True)
    assert ehr.worklist("--concurrency", "3") == 0
    assert_rows_equal_cli(ehr.rows())
    kickoffs = ehr.events("kickoff")
    assert len(kickoffs) == 1 and "MedicationAdministration" not in kickoffs[0]["types"]
    searches = [r for r in ehr.requests_log()
                if r["path"] == "/sandbox/fhir/MedicationAdministration"]
    assert sorted(r["args"]["patient"][0] for r in searches) == sorted(
        fixture_patient(e) for e in INDEX)
    summary = ehr.summary()
    assert any("cannot export MedicationAdministration" in n for n in summary["notes"])
    assert ehr.rows()["ex05-index-1-51-25-infusions"]["data_notes"] == \
        "MedicationAdministration by per-patient search"


def test_a_failed_per_patient_search_means_no_estimate_for_that_patient(ehr: Ehr) -> None:
    ehr.bulk(no_medication_administration=True)
    ehr.control(fail_next=[500, 500, 500])
    assert ehr.worklist("--concurrency", "1") == 0
    unread = [r for r in ehr.rows().values() if "exposure-unread" in r["missing_or_stale"]]
    assert len(unread) == 3
    for row in unread:  # never a lower figure from a chart missing its infusions
        assert row["status"] == "no estimate" and row["per_1000"] == ""
        if row["missing_or_stale"][0] == "exposure-unread":  # else another gap comes first
            assert "did not let the app read natalizumab administrations" in row["reason"]
        assert row["data_notes"] == "MedicationAdministration could not be read (HTTP 500, " \
            "transient)"
    assert any("3 patient(s) failed" in n for n in ehr.summary()["notes"])


@pytest.mark.parametrize("mode", ["presigned", "redirect"])
def test_storage_downloads_never_carry_the_token(ehr: Ehr, mode: str) -> None:
    ehr.bulk(download=mode, lines_per_file=200)
    assert ehr.worklist() == 0
    state = ehr.bulk()
    assert state["tokens_at_storage"] == 0
    stored = [e for e in state["events"] if e["event"] == "storage"]
    assert stored and all(e["status"] == 200 and not e["authorization"] for e in stored)
    if mode == "redirect":
        assert {e["host"].split(":")[0] for e in stored} == {"localhost"}
    assert_rows_equal_cli(ehr.rows())


def test_short_lived_tokens_are_renewed(ehr: Ehr) -> None:
    ehr.bulk(backend_token_lifetime=1, slow_polls=3, retry_after=1)
    assert ehr.worklist() == 0
    tokens = [r for r in ehr.requests_log() if r["path"] == "/sandbox/auth/token"]
    assert len(tokens) >= 3 and all(t["status"] == 200 for t in tokens)
    assert ehr.summary()["export"]["token_requests"] == len(tokens)


def test_a_server_without_type_filter_gets_a_plain_export(ehr: Ehr) -> None:
    ehr.bulk(type_filter=False)
    assert ehr.worklist() == 0
    assert [k["type_filter"] for k in ehr.events("kickoff")] == [{}]
    assert any("refused _typeFilter" in n for n in ehr.summary()["notes"])
    assert_rows_equal_cli(ehr.rows())


def test_jcv_code_filter_narrows_the_export(ehr: Ehr) -> None:
    assert ehr.worklist("--observations", "jcv-codes") == 0
    [kickoff] = ehr.events("kickoff")
    codes = [query["code"] for query in kickoff["type_filter"]["Observation"]]
    assert "http://loinc.org|70173-0" in codes and "http://loinc.org|100977-8" in codes
    counts = ehr.summary()["counts"]["resource_types"]
    assert counts["Observation"] < 419  # other labs left on the server


def test_one_client_for_launch_and_backend(ehr: Ehr) -> None:
    """Without backend_client_id the tenant's client_id signs the backend assertion (RS384)."""
    text = ehr.config.read_text(encoding="utf-8")
    text = text.replace('client_id = "pml-risk-launch"\n', "").replace(
        "backend_client_id", "client_id").replace("ES384", "RS384")
    ehr.config.write_text(text, encoding="utf-8")
    assert ehr.worklist() == 0
    assert ehr.summary()["counts"]["patients"] == len(INDEX)


def test_unregistered_backend_client_is_refused(ehr: Ehr,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    text = ehr.config.read_text(encoding="utf-8")
    ehr.config.write_text(text.replace(f'backend_client_id = "{CLIENT_ID}"',
                                       'backend_client_id = "nobody"'), encoding="utf-8")
    assert ehr.worklist() == 1
    err = capsys.readouterr().err
    assert "refused the backend token (HTTP 400, invalid_client" in err
    assert list(ehr.scratch.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                    signal.SIGINT])
def test_sigterm_removes_the_phi_folder_and_cancels_the_export(ehr: Ehr, signum: int) -> None:
    """A scheduler's kill, a closed SSH session, Ctrl-\\ or Ctrl-C mid-run: the private folder
    goes, the job is cancelled (DELETE), and no traceback is printed."""
    ehr.bulk(slow_polls=1000, retry_after=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PML_RISK_")}
    env["TMPDIR"] = str(ehr.scratch)
    child = subprocess.Popen(
        [sys.executable, "-m", "smart_app.cli", "worklist", "--config", str(ehr.config),
         "--tenant", "Sandbox", "--group", GROUP, "--out", str(ehr.out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (ehr.events("poll") and any(ehr.scratch.iterdir())):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run never started polling"
            time.sleep(0.1)
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum
    assert "Traceback" not in err
    assert list(ehr.scratch.iterdir()) == []
    assert len(ehr.events("delete")) == 1
    assert not ehr.out.exists()


NEW_RESULT = {
    "resourceType": "Observation", "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                              "observation-category", "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "70173-0"}],
             "text": "JC virus antibody"},
    "subject": {"reference": "Patient/no-antibody-result"},
    "effectiveDateTime": "2026-11-20T09:00:00Z",
    "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                         "code": "260385009"}], "text": "Negative"},
}


def test_since_last_reads_only_the_changed_charts(ehr: Ehr, tmp_path: Path) -> None:
    assert ehr.worklist() == 0
    first = ehr.rows()
    since = ehr.summary()["transactionTime"]
    assert first["no-antibody-result"]["status"] == "no estimate"
    # The lab files a new anti-JCV result for one patient (on the EHR's side: its store).
    ehr.sandbox.extensions["sandbox"].store.create(dict(NEW_RESULT))
    ehr.control(clear_requests=True)

    assert ehr.worklist("--since", "last") == 0
    assert ehr.events("kickoff")[-1]["since"] == since
    searched = {r["args"].get("patient", r["args"].get("_id", ["?"]))[0]
                for r in ehr.requests_log() if r["path"].startswith("/sandbox/fhir/")
                and "Group" not in r["path"] and ".well-known" not in r["path"]
                and not r["path"].endswith("/metadata")}
    assert searched == {"no-antibody-result"}
    rows = ehr.rows()
    changed = rows["no-antibody-result"]
    assert changed["status"] == "estimate" and changed["antibody"] == "negative"
    assert changed["data_notes"].startswith("changed since the last run")
    for pid, row in rows.items():
        if pid != "no-antibody-result":
            assert row["per_1000"] == first[pid]["per_1000"]
            assert row["data_notes"].startswith("chart unchanged since the run of 2026-11-25")
    assert len(rows) == len(INDEX)
    # The incremental list says what a full export of the same data says.
    full_out = tmp_path / "full"
    assert main(["worklist", "--config", str(ehr.config), "--tenant", "Sandbox", "--group",
                 GROUP, "--out", str(full_out), "--at", AT]) == 0
    full = rows_by_patient(full_out)
    assert {p: (r["per_1000"], r["category"], r["infusions"]) for p, r in full.items()} == {
        p: (r["per_1000"], r["category"], r["infusions"]) for p, r in rows.items()}


def test_since_needs_an_earlier_run_of_the_same_group(
    ehr: Ehr, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ehr.worklist("--since", "last") == 1
    assert "no earlier worklist of this tenant and group" in capsys.readouterr().err
    assert ehr.worklist("--since", "yesterday") == 2
    assert "--since: expected a FHIR instant" in capsys.readouterr().err
    assert ehr.events("kickoff") == []


def test_unknown_group_is_a_clear_failure(ehr: Ehr, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["worklist", "--config", str(ehr.config), "--tenant", "Sandbox", "--group",
                 "no-such-group", "--out", str(ehr.out)])
    assert code == 1
    assert "no Group/no-such-group" in capsys.readouterr().err


def test_oracle_export_types_are_decided_before_the_kick_off(ehr: Ehr) -> None:
    """Oracle Health's ``_type`` list has no MedicationAdministration, MedicationStatement or
    Medication: they are left out of the one kick-off and read per patient from the start."""
    ehr.config.write_text(ehr.config.read_text(encoding="utf-8").replace(
        'auth = "private_key_jwt"', 'vendor = "oracle"\nauth = "private_key_jwt"'),
        encoding="utf-8")
    assert ehr.worklist() == 0
    [kickoff] = ehr.events("kickoff")  # no refusal needed to learn it
    assert kickoff["types"] == ["Patient", "Observation", "MedicationRequest",
                                "DiagnosticReport", "Procedure"]
    assert_rows_equal_cli(ehr.rows())
    searched = {r["path"].rsplit("/", 1)[1] for r in ehr.requests_log()
                if r["path"].startswith("/sandbox/fhir/Medication")}
    assert searched == {"MedicationAdministration", "MedicationStatement"}
