"""``pml-risk worklist --from-ndjson``: files a health system already has → the three worklist
files, each row what ``pml-risk assess`` says for that patient, nothing of the PHI left behind.
"""

from __future__ import annotations

import csv
import gzip
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smart_app.cli import main

from .helpers import INDEX, cli_assess, cli_figure, fixture_patient, rows_by_patient, write_ndjson

AT = "2026-11-25"
REQUIRED_COLUMNS = ("patient", "status", "per_1000", "category", "infusions", "retest_due",
                    "mri_interval")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the run's temporary folder at a place the test can inspect."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def worklist(*args: str) -> int:
    return main(["worklist", *args])


def test_every_fixture_row_equals_the_cli_assessment(tmp_path: Path, private_tmp: Path) -> None:
    write_ndjson(tmp_path / "in", gzip_types=("Observation", "MedicationAdministration"))
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                    "--at", AT) == 0
    rows = rows_by_patient(tmp_path / "out")
    assert len(rows) == len(INDEX)
    for entry in INDEX:
        assert entry["at"] == AT
        row = rows[fixture_patient(entry)]
        code, body = cli_assess(entry)
        if code == 0:
            per_1000, category = cli_figure(body)
            assert (row["status"], Decimal(row["per_1000"]), row["category"]) == (
                "estimate", per_1000, category), entry["id"]
            assert row["per_1000"] == entry["expected"]["per_1000"], entry["id"]
        else:
            assert code == 3, entry["id"]
            assert (row["status"], row["per_1000"]) == ("no estimate", ""), entry["id"]
            assert row["reason"], entry["id"]
        assert row["infusions"] == entry["expected"]["infusions"], entry["id"]
    assert list(private_tmp.iterdir()) == []  # the staged PHI is gone


def test_one_mixed_file_gives_the_same_rows(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "per-type")
    write_ndjson(tmp_path / "mixed", mixed=True)
    for name in ("per-type", "mixed"):
        assert worklist("--from-ndjson", str(tmp_path / name), "--out",
                        str(tmp_path / f"out-{name}"), "--at", AT) == 0
    per_type = rows_by_patient(tmp_path / "out-per-type")
    mixed = rows_by_patient(tmp_path / "out-mixed")
    assert {k: (r["per_1000"], r["infusions"]) for k, r in per_type.items()} == {
        k: (r["per_1000"], r["infusions"]) for k, r in mixed.items()}


def test_the_files_a_coordinator_opens(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in")
    out = tmp_path / "out"
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(out), "--at", AT) == 0
    for name in ("worklist.csv", "worklist.json", "worklist.html"):
        assert (out / name).stat().st_mode & 0o077 == 0, f"{name} is readable by others"
    with (out / "worklist.csv").open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert set(REQUIRED_COLUMNS) <= set(table[0])
    ex05 = next(r for r in table if r["patient"] == "ex05-index-1-51-25-infusions")
    expected = next(e["expected"] for e in INDEX if e["id"] == "ex05-index-1-51-25-infusions")
    assert (ex05["per_1000"], ex05["category"]) == (expected["per_1000"], expected["qualitative"])
    assert ex05["infusions"] == "25" and ex05["mri_interval"] == "every 3–4 months"
    assert ex05["name"] and ex05["mrn"] == "E100005"
    negative = next(r for r in table if r["patient"] == "ex01-negative-30")
    assert negative["mri_interval"] == "every 12 months" and negative["retest_due"]
    html = (out / "worklist.html").read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert 'id="due"' in html or "id=due" in html
    summary = json.loads((out / "worklist.json").read_text(encoding="utf-8"))["worklist"]
    assert summary["counts"]["patients"] == len(INDEX)
    assert summary["source"] == "ndjson" and summary["at"] == AT


def test_crossing_24_infusions_since_the_last_run_is_flagged(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in")
    out = tmp_path / "out"
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(out), "--at", AT) == 0
    first = rows_by_patient(out)["ex05-index-1-51-25-infusions"]
    assert first["crossed_24"] == "first run"
    # The previous night the chart had 24 infusions; tonight it has 25.
    data = json.loads((out / "worklist.json").read_text(encoding="utf-8"))
    for row in data["rows"]:
        if row["patient"] == "ex05-index-1-51-25-infusions":
            row["infusions"] = 24
    (out / "worklist.json").write_text(json.dumps(data), encoding="utf-8")
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(out), "--at", AT) == 0
    rows = rows_by_patient(out)
    assert rows["ex05-index-1-51-25-infusions"]["crossed_24"] == "yes"
    assert rows["ex05-index-1-51-25-infusions"]["previous_infusions"] == 24
    assert rows["ex10-beyond-72-100-infusions"]["crossed_24"] == "no"


