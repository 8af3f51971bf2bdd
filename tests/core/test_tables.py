"""Risk tables as data: the bundled table, a deployment's own file, malformed files, config."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from smart_app import config
from smart_app.config import Settings
from smart_app.fhir.present import text_summary
from smart_app.fhir.riskassessment import build_risk_assessment
from smart_app.risk import Antibody
from smart_app.risk.table import RiskTable, TableError
from smart_app.risk.tables import bundled_tables, load_table
from smart_app.service import assess_chart

from .builders import (
    AT,
    JCV_ANTIBODY,
    JCV_INDEX,
    PATIENT,
    antibody_test,
    codes,
    index_value,
    infusions,
    inputs,
    natalizumab_series,
    observation,
    patient,
    run,
    snomed_result,
)

SPLIT_TABLE = '''
id = "split-0-9"
title = "Test table with an index split at 0.9"
version = "test"
sources = ["Invented for a unit test."]
verified = "not for clinical use"

[[rows]]
label = "antibody negative"
antibody = "negative"
prior_immunosuppressant = false
cells = [{ min = 0, per_1000 = "0.1" }]

[[rows]]
label = "antibody positive, index ≤ 0.9"
antibody = "positive"
prior_immunosuppressant = false
index = { max = "0.9" }
cells = [{ min = 0, max = 24, per_1000 = "0.1" }, { min = 25, per_1000 = "0.5" }]

[[rows]]
label = "antibody positive, index 0.9–1.5"
antibody = "positive"
prior_immunosuppressant = false
index = { above = "0.9", max = "1.5" }
cells = [{ min = 0, max = 24, per_1000 = "0.3" }, { min = 25, per_1000 = "2.5" }]

[[rows]]
label = "antibody positive, index > 1.5"
antibody = "positive"
prior_immunosuppressant = false
index = { above = "1.5" }
cells = [{ min = 0, max = 24, per_1000 = "1.2" }, { min = 25, per_1000 = "9" }]
'''


def bundled_data() -> dict[str, Any]:
    text = (resources.files("smart_app.risk") / "tables" / "berger-fox-2016.toml").read_text(
        encoding="utf-8"
    )
    return tomllib.loads(text)


def write(tmp_path: Path, text: str, name: str = "table.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- the bundled table --------------------------------------------------------------------------

def test_bundled_table_loads_with_sources_and_the_flagged_cell() -> None:
    table = load_table()
    assert table.id == "berger-fox-2016"
    assert "berger-fox-2016" in bundled_tables()
    assert table.title and table.verified
    assert len(table.sources) >= 4
    assert any("Berger" in s for s in table.sources)
    assert any("Plavina" in s for s in table.sources)
    flagged = [(row.label, band.label) for row in table.rows for band in row.bands if band.flag]
    assert flagged == [("antibody positive, prior IS", "0–24 infusions")]
    prior_is = table.row_for(Antibody.POSITIVE, True, None)
    assert prior_is is not None and prior_is.bands[0].per_1000 == Decimal("6")


def test_bundled_table_by_id_and_default_are_the_same() -> None:
    assert load_table("berger-fox-2016") == load_table()


def test_unknown_bundled_table_is_named() -> None:
    with pytest.raises(TableError, match="unknown risk table 'eu-smpc'.*berger-fox-2016"):
        load_table("eu-smpc")


def test_missing_table_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="not found"):
        load_table(str(tmp_path / "nope.toml"))


def test_table_file_that_is_not_toml(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="not valid TOML"):
        load_table(write(tmp_path, "id = [unclosed"))


# --- a deployment's own table -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("index", "n", "split", "bundled"),
    [("0.9", 10, "0.1", "0.2"), ("0.91", 10, "0.3", "0.2"), ("1.2", 30, "2.5", "1.1"),
     ("1.5", 30, "2.5", "1.1"), ("1.51", 30, "9", "8.8")],
)
def test_custom_table_selected_by_path_changes_the_result(
    tmp_path: Path, index: str, n: int, split: str, bundled: str
) -> None:
    table = load_table(write(tmp_path, SPLIT_TABLE))
    data = inputs(antibody_test(Antibody.POSITIVE, index), infusions(n))
    a = run(data, risk_table=table)
    assert a.table_id == "split-0-9"
    assert a.per_1000 == Decimal(split)
    assert run(data).per_1000 == Decimal(bundled)
    ra = build_risk_assessment(a)
    assert ra["method"]["coding"][0]["code"] == "split-0-9"
    assert "split-0-9" in ra["prediction"][0]["rationale"]


def test_custom_table_without_a_row_gives_no_estimate(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, SPLIT_TABLE))
    a = run(inputs(antibody_test(Antibody.POSITIVE, None), infusions(10)), risk_table=table)
    assert not a.complete  # no "index not available" row: no number, never a guess
    assert "antibody-missing" in codes(a)
    assert "split-0-9" in a.missing[0].message


def test_risk_table_selected_in_the_config_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PML_RISK_RISK_TABLE", raising=False)
    table_path = write(tmp_path, SPLIT_TABLE, "split.toml")
    config_path = write(tmp_path, f'risk_table = "{table_path}"\n', "pml-risk.toml")
    settings = config.load(config_path)
    assert settings.risk_table == table_path
    chart = [patient(),
             observation("ab", JCV_ANTIBODY, **snomed_result("10828004")),
             observation("idx", JCV_INDEX, **index_value("1.2")),
             *natalizumab_series(30)]
    result = assess_chart(chart, PATIENT, at=AT, settings=settings)
    assert result.assessment.table_id == "split-0-9"
    assert result.assessment.per_1000 == Decimal("2.5")
    assert result.risk_assessment is not None
    assert result.risk_assessment["method"]["coding"][0]["code"] == "split-0-9"
    default = assess_chart(chart, PATIENT, at=AT, settings=Settings())
    assert default.assessment.per_1000 == Decimal("1.1")


# --- malformed tables ---------------------------------------------------------------------------

def _broken(change: str) -> dict[str, Any]:
    """The bundled table's data with one thing broken (``change`` names it)."""
    data = copy.deepcopy(bundled_data())
    rows = data["rows"]
    if change == "gap":
        rows[2]["cells"][1]["min"] = 26
    elif change == "overlap":
        rows[2]["cells"][1]["min"] = 24
    elif change == "not from 0":
        rows[0]["cells"][0]["min"] = 1
    elif change == "negative value":
        rows[3]["cells"][1]["per_1000"] = "-1.1"
    elif change == "not a number":
        rows[3]["cells"][1]["per_1000"] = "eight"
    elif change == "infinite":
        rows[3]["cells"][1]["per_1000"] = "inf"
    elif change == "no sources":
        data["sources"] = []
    elif change == "unknown antibody":
        rows[0]["antibody"] = "weakly-positive"
    elif change == "bad index rule":
        rows[3]["index"] = {"below": "1.5"}
    elif change == "no id":
        del data["id"]
    elif change == "empty title":
        data["title"] = ""
    elif change == "no rows":
        data["rows"] = []
    elif change == "no cells":
        rows[1]["cells"] = []
    elif change == "cell after open band":
        rows[0]["cells"].append({"min": 100, "per_1000": "1"})
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("gap", r"rows\[2\]\.cells leave a gap or overlap after 0–24 infusions"),
        ("overlap", r"rows\[2\]\.cells leave a gap or overlap"),
        ("not from 0", r"rows\[0\]\.cells must start at 0"),
        ("negative value", r"rows\[3\]\.cells\[1\]\.per_1000 must be a finite number > 0"),
        ("not a number", r"rows\[3\]\.cells\[1\]\.per_1000 is not a number"),
        ("infinite", r"rows\[3\]\.cells\[1\]\.per_1000 must be a finite number"),
        ("no sources", r"berger-fox-2016: no sources"),
        ("unknown antibody", r"rows\[0\]\.antibody must be positive or negative"),
        ("bad index rule", r"rows\[3\]\.index must be"),
        ("no id", r"missing key 'id'"),
        ("empty title", r"title must be a non-empty string"),
        ("no rows", r"no rows"),
        ("no cells", r"rows\[1\]\.cells must start at 0"),
        ("cell after open band", r"rows\[0\]\.cells leave a gap or overlap after 25\+"),
    ],
)
def test_malformed_table_raises_naming_the_problem(change: str, message: str) -> None:
    with pytest.raises(TableError, match=message):
        RiskTable.from_mapping(_broken(change))


