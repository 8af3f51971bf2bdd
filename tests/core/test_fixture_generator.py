"""The fixture generator (fhir_fixtures/generator): the files on disk are what it writes, and
the patients it synthesizes from parameters are read by the engine as those parameters say."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from fhir_fixtures.generator import dumps_line, patient_bundle, patient_resources
from fhir_fixtures.generator.output import outputs
from smart_app.config import Settings
from smart_app.fhir.bundle import read_bundle
from smart_app.service import ChartAssessment, assess_chart

AT = date(2026, 11, 25)


def test_fixture_files_on_disk_are_what_the_generator_writes() -> None:
    stale = [
        path.name
        for path, text in outputs().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run `python fhir_fixtures/build.py` and commit the result"


def assess_lines(pid: str, lines: list[str]) -> ChartAssessment:
    resources = [json.loads(line, parse_float=Decimal) for line in lines]
    return assess_chart(resources, pid, at=AT, settings=Settings())


NEG_NO_IS = "antibody negative, no prior IS"
NEG_IS = "antibody negative, prior IS"
POS_NO_INDEX = "antibody positive, no prior IS, index not available"
POS_LOW = "antibody positive, no prior IS, index ≤ 1.5"
POS_HIGH = "antibody positive, no prior IS, index > 1.5"
POS_IS = "antibody positive, prior IS"


@pytest.mark.parametrize(
    ("antibody", "index", "infusions", "prior_is", "per_1000", "row", "band"),
    [
        ("negative", "0.11", 30, None, "0.2", NEG_NO_IS, "25+ infusions"),
        ("negative", None, 10, "methotrexate", "0.06", NEG_IS, "0–24 infusions"),
        ("positive", None, 20, None, "1", POS_NO_INDEX, "0–24 infusions"),
        ("positive", "0.90", 36, None, "1.1", POS_LOW, "25–48 infusions"),
        ("positive", "3.00", 12, None, "1.2", POS_HIGH, "0–24 infusions"),
        ("positive", "0.50", 48, "azathioprine", "12", POS_IS, "25–48 infusions"),
        ("positive", "2.50", 72, "mitoxantrone", "13", POS_IS, "49–72 infusions"),
    ],
)
def test_synthesized_patient_lands_in_the_cell_its_parameters_name(
    antibody: str,
    index: str | None,
    infusions: int,
    prior_is: str | None,
    per_1000: str,
    row: str,
    band: str,
) -> None:
    pid = f"bulk-{infusions:05d}"
    resources = patient_resources(
        pid, antibody=antibody, index=index, infusions=infusions, prior_is=prior_is
    )
    assert (resources[0]["resourceType"], resources[0]["id"]) == ("Patient", pid)
    lines = [dumps_line(r) for r in resources]
    assert all("\n" not in line for line in lines)
    if index is not None:  # the index keeps its written precision ("0.90", not 0.9)
        assert any(f'"value":{index},' in line for line in lines)

    result = assess_lines(pid, lines)
    a = result.assessment
    assert result.status == "ok"
    assert a.exposure.infusions == infusions
    assert a.antibody.status.value == antibody
    assert a.antibody.index == (Decimal(index) if index is not None else None)
    assert a.prior_immunosuppressant.value is (prior_is is not None)
    assert a.cell is not None
    assert (a.per_1000, a.cell.row, a.cell.band) == (Decimal(per_1000), row, band)


@pytest.mark.parametrize(
    ("antibody", "index", "finding"),
    [(None, None, "antibody-missing"), ("indeterminate", "0.30", "antibody-indeterminate")],
)
def test_synthesized_patient_without_a_usable_antibody_result_gets_no_estimate(
    antibody: str | None, index: str | None, finding: str
) -> None:
    lines = [dumps_line(r) for r in patient_resources("bulk-x", antibody=antibody, index=index)]
    result = assess_lines("bulk-x", lines)
    assert result.status == "incomplete"
    assert result.assessment.cell is None
    assert finding in {f.code.value for f in result.assessment.findings}


def test_synthesized_bundle_reads_like_a_fixture_bundle() -> None:
    text = dumps_line(patient_bundle("bulk-b", index="1.51", infusions=25))
    bundle = read_bundle(json.loads(text))
    result = assess_chart(
        bundle.resources, bundle.patient_id, at=AT, settings=Settings(), full_urls=bundle.full_urls
    )
    assert bundle.patient_id == "bulk-b"
    assert result.assessment.per_1000 == Decimal("8.8")


def test_same_arguments_same_patient_other_id_other_patient() -> None:
    one = [dumps_line(r) for r in patient_resources("bulk-1", index="1.00", infusions=40)]
    again = [dumps_line(r) for r in patient_resources("bulk-1", index="1.00", infusions=40)]
    other = patient_resources("bulk-2", index="1.00", infusions=40)
    assert one == again
    assert not {json.loads(line)["id"] for line in one} & {r["id"] for r in other}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"antibody": "weakly positive"}, "antibody"),
        ({"index": "1,5"}, "decimal"),
        ({"index": "-0.5"}, "index"),
        ({"infusions": -1}, "infusions"),
        ({"prior_is": "rituximab"}, "prior_is"),
        ({"interval_days": 0}, "interval_days"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(
    kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        patient_resources("bulk-bad", **kwargs)  # type: ignore[arg-type]


def test_bad_patient_id_is_refused() -> None:
    with pytest.raises(ValueError, match="pid"):
        patient_resources("has space")