def test_audit_trail_holds_counts_not_patients(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in")
    trail = tmp_path / "audit.jsonl"
    conf = tmp_path / "pml-risk.toml"
    conf.write_text(f'[audit]\npath = "{trail}"\n', encoding="utf-8")
    assert worklist("--config", str(conf), "--from-ndjson", str(tmp_path / "in"), "--out",
                    str(tmp_path / "out"), "--at", AT) == 0
    [line] = trail.read_text(encoding="utf-8").splitlines()
    event: dict[str, Any] = json.loads(line)
    assert event["event"] == "worklist.run" and event["status"] == "ok"
    assert event["patients"] == len(INDEX)
    assert event["resource_types"]["Patient"] == len(INDEX)
    for entry in INDEX:
        assert fixture_patient(entry) not in line
        assert entry["name"] not in line


@pytest.mark.parametrize("content, message, code", [
    # An unreadable line that names no patient could be anyone's: no list at all.
    (b'{"resourceType": "Patient", "id": "p1"}\n{not json\n', "1 line(s) of the export are "
     "not FHIR resources and name no patient", 1),
    (b'[1, 2]\n', "are not FHIR resources and name no patient", 1),
    (gzip.compress(b'{"resourceType": "Patient", "id": "p1"}\n')[:-8],
     "Patient.ndjson.gz: not readable", 2),
])
def test_a_broken_file_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, private_tmp: Path, capsys: pytest.CaptureFixture[str], content: bytes,
    message: str, code: int,
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "Patient.ndjson.gz").write_bytes(content)
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                    "--at", AT) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(private_tmp.iterdir()) == []
    assert not (tmp_path / "out" / "worklist.csv").exists()


@pytest.mark.parametrize("args, message", [
    (("--from-ndjson", "/nonexistent/dir"), "not a directory"),
    (("--at", "25/11/2026", "--from-ndjson", "."), "--at: expected a date"),
    ((), "give --tenant and --group"),
    (("--tenant", "nobody", "--from-ndjson", "."), "no tenant named 'nobody'"),
])
def test_bad_arguments_say_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert worklist(*args, "--out", str(tmp_path / "out")) == 2
    assert message in capsys.readouterr().err


def test_an_empty_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(tmp_path / "o")) == 2
    assert "no .ndjson or .ndjson.gz files" in capsys.readouterr().err


def test_worker_processes_give_the_same_rows(tmp_path: Path) -> None:
    """Large cohorts are assessed in worker processes; the rows must not depend on it."""
    write_ndjson(tmp_path / "in", gzip_types=("Observation",))
    for workers in ("1", "2"):
        assert worklist("--from-ndjson", str(tmp_path / "in"), "--out",
                        str(tmp_path / f"out-{workers}"), "--at", AT, "--workers", workers) == 0
    one = json.loads((tmp_path / "out-1" / "worklist.json").read_text(encoding="utf-8"))["rows"]
    two = json.loads((tmp_path / "out-2" / "worklist.json").read_text(encoding="utf-8"))["rows"]
    assert one == two and len(one) == len(INDEX)


def test_a_chart_link_must_be_an_https_template_with_the_patient(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "pml-risk.toml"
    conf.write_text('[[tenants]]\nname = "T"\niss = "https://ehr.test/fhir"\nclient_id = "c"\n'
                    'worklist_link = "http://ehr.test/chart"\n', encoding="utf-8")
    (tmp_path / "in").mkdir()
    assert worklist("--config", str(conf), "--from-ndjson", str(tmp_path / "in"), "--out",
                    str(tmp_path / "out")) == 2
    assert 'worklist_link: expected an https URL with "{patient}"' in capsys.readouterr().err


def _prometheus(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_the_run_writes_its_figures_for_the_textfile_collector(tmp_path: Path) -> None:
    """Operations see each nightly run (patients, estimates, duration, outcome) in their
    dashboards without reading the worklist itself: counts only, no patient in the file."""
    write_ndjson(tmp_path / "in")
    metrics = tmp_path / "pml_risk_worklist.prom"
    assert worklist("--from-ndjson", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                    "--at", AT, "--metrics-file", str(metrics)) == 0
    text = metrics.read_text(encoding="utf-8")
    figures = _prometheus(text)
    rows = rows_by_patient(tmp_path / "out")
    assert figures['pml_risk_worklist_runs_total{status="ok"}'] == 1
    assert figures["pml_risk_worklist_patients"] == len(rows) == len(INDEX)
    estimates = sum(1 for r in rows.values() if r["status"] != "no estimate")
    assert figures["pml_risk_worklist_estimates"] == estimates
    assert figures["pml_risk_worklist_run_seconds"] > 0
    for entry in INDEX:
        assert fixture_patient(entry) not in text

    (tmp_path / "empty").mkdir()
    assert worklist("--from-ndjson", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
                    "--at", AT, "--metrics-file", str(metrics)) == 2
    assert _prometheus(metrics.read_text(encoding="utf-8"))[
        'pml_risk_worklist_runs_total{status="failed"}'] == 1