def test_malformed_table_file_fails_at_load(tmp_path: Path) -> None:
    text = SPLIT_TABLE.replace('{ min = 25, per_1000 = "2.5" }', '{ min = 30, per_1000 = "2.5" }')
    with pytest.raises(TableError, match=r"rows\[2\]\.cells leave a gap"):
        load_table(write(tmp_path, text))


def test_band_with_max_below_min_is_refused() -> None:
    data = copy.deepcopy(bundled_data())
    data["rows"][2]["cells"][2]["max"] = 40  # "49–40 infusions"
    with pytest.raises(TableError):
        RiskTable.from_mapping(data)


def test_prior_immunosuppressant_must_be_a_boolean() -> None:
    data = copy.deepcopy(bundled_data())
    data["rows"][0]["prior_immunosuppressant"] = "false"
    try:
        table = RiskTable.from_mapping(data)
    except TableError:
        return
    assert table.rows[0].prior_immunosuppressant is False


def test_non_integer_band_edge_raises_table_error() -> None:
    data = copy.deepcopy(bundled_data())
    data["rows"][0]["cells"][0]["max"] = "twenty-four"
    with pytest.raises(TableError):
        RiskTable.from_mapping(data)


def test_row_antibody_must_be_positive_or_negative() -> None:
    data = copy.deepcopy(bundled_data())
    data["rows"][0]["antibody"] = "indeterminate"
    with pytest.raises(TableError, match="positive or negative"):
        RiskTable.from_mapping(data)


def test_json_table_file_that_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(TableError):
        load_table(write(tmp_path, '{"id": ', "table.json"))


