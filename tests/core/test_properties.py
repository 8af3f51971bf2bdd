"""Properties over generated charts: what must hold for every chart, not only the ones we thought
of (docs/clinical-basis.md §3–§8).

Each chart is FHIR JSON (antibody results with qualitative calls, indices and bounds in several
shapes and statuses; natalizumab infusions; immunosuppressant and other MS therapy records with
their intents and statuses; now and then two conflicting copies of one resource) assessed
through the service seam, as the page and the CLI do.

- never an exception: a validated RiskAssessment, or no estimate with what is missing named
  (and through ``pml-risk assess``: exit 0 or 3);
- more evidence of risk never lowers the figure: a later positive result (index no lower than the
  latest), a later completed infusion, a prior immunosuppressant record before the first
  infusion;
- withholding a data class (the EHR did not let the app read it) never gives a lower confident
  estimate;
- the order of the entries never changes the result or the RiskAssessment identifier.

The budget is small in CI (profile ``clinical-ci``); a longer run:

    PML_RISK_PROPERTIES=clinical-long python -m pytest tests/core/test_properties.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smart_app.cli import main as cli_main
from smart_app.config import Settings
from smart_app.fhir.present import assessment_json
from smart_app.risk import Antibody
from smart_app.risk.tables import load_table
from smart_app.service import ChartAssessment, assess_chart

settings.register_profile(
    "clinical-ci", max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "clinical-long", max_examples=1500, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("PML_RISK_PROPERTIES", "clinical-ci"))

AT = date(2026, 11, 25)
PID = "gen"
SUBJECT = {"reference": f"Patient/{PID}"}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
JCV = {"coding": [{"system": LOINC, "code": "70173-0"}], "text": "JC virus Ab"}
JCV_INDEX = {"coding": [{"system": LOINC, "code": "100977-8"}], "text": "JC virus Ab index"}
NATALIZUMAB = {"coding": [{"system": RXNORM, "code": "354770", "display": "natalizumab"}]}
CALLS = {"positive": "10828004", "negative": "260385009", "indeterminate": "82334004"}
AGENTS = ["azathioprine 50 mg", "mitoxantrone 12 mg/m2", "methotrexate 15 mg weekly",
          "cyclophosphamide", "CellCept 500 mg", "Tecfidera 240 mg", "Ocrevus 600 mg",
          "ibuprofen 400 mg"]
PRIOR_IS_SOURCES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
SETTINGS = Settings()
TABLE = load_table()

Resource = dict[str, Any]

days = st.integers(min_value=0, max_value=(AT - date(2012, 1, 1)).days + 20)


def day(n: int) -> date:
    return date(2012, 1, 1) + timedelta(days=n)


@st.composite
def lab_result(draw: st.DrawFn, n: int) -> Resource:
    kind = draw(st.sampled_from(["qualitative", "index", "both-as-one", "string"]))
    resource: Resource = {
        "resourceType": "Observation", "id": f"lab-{n}", "subject": SUBJECT,
        "status": draw(st.sampled_from(["final"] * 6 + ["amended", "preliminary",
                                                           "entered-in-error"])),
        "code": JCV_INDEX if kind == "index" else JCV,
    }
    when = day(draw(days)).isoformat()
    dated = draw(st.sampled_from(["effectiveDateTime"] * 8 + ["issued", "undated"]))
    if dated != "undated":
        resource[dated] = when
    call = draw(st.sampled_from(list(CALLS)))
    index = draw(st.decimals(min_value=Decimal("0.05"), max_value=Decimal("4.5"), places=2))
    comparator = draw(st.sampled_from([None] * 6 + ["<", "<=", ">", ">="]))
    quantity: dict[str, Any] = {"value": index}
    if comparator:
        quantity["comparator"] = comparator
    if kind == "qualitative":
        resource["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": CALLS[call]}]}
    elif kind == "index":
        resource["valueQuantity"] = quantity
    elif kind == "both-as-one":
        resource["valueQuantity"] = quantity
        resource["interpretation"] = [{"coding": [{"code": call[:3].upper()}]}]
    else:
        resource["valueString"] = draw(st.sampled_from(
            [call.capitalize(), f"{comparator or ''}{index}", "Non-reactive", "see comment"]))
    return resource


@st.composite
def infusions(draw: st.DrawFn) -> list[Resource]:
    count = draw(st.integers(min_value=0, max_value=90))
    start = day(draw(st.integers(min_value=0, max_value=4000)))
    every = draw(st.integers(min_value=21, max_value=56))
    found = []
    for k in range(count):
        status = draw(st.sampled_from(["completed"] * 12 + ["not-done", "entered-in-error",
                                                             "stopped"]))
        found.append({
            "resourceType": "MedicationAdministration", "id": f"nat-{k}", "status": status,
            "subject": SUBJECT, "medicationCodeableConcept": NATALIZUMAB,
            "effectiveDateTime": (start + timedelta(days=every * k)).isoformat(),
        })
    return found


@st.composite
def medication(draw: st.DrawFn, n: int) -> Resource:
    kind = draw(st.sampled_from(PRIOR_IS_SOURCES))
    agent = draw(st.sampled_from(AGENTS))
    when = day(draw(days)).isoformat()
    resource: Resource = {"resourceType": kind, "id": f"med-{n}", "subject": SUBJECT,
                          "medicationCodeableConcept": {"text": agent}}
    if kind == "MedicationRequest":
        resource["status"] = draw(st.sampled_from(["completed", "active", "cancelled",
                                                   "draft"]))
        resource["intent"] = draw(st.sampled_from(["order", "order", "plan", "proposal",
                                                   "option"]))
        resource["authoredOn"] = when
    elif kind == "MedicationStatement":
        resource["status"] = draw(st.sampled_from(["completed", "active", "intended",
                                                   "not-taken", "entered-in-error"]))
        if draw(st.booleans()):
            resource["effectiveDateTime"] = when
    else:
        resource["status"] = draw(st.sampled_from(["completed", "not-done"]))
        resource["effectiveDateTime"] = when
    return resource


@st.composite
def charts(draw: st.DrawFn) -> list[Resource]:
    labs = [draw(lab_result(n)) for n in range(draw(st.integers(min_value=0, max_value=6)))]
    meds = [draw(medication(n)) for n in range(draw(st.integers(min_value=0, max_value=4)))]
    resources = [{"resourceType": "Patient", "id": PID}, *labs, *draw(infusions()), *meds]
    if len(resources) > 1 and draw(st.integers(min_value=0, max_value=5)) == 0:
        # Now and then a second, different copy of one resource with nothing to order them.
        original = draw(st.sampled_from(resources[1:]))
        copy = {**original, "status": "entered-in-error"}
        if copy != original:
            resources.append(copy)
    return resources


def assess(resources: list[Resource], **kw: Any) -> ChartAssessment:
    return assess_chart(resources, PID, at=AT, settings=SETTINGS, table=TABLE, **kw)


def figure(chart: ChartAssessment) -> Decimal | None:
    return chart.assessment.per_1000


def confident(chart: ChartAssessment) -> bool:
    """An estimate shown without a caveat that the inputs were incomplete or contradictory."""
    codes = {f.code.value for f in chart.assessment.findings}
    return chart.assessment.complete and not codes & {"prior-is-unread", "resource-conflict"}


def never_lower(before: ChartAssessment, after: ChartAssessment) -> None:
    if before.assessment.complete and after.assessment.complete:
        b, a = figure(before), figure(after)
        assert a is not None and b is not None and a >= b, (
            f"{b} -> {a}: {after.assessment.cell}")


def latest_lab_day(resources: list[Resource]) -> date | None:
    found = [date.fromisoformat(r["effectiveDateTime"]) for r in resources
             if r["resourceType"] == "Observation" and "effectiveDateTime" in r]
    return max(found) if found else None


def completed_days(resources: list[Resource]) -> list[date]:
    return sorted(date.fromisoformat(r["effectiveDateTime"]) for r in resources
                  if r["resourceType"] == "MedicationAdministration"
                  and r["medicationCodeableConcept"] is NATALIZUMAB
                  and r["status"] == "completed" and "effectiveDateTime" in r)


# --- never an exception -------------------------------------------------------------------------

@PROFILE
@given(charts())
def test_every_chart_gives_a_valid_result_or_says_what_is_missing(
    resources: list[Resource],
) -> None:
    chart = assess(resources)
    a = chart.assessment
    if a.complete:
        ra = chart.risk_assessment
        assert ra is not None  # built and validated as R4B, ras-1 and ras-2
        assert 0 < ra["prediction"][0]["probabilityDecimal"] <= 100
        assert a.qualitative in ("low", "moderate", "high") and a.category_reason
    else:
        assert chart.risk_assessment is None and a.missing
        assert all(f.message for f in a.missing)
    json.dumps(chart.api_json(), default=str)  # the page's JSON always serialises


@settings(PROFILE, max_examples=max(5, PROFILE.max_examples // 6))
@given(resources=charts())
def test_the_cli_exits_0_or_3_on_every_chart(resources: list[Resource], tmp_path_factory: Any
                                             ) -> None:
    path = Path(tmp_path_factory.mktemp("gen")) / "chart.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r in resources]}, default=float),
                    encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(["assess", str(path), "--at", AT.isoformat()])
    assert code == (0 if assess(resources).assessment.complete else 3)


# --- more evidence of risk never lowers the figure ----------------------------------------------

@PROFILE
@given(charts(), st.integers(min_value=1, max_value=60), st.booleans(),
       st.decimals(min_value=Decimal("0"), max_value=Decimal("2"), places=2))
def test_a_later_positive_result_never_lowers_the_risk(
    resources: list[Resource], after: int, with_index: bool, rise: Decimal,
) -> None:
    before = assess(resources)
    latest = latest_lab_day(resources) or date(2024, 1, 1)
    when = latest + timedelta(days=after)
    assume(when <= AT)
    positive: Resource = {
        "resourceType": "Observation", "id": "later-positive", "status": "final",
        "subject": SUBJECT, "code": JCV, "effectiveDateTime": when.isoformat(),
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": CALLS["positive"]}]},
    }
    # Higher evidence: a positive result after a non-positive one; after a positive one, an
    # index no lower than the latest (above 1.5 when the latest index is unknown or a bound
    # that leaves the row open: a lower index is new information, not more risk).
    ab = before.assessment.antibody
    exact = ab.index_range.exact if ab.index_range is not None else None
    base: Decimal | None = Decimal("0.41") if with_index else None
    if ab.status is Antibody.POSITIVE:
        if exact is not None:
            base = max(exact, Decimal("0.41"))
        elif with_index or ab.index is not None:
            base = Decimal("1.51")
    if base is not None:
        positive["valueQuantity"] = {"value": base + rise}
    never_lower(before, assess([*resources, positive]))


@PROFILE
@given(charts(), st.integers(min_value=0, max_value=60))
def test_a_later_completed_infusion_never_lowers_the_risk(
    resources: list[Resource], after: int,
) -> None:
    given_days = completed_days(resources)
    assume(given_days)  # with none, an infusion shows natalizumab began: §5 reads "prior" anew
    when = given_days[-1] + timedelta(days=after)
    assume(when <= AT)
    infusion = {"resourceType": "MedicationAdministration", "id": "later-infusion",
                "status": "completed", "subject": SUBJECT,
                "medicationCodeableConcept": NATALIZUMAB, "effectiveDateTime": when.isoformat()}
    never_lower(assess(resources), assess([*resources, infusion]))


@PROFILE
@given(charts(), st.sampled_from(PRIOR_IS_SOURCES), st.sampled_from(AGENTS[:5]),
       st.integers(min_value=1, max_value=2000))
def test_a_prior_immunosuppressant_record_never_lowers_the_risk(
    resources: list[Resource], kind: str, agent: str, earlier: int,
) -> None:
    given_days = completed_days(resources)
    when = (given_days[0] if given_days else AT) - timedelta(days=earlier)
    record: Resource = {"resourceType": kind, "id": "prior-is", "status": "completed",
                        "subject": SUBJECT, "medicationCodeableConcept": {"text": agent}}
    if kind == "MedicationRequest":
        record.update(intent="order", authoredOn=when.isoformat())
    else:
        record["effectiveDateTime"] = when.isoformat()
    after = assess([*resources, record])
    assert after.assessment.prior_immunosuppressant.value is True
    never_lower(assess(resources), after)


# --- withholding a data class ------------------------------------------------------------------

@PROFILE
@given(charts(), st.sampled_from(["Observation", *PRIOR_IS_SOURCES]))
def test_withholding_a_data_class_never_gives_a_lower_confident_estimate(
    resources: list[Resource], withheld: str,
) -> None:
    full = assess(resources)
    narrowed = assess([r for r in resources if r["resourceType"] != withheld],
                      unread=(withheld,))
    if withheld in ("Observation", "MedicationAdministration"):
        assert not narrowed.assessment.complete
    if confident(narrowed) and full.assessment.complete:
        low, high = figure(full), figure(narrowed)
        assert low is not None and high is not None and high >= low


# --- the order of the entries ------------------------------------------------------------------

@PROFILE
@given(charts(), st.randoms(use_true_random=False))
def test_shuffling_entries_never_changes_the_result_or_the_identifier(
    resources: list[Resource], random: Any,
) -> None:
    shuffled = list(resources)
    random.shuffle(shuffled)
    first, second = assess(resources), assess(shuffled)
    assert assessment_json(first.assessment) == assessment_json(second.assessment)
    assert first.risk_assessment == second.risk_assessment
