"""``pml-risk assess`` end to end, in real processes: exit codes, stdout, stderr.

The processes of one group run in parallel (a thread pool over ``subprocess.run``), so the
whole module stays within a few seconds on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from smart_app.cli import main

from .fixtures_index import BY_ID, FIXTURES, IDS, ROOT, bundle_path, patient_id


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout, parse_float=Decimal)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PML_RISK_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def cli(*args: str, command: Sequence[str] = (sys.executable, "-m", "smart_app.cli")) -> Run:
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120
    )
    return Run(done.returncode, done.stdout, done.stderr)


def cli_many(argvs: dict[str, tuple[str, ...]]) -> dict[str, Run]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda argv: cli(*argv), argvs.values())
        return dict(zip(argvs, runs, strict=True))


def assess_args(fixture_id: str, *more: str) -> tuple[str, ...]:
    return ("assess", str(bundle_path(fixture_id)), "--at", BY_ID[fixture_id]["at"], *more)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    return lines[0]


# --- every fixture, JSON ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_runs() -> dict[str, Run]:
    return cli_many({fid: assess_args(fid) for fid in IDS})


@pytest.mark.parametrize("fixture_id", IDS)
def test_assess_every_fixture(fixture_runs: dict[str, Run], fixture_id: str) -> None:
    run = fixture_runs[fixture_id]
    expected = BY_ID[fixture_id]["expected"]
    body = run.json()  # stdout is always one JSON document
    assert "Traceback" not in run.stderr

    if expected["status"] == "ok":
        assert run.code == 0, run.stderr
        assert run.stderr == ""
        assert body["resourceType"] == "RiskAssessment"
        RiskAssessment.model_validate(json.loads(run.stdout))
        assert body["subject"] == {"reference": f"Patient/{patient_id(fixture_id)}"}
        assert body["occurrenceDateTime"] == BY_ID[fixture_id]["at"]
        [prediction] = body["prediction"]
        assert prediction["probabilityDecimal"] == Decimal(expected["per_1000"]) / 10
        assert prediction["qualitativeRisk"]["coding"][0]["code"] == expected["qualitative"]
        rationale = prediction["rationale"]
        assert f"{expected['per_1000']} per 1,000" in rationale
        assert f"{expected['row']}, {expected['band']}" in rationale
        assert "berger-fox-2016" in rationale
        assert body["basis"]
    else:
        assert run.code == 3, run.stderr
        assert body["resourceType"] == "OperationOutcome"
        assert [issue["code"] for issue in body["issue"]] == ["incomplete"]
        assert body["issue"][0]["severity"] == "error"
        line = one_line(run.stderr)
        assert line.startswith(f"pml-risk: no estimate for Patient/{patient_id(fixture_id)}: ")
        assert body["issue"][0]["diagnostics"] in line


def test_incomplete_outcomes_say_what_to_order(fixture_runs: dict[str, Run]) -> None:
    missing = fixture_runs["no-antibody-result"].json()["issue"][0]["diagnostics"]
    assert "No final anti-JCV antibody result" in missing and "Order" in missing
    indeterminate = fixture_runs["indeterminate"].json()["issue"][0]["diagnostics"]
    assert "indeterminate" in indeterminate and "confirmatory" in indeterminate


def test_notes_carry_the_fixture_warnings(fixture_runs: dict[str, Run]) -> None:
    def notes(fid: str) -> str:
        return " ".join(n["text"] for n in fixture_runs[fid].json()["note"])

    assert "beyond published data (72 infusions)" in notes("ex10-beyond-72-100-infusions")
    assert "retest due since 2026-09-25" in notes("stale-result")
    assert "Reported in one analysis only" in notes("no-infusions")
    assert "Extended-interval dosing" in notes("ex12-eid-40-over-60-months")


# --- text format, --at, --config --------------------------------------------------------------

@pytest.fixture(scope="module")
def other_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("cli-config")
    codes_config = tmp / "codes.toml"
    codes_config.write_text(
        '[codes]\njcv_antibody = ["urn:oid:1.2.3.4.5|JCVAB"]\n'
        'jcv_index = ["urn:oid:1.2.3.4.5|JCVABIDX"]\n',
        encoding="utf-8",
    )
    table = tmp / "table.toml"
    table.write_text(
        'id = "flat-test"\ntitle = "Flat test table"\nsources = ["unit test"]\n'
        '[[rows]]\nlabel = "antibody positive"\nantibody = "positive"\n'
        'prior_immunosuppressant = false\ncells = [{ min = 0, per_1000 = "5" }]\n',
        encoding="utf-8",
    )
    table_config = tmp / "table-config.toml"
    table_config.write_text(f'risk_table = "{table}"\n', encoding="utf-8")
    bad_table = tmp / "bad-table.toml"
    bad_table.write_text('id = "x"\ntitle = "x"\nsources = []\nrows = []\n', encoding="utf-8")
    bad_table_config = tmp / "bad-table-config.toml"
    bad_table_config.write_text(f'risk_table = "{bad_table}"\n', encoding="utf-8")
    return cli_many({
        "text ex05": assess_args("ex05-index-1-51-25-infusions", "--format", "text"),
        "text ex10": assess_args("ex10-beyond-72-100-infusions", "--format", "text"),
        "text indeterminate": assess_args("indeterminate", "--format", "text"),
        "stale in June": ("assess", str(bundle_path("stale-result")), "--at", "2026-06-01"),
        "local codes configured": assess_args("local-lab-code", "--config", str(codes_config)),
        "table configured": assess_args("ex06-index-3-0-12-infusions",
                                        "--config", str(table_config)),
        "bad table configured": assess_args("ex06-index-3-0-12-infusions",
                                            "--config", str(bad_table_config)),
        "config missing": assess_args("ex06-index-3-0-12-infusions",
                                      "--config", str(tmp / "absent.toml")),
    })


def test_text_format_shows_figure_cell_and_warnings(other_runs: dict[str, Run]) -> None:
    run = other_runs["text ex05"]
    assert run.code == 0
    out = run.stdout
    assert "8.8 per 1,000" in out
    assert "about 1 in 114" in out
    assert "category high" in out
    assert "antibody positive, no prior IS, index > 1.5, 25–48 infusions [berger-fox-2016]" in out
    assert "Warnings:" in out
    assert "near the 1.5 cut-off" in out
    assert "Prior immunosuppressant: no (none on record)" in out
    assert "Natalizumab infusions: 25" in out


def test_text_format_beyond_the_table(other_runs: dict[str, Run]) -> None:
    out = other_runs["text ex10"].stdout
    assert "10.1 per 1,000 (about 1 in 99)" in out
    assert "49–72 infusions" in out
    assert "beyond published data (72 infusions)" in out


def test_text_format_without_an_estimate(other_runs: dict[str, Run]) -> None:
    run = other_runs["text indeterminate"]
    assert run.code == 3
    assert "NO ESTIMATE" in run.stdout
    assert "per 1,000" not in run.stdout
    one_line(run.stderr)


def test_at_sets_the_date_and_the_staleness(
    fixture_runs: dict[str, Run], other_runs: dict[str, Run]
) -> None:
    november = fixture_runs["stale-result"].json()
    june = other_runs["stale in June"]
    assert june.code == 0
    body = june.json()
    assert november["occurrenceDateTime"] == "2026-11-25"
    assert body["occurrenceDateTime"] == "2026-06-01"
    assert any("retest due" in n["text"] for n in november["note"])
    assert not any("retest due" in n["text"] for n in body["note"])
    # On 1 June the 6 infusions given since were not yet given: 24 infusions, band 0–24.
    assert body["prediction"][0]["probabilityDecimal"] == Decimal("0.02")
    assert "0–24 infusions" in body["prediction"][0]["rationale"]
    assert any("dated after the assessment date 2026-06-01" in n["text"] for n in body["note"])


def test_configured_local_codes_replace_the_name_match(
    fixture_runs: dict[str, Run], other_runs: dict[str, Run]
) -> None:
    def local_warning(run: Run) -> bool:
        return any("recognised by their name" in n["text"] for n in run.json()["note"])

    configured = other_runs["local codes configured"]
    assert configured.code == 0
    assert configured.json()["prediction"][0]["probabilityDecimal"] == Decimal("0.11")
    assert local_warning(fixture_runs["local-lab-code"])
    assert not local_warning(configured)


def test_risk_table_from_the_config_file(other_runs: dict[str, Run]) -> None:
    run = other_runs["table configured"]
    assert run.code == 0, run.stderr
    body = run.json()
    assert body["method"]["coding"][0]["code"] == "flat-test"
    assert body["prediction"][0]["probabilityDecimal"] == Decimal("0.5")


@pytest.mark.parametrize("case", ["bad table configured", "config missing"])
def test_bad_configuration_is_bad_input(other_runs: dict[str, Run], case: str) -> None:
    run = other_runs[case]
    assert run.code == 2
    assert run.json()["issue"][0]["code"] == "invalid"
    assert one_line(run.stderr).startswith("pml-risk: configuration: ")


# --- bad input --------------------------------------------------------------------------------

BAD_INPUT_XFAIL: dict[str, str] = {}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("cli-bad")

    def file(name: str, text: str) -> str:
        path = tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    ok_bundle = str(bundle_path("ex06-index-3-0-12-infusions"))
    string_subject = {
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}},
                  {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                                "code": {"text": "x"}, "subject": "Patient/p1"}}],
    }
    zero_table = file("zero.toml", 'id = "zero"\ntitle = "zero"\nsources = ["x"]\n'
                      '[[rows]]\nlabel = "pos"\nantibody = "positive"\n'
                      'prior_immunosuppressant = false\ncells = [{ min = 0, per_1000 = "0" }]\n')
    not_json_table = file("table.json", '{"id": ')
    at = ("--at", "2026-11-25")
    cases: dict[str, tuple[str, ...]] = {
        "not JSON": (file("not.json", "this is not JSON {"), *at),
        "not UTF-8": (str(_latin1(tmp)), *at),
        "JSON array": (file("array.json", "[]"), *at),
        "Patient not Bundle": (file("patient.json", '{"resourceType": "Patient", "id": "p"}'),
                               *at),
        "unknown Bundle.type": (file("type.json", '{"resourceType": "Bundle", "type": "x"}'),
                                *at),
        "entry not an array": (
            file("entry.json", '{"resourceType": "Bundle", "type": "collection", '
                               '"entry": {"resource": {"resourceType": "Patient"}}}'),
            *at,
        ),
        "entry without resourceType": (
            file("rt.json", '{"resourceType": "Bundle", "type": "collection", '
                            '"entry": [{"resource": {"id": "x"}}]}'),
            *at,
        ),
        "two patients": (str(FIXTURES / "invalid" / "two-patients.json"), *at),
        "no patient": (str(FIXTURES / "invalid" / "no-patient.json"), *at),
        "missing file": (str(tmp / "absent.json"), *at),
        "directory": (str(tmp), *at),
        "bad --at": (ok_bundle, "--at", "2026-13-01"),
        "subject is a string": (file("subject.json", json.dumps(string_subject)), *at),
        "deeply nested JSON": (file("deep.json", "[" * 100_000 + "]" * 100_000), *at),
        "zero table cell": (ok_bundle, *at, "--config",
                            file("zero-config.toml", f'risk_table = "{zero_table}"\n')),
        "table file not JSON": (ok_bundle, *at, "--config",
                                file("json-config.toml", f'risk_table = "{not_json_table}"\n')),
    }
    return cli_many({name: ("assess", *args) for name, args in cases.items()})


def _latin1(tmp: Path) -> Path:
    path = tmp / "latin1-bytes.json"
    path.write_bytes(b'{"resourceType": "Bundle", "type": "collection", "id": "\xe9"}')
    return path


BAD_INPUTS = {
    "not JSON": ("structure", "is not JSON"),
    "not UTF-8": ("structure", "is not JSON"),
    "JSON array": ("structure", "expected a JSON object"),
    "Patient not Bundle": ("structure", "expected a FHIR Bundle, got Patient"),
    "unknown Bundle.type": ("structure", "unknown Bundle.type 'x'"),
    "entry not an array": ("structure", "Bundle.entry must be an array"),
    "entry without resourceType": ("structure", "entry[0].resource has no resourceType"),
    "two patients": ("invalid", "more than one patient"),
    "no patient": ("invalid", "no Patient identifiable"),
    "missing file": ("invalid", "cannot read"),
    "directory": ("invalid", "cannot read"),
    "bad --at": ("invalid", "2026-13-01"),
    "subject is a string": ("structure", "subject"),
    "deeply nested JSON": ("structure", "deep.json"),
    "zero table cell": ("invalid", "zero claims no risk"),
    "table file not JSON": ("invalid", "table.json"),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BAD_INPUT_XFAIL[name]))
        if name in BAD_INPUT_XFAIL else name
        for name in BAD_INPUTS
    ],
)
def test_bad_input_exits_2_with_an_operation_outcome(bad_runs: dict[str, Run], case: str) -> None:
    code, words = BAD_INPUTS[case]
    run = bad_runs[case]
    assert "Traceback" not in run.stderr, run.stderr[-400:]
    assert run.code == 2
    body = run.json()
    assert body["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in body["issue"]] == [code]
    assert words in body["issue"][0]["diagnostics"]
    line = one_line(run.stderr)
    assert line.startswith("pml-risk: ")
    assert words in line


def test_two_patients_names_both(bad_runs: dict[str, Run]) -> None:
    diagnostics = bad_runs["two patients"].json()["issue"][0]["diagnostics"]
    assert diagnostics.count("Patient/") >= 2


def test_console_script() -> None:
    script = shutil.which("pml-risk")
    if script is None:
        pytest.skip("the pml-risk console script is not installed (pip install -e .)")
    run = cli(*assess_args("ex04-index-1-50-24-infusions"), command=(script,))
    assert run.code == 0
    assert run.json()["prediction"][0]["probabilityDecimal"] == Decimal("0.02")


# --- in process (smart_app.cli.main) ----------------------------------------------------------

def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    fid = "ex08-prior-is-mitoxantrone-72"
    assert main(list(assess_args(fid))) == 0
    out = capsys.readouterr()
    body = json.loads(out.out, parse_float=Decimal)
    assert body["prediction"][0]["probabilityDecimal"] == Decimal("1.3")
    assert out.err == ""


def test_malformed_meta_is_tolerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``meta`` carries nothing the estimate uses: a malformed one must not crash the run."""
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "meta": "v1"}}],
    }), encoding="utf-8")
    assert main(["assess", str(path), "--at", "2026-11-25"]) == 3  # no antibody result
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["issue"][0]["code"] == "incomplete"