def test_json_table_file_loads(tmp_path: Path) -> None:
    import json

    data = tomllib.loads(SPLIT_TABLE)
    table = load_table(write(tmp_path, json.dumps(data), "split.json"))
    assert table.id == "split-0-9"
    assert len(table.rows) == 4


def test_zero_cell_is_refused_or_rendered(tmp_path: Path) -> None:
    try:
        table = load_table(write(tmp_path, SPLIT_TABLE.replace('"0.1" }]', '"0" }]', 1)))
    except TableError:
        return  # refusing a zero cell at load is acceptable
    a = run(inputs(antibody_test(Antibody.NEGATIVE, "0.1"), infusions(10)), risk_table=table)
    assert a.per_1000 == Decimal("0")
    build_risk_assessment(a)
    text_summary(a)


# --- what a minimal table file reads as ----------------------------------------------------------

def _minimal(**extra: Any) -> dict[str, Any]:
    cells = [{"min": 0, "max": 0, "per_1000": "0.5"}, {"min": 1, "per_1000": "1"}]
    return {"id": "minimal", "title": "Minimal", "sources": ["test"], **extra,
            "rows": [{"label": "negative", "antibody": "negative",
                      "prior_immunosuppressant": False, "cells": cells}]}


def test_optional_table_fields_default_to_empty_and_per_1000() -> None:
    table = RiskTable.from_mapping(_minimal())
    assert (table.version, table.unit, table.verified) == ("", "per 1,000", "")
    assert [b.flag for b in table.rows[0].bands] == ["", ""]
    a = run(inputs(antibody_test(Antibody.NEGATIVE), infusions(1)), risk_table=table)
    assert "table-cell-flagged" not in codes(a)


def test_optional_table_fields_are_kept_as_written() -> None:
    data = _minimal(version="2016-04", unit="per 1,000 patients", verified="checked by J. Doe")
    data["rows"][0]["cells"][1]["flag"] = "re-check this cell"
    table = RiskTable.from_mapping(data)
    assert (table.version, table.unit, table.verified) == (
        "2016-04", "per 1,000 patients", "checked by J. Doe")
    assert [b.flag for b in table.rows[0].bands] == ["", "re-check this cell"]


def test_a_band_of_a_single_infusion_count_is_allowed() -> None:
    table = RiskTable.from_mapping(_minimal())
    assert [b.label for b in table.rows[0].bands] == ["0–0 infusions", "1+ infusions"]
    a = run(inputs(antibody_test(Antibody.NEGATIVE), ()), risk_table=table)
    assert a.per_1000 == Decimal("0.5")


def test_the_missing_index_row_takes_only_a_result_without_an_index_wherever_it_stands() -> None:
    """A table may list its "index not available" row first: it must still not take a positive
    result that has an index."""
    data = copy.deepcopy(bundled_data())
    rows = data["rows"]
    missing = next(r for r in rows if r.get("index") == "missing")
    rows.remove(missing)
    rows.insert(0, missing)
    table = RiskTable.from_mapping(data)
    with_index = run(inputs(antibody_test(Antibody.POSITIVE, "2.0"), infusions(30)),
                     risk_table=table)
    assert with_index.cell is not None
    assert with_index.cell.row == "antibody positive, no prior IS, index > 1.5"
    without = run(inputs(antibody_test(Antibody.POSITIVE), infusions(30)), risk_table=table)
    assert without.cell is not None
    assert without.cell.row == "antibody positive, no prior IS, index not available"


@pytest.mark.parametrize(("where", "value", "message"), [
    ("min", "0", "risk table: rows[0].cells[0].min must be a whole number of infusions ≥ 0"),
    ("max", -1, "risk table: rows[0].cells[0].max must be a whole number of infusions ≥ 0"),
    ("max", True, "risk table: rows[0].cells[0].max must be a whole number of infusions ≥ 0"),
])
def test_band_edges_that_are_not_counts_are_named(where: str, value: Any, message: str) -> None:
    data = _minimal()
    data["rows"][0]["cells"][0][where] = value
    with pytest.raises(TableError) as caught:
        RiskTable.from_mapping(data)
    assert str(caught.value) == message


def test_table_errors_name_the_entry_exactly() -> None:
    data = _minimal()
    data["rows"][0]["cells"][0] = {"min": 0, "max": 0, "per_1000": "0.5"}
    data["rows"][0]["cells"][1] = {"min": 1, "max": 0, "per_1000": "1"}
    with pytest.raises(TableError) as caught:
        RiskTable.from_mapping(data)
    assert str(caught.value) == "risk table: rows[0].cells[1] ends before it starts"

    data = _minimal()
    data["rows"][0]["prior_immunosuppressant"] = "no"
    with pytest.raises(TableError) as caught:
        RiskTable.from_mapping(data)
    assert str(caught.value) == "risk table: rows[0].prior_immunosuppressant must be true or false"

    for key in ("above", "max"):
        data = _minimal()
        data["rows"][0].update(antibody="positive", index={key: "zero"})
        with pytest.raises(TableError) as caught:
            RiskTable.from_mapping(data)
        assert str(caught.value) == f"risk table: rows[0].index.{key} is not a number: 'zero'"
