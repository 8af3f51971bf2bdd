"""The clinical-safety examples through ``pml-risk assess`` in real processes (exit codes, the
RiskAssessment or the OperationOutcome, the text summary); docs/clinical-basis.md §3–§8."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .fixtures_index import bundle_path
from .test_cli import Run, cli, cli_many

AT = "2026-11-25"
EX05 = str(bundle_path("ex05-index-1-51-25-infusions"))


def bundle_file(tmp: Path, name: str, transform: Any) -> str:
    data = json.loads(Path(EX05).read_text(encoding="utf-8"))
    path = tmp / name
    path.write_text(json.dumps(transform(data)), encoding="utf-8")
    return str(path)


def doubled_infusions(data: dict[str, Any]) -> dict[str, Any]:
    """Each infusion twice: once completed, once entered-in-error, no meta to order them."""
    copies = [
        {**e, "resource": {**e["resource"], "status": "entered-in-error"}}
        for e in data["entry"] if e["resource"]["resourceType"] == "MedicationAdministration"
    ]
    return {**data, "entry": [*data["entry"], *copies]}


def shuffled(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "entry": list(reversed(data["entry"]))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    tmp = tmp_path_factory.mktemp("cli-safety")
    doubled = bundle_file(tmp, "doubled.json", doubled_infusions)
    reversed_file = bundle_file(tmp, "reversed.json", shuffled)
    return cli_many({
        "discordant": ("assess", str(bundle_path("discordant-negative-then-index")), "--at", AT),
        "bound": ("assess", str(bundle_path("index-bound-above-cutoff")), "--at", AT),
        "unread": ("assess", EX05, "--at", AT, "--unread", "MedicationAdministration,"
                   "MedicationStatement,MedicationRequest"),
        "prior-unread": ("assess", EX05, "--at", AT, "--format", "text",
                         "--unread", "MedicationStatement,MedicationRequest"),
        "prior-unread-json": ("assess", EX05, "--at", AT,
                              "--unread", "MedicationStatement,MedicationRequest"),
        "bad-type": ("assess", EX05, "--at", AT, "--unread", "Condition"),
        "doubled": ("assess", doubled, "--at", AT),
        "today": ("assess", EX05, "--at", AT),
        "reversed": ("assess", reversed_file, "--at", AT),
        "later": ("assess", EX05, "--at", "2027-05-25"),
        "not-counted": ("assess", str(bundle_path("immunosuppressant-records-not-use")),
                        "--at", AT, "--format", "text"),
        "beyond": ("assess", str(bundle_path("negative-beyond-follow-up")), "--at", AT,
                   "--format", "text"),
        "ex05-text": ("assess", EX05, "--at", AT, "--format", "text"),
    })


def diagnostics(run: Run) -> str:
    outcome = run.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return " ".join(i["diagnostics"] for i in outcome["issue"])


def notes(run: Run) -> str:
    return " ".join(n["text"] for n in run.json()["note"])


def test_discordant_results_exit_3_naming_both(runs: dict[str, Run]) -> None:
    run = runs["discordant"]
    assert run.code == 3
    said = diagnostics(run)
    assert "2026-10-01" in said and "2026-10-03" in said and "laboratory" in said


def test_an_index_above_1_5_as_a_bound_gives_8_8(runs: dict[str, Run]) -> None:
    run = runs["bound"]
    assert run.code == 0, run.stderr
    prediction = run.json()["prediction"][0]
    assert prediction["probabilityDecimal"] == Decimal("0.88")
    assert prediction["qualitativeRisk"]["coding"][0]["code"] == "high"


def test_unread_administrations_exit_3(runs: dict[str, Run]) -> None:
    run = runs["unread"]
    assert run.code == 3
    assert "did not let the app read natalizumab administrations" in diagnostics(run)


def test_unread_prior_sources_keep_the_estimate_with_the_caveat(runs: dict[str, Run]) -> None:
    assert runs["prior-unread"].code == 0
    assert "Prior immunosuppressant: unknown" in runs["prior-unread"].stdout
    assert "Prior immunosuppressant use unknown" in notes(runs["prior-unread-json"])


def test_an_unknown_type_for_unread_is_bad_input(runs: dict[str, Run]) -> None:
    assert runs["bad-type"].code == 2
    assert "Condition" in diagnostics(runs["bad-type"])


def test_conflicting_copies_exit_3(runs: dict[str, Run]) -> None:
    run = runs["doubled"]
    assert run.code == 3
    assert "MedicationAdministration/" in diagnostics(run)


def test_one_identifier_per_day_whatever_the_entry_order(runs: dict[str, Run]) -> None:
    today, reordered, later = (runs[k].json()["identifier"][0]["value"]
                               for k in ("today", "reversed", "later"))
    assert today == reordered != later
    assert runs["today"].json() == runs["reversed"].json()


def test_records_not_counted_and_follow_up_notes_are_printed(runs: dict[str, Run]) -> None:
    assert "Other records (not counted)" in runs["not-counted"].stdout
    assert "order intent plan" in runs["not-counted"].stdout
    assert "about 72 months" in runs["beyond"].stdout


def test_text_output_agrees_with_itself_and_cites_no_internal_file(runs: dict[str, Run]) -> None:
    out = runs["ex05-text"].stdout
    assert "band can change on retest" in out and "does not change the stratum" not in out
    assert "Category: High because" in out
    assert "reference.md" not in out and "S7" not in out
    assert "docs/clinical-basis.md" in notes(runs["today"])


def test_a_one_megabyte_value_string_through_the_cli(tmp_path: Path) -> None:
    def huge_value(data: dict[str, Any]) -> dict[str, Any]:
        for entry in data["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Observation" and "valueQuantity" in r:
                r.pop("valueQuantity")
                r["valueString"] = " " * 1_000_000 + "x"
        return data

    run = cli("assess", bundle_file(tmp_path, "huge.json", huge_value), "--at", AT)
    assert run.code == 0, run.stderr  # positive, index unreadable: "index not available" row
    assert run.json()["prediction"][0]["probabilityDecimal"] == Decimal("0.3")
    assert "could not be read" in notes(run)
