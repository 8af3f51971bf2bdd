"""Every finding code the engine can raise, checked by code (docs/clinical-basis.md §3–§5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from smart_app.risk import Antibody, Assessment, Code, Overrides, Severity
from smart_app.risk.records import (
    AgentClass,
    Conflict,
    Copy,
    Infusion,
    MedicationEvidence,
    ResultUse,
)

from .builders import (
    AT,
    BEFORE_NATALIZUMAB,
    FIRST_INFUSION,
    antibody_test,
    codes,
    finding,
    infusions,
    inputs,
    lab,
    medication,
    run,
)

POSITIVE = antibody_test(Antibody.POSITIVE, "1.0")  # positive, index ≤ 1.5, tested 2026-09-15


#: Thirty four-weekly infusions from here end just before the assessment date.
RECENT = AT - timedelta(days=28 * 30)


def _positive_with(
    meds: Sequence[MedicationEvidence] = (), *, n: int = 30, overrides: Overrides | None = None
) -> Assessment:
    """Antibody positive (index 1.0), ``n`` four-weekly infusions, the given medications."""
    return run(inputs(POSITIVE, infusions(n), meds, overrides))


CASES: dict[Code, Callable[[], Assessment]] = {
    Code.ANTIBODY_MISSING: lambda: run(inputs([], infusions(10))),
    Code.ANTIBODY_INDETERMINATE: lambda: run(inputs([lab(index="0.30")], infusions(10))),
    Code.ANTIBODY_PRELIMINARY: lambda: run(
        inputs([*POSITIVE, lab(index="2.0", status="preliminary", use=ResultUse.SHOW)],
               infusions(30))
    ),
    Code.ANTIBODY_STALE: lambda: run(
        inputs(antibody_test(Antibody.POSITIVE, "1.0", on=date(2026, 3, 25)), infusions(30))
    ),
    Code.ANTIBODY_SEROREVERSION: lambda: run(
        inputs([*antibody_test(Antibody.POSITIVE, "0.65", on=date(2024, 4, 16)),
                *antibody_test(Antibody.NEGATIVE, "0.15")], infusions(40))
    ),
    Code.ANTIBODY_LOCAL_CODE: lambda: run(
        inputs([lab(Antibody.POSITIVE, by_text=True), lab(index="0.7", by_text=True)],
               infusions(30))
    ),
    Code.ANTIBODY_DISCORDANT: lambda: run(
        inputs([lab(Antibody.POSITIVE), lab(index="0.10")], infusions(30))
    ),
    Code.ANTIBODY_UNDATED: lambda: run(
        inputs([*POSITIVE, lab(index="3.0", on=None)], infusions(30))
    ),
    Code.INDEX_MISSING: lambda: run(inputs([lab(Antibody.POSITIVE)], infusions(20))),
    Code.INDEX_NEAR_CUTOFF: lambda: run(
        inputs(antibody_test(Antibody.POSITIVE, "1.45"), infusions(30))
    ),
    Code.INDEX_RISING: lambda: run(
        inputs([*antibody_test(Antibody.POSITIVE, "1.10", on=date(2025, 9, 16)),
                *antibody_test(Antibody.POSITIVE, "1.30", on=date(2026, 3, 17)),
                *antibody_test(Antibody.POSITIVE, "1.45")], infusions(36))
    ),
    Code.INDEX_NOT_USED: lambda: _positive_with(
        [medication("mitoxantrone", BEFORE_NATALIZUMAB)]
    ),
    Code.EXPOSURE_NONE: lambda: run(inputs(POSITIVE, [])),
    Code.ANTIBODY_VALUE_BOUND: lambda: run(
        inputs([lab(Antibody.POSITIVE), replace(lab(index="1.5"), comparator=">=")],
               infusions(30))
    ),
    Code.ANTIBODY_UNREADABLE: lambda: run(
        inputs([lab(Antibody.POSITIVE), replace(lab(Antibody.INDETERMINATE), unreadable=True,
                                                note="value 'x' could not be read")],
               infusions(30))
    ),
    Code.ANTIBODY_UNREAD: lambda: run(replace(inputs([], infusions(30)),
                                              unread=("Observation",))),
    Code.INDEX_DUPLICATE: lambda: run(
        inputs([lab(Antibody.POSITIVE), lab(index="0.9"), lab(index="1.2")], infusions(30))
    ),
    Code.EXPOSURE_UNREAD: lambda: run(replace(inputs(POSITIVE),
                                              unread=("MedicationAdministration",))),
    Code.EXPOSURE_BEYOND_FOLLOW_UP: lambda: run(
        inputs(antibody_test(Antibody.NEGATIVE, "0.1"), infusions(80))
    ),
    Code.PRIOR_IS_UNREAD: lambda: run(replace(inputs(POSITIVE, infusions(30)),
                                              unread=("MedicationStatement",))),
    Code.RECORDS_NOT_COUNTED: lambda: _positive_with(
        [replace(medication("azathioprine", BEFORE_NATALIZUMAB, kind="MedicationRequest"),
                 excluded="order intent plan")]
    ),
    Code.SOURCES_NOT_OFFERED: lambda: run(replace(inputs(POSITIVE, infusions(30)),
                                                  not_offered=("MedicationStatement",))),
    Code.RESOURCE_CONFLICT: lambda: run(replace(
        inputs(POSITIVE, infusions(30)),
        conflicts=(Conflict("MedicationAdministration/twice", (
            Copy(infusions=(Infusion("MedicationAdministration/twice", date(2017, 1, 2),
                                     "completed"),)),
            Copy(infusions=(Infusion("MedicationAdministration/twice", date(2017, 1, 2),
                                     "entered-in-error"),)),
        )),),
    )),
    Code.MEDICATION_UNRESOLVED: lambda: _positive_with(
        [medication("unidentified medication", None, agent_class=AgentClass.UNRESOLVED)]
    ),
    Code.EXPOSURE_NOT_COUNTED: lambda: run(
        inputs(POSITIVE, [*infusions(30),
                          Infusion("MedicationAdministration/stopped-1", FIRST_INFUSION,
                                   "stopped")])
    ),
    Code.EXPOSURE_SAME_DAY: lambda: run(
        inputs(POSITIVE, [*infusions(30),
                          Infusion("MedicationAdministration/dup-1", FIRST_INFUSION,
                                   "completed")])
    ),
    Code.AFTER_ASSESSMENT_DATE: lambda: run(
        inputs([*POSITIVE, *antibody_test(Antibody.NEGATIVE, on=AT + timedelta(days=3))],
               infusions(30))
    ),
    Code.EXPOSURE_BEYOND_TABLE: lambda: _positive_with(n=73),
    Code.EXPOSURE_UNDERCOUNT: lambda: run(inputs(
        POSITIVE, infusions(30, start=RECENT),
        [medication("natalizumab", RECENT - timedelta(days=60),
                    agent_class=AgentClass.NATALIZUMAB)],
    )),
    Code.EXPOSURE_ORDERS_HIGHER: lambda: run(inputs(
        POSITIVE, [], [medication("natalizumab", date(2024, 10, 1),
                                  agent_class=AgentClass.NATALIZUMAB, kind="MedicationRequest")],
    )),
    Code.EXPOSURE_UNIDENTIFIED: lambda: _positive_with([
        medication("unidentified medication", date(2016, 1, 1),
                   agent_class=AgentClass.UNRESOLVED, kind="MedicationAdministration")
    ]),
    Code.PRIOR_IS_STATUS_UNKNOWN: lambda: _positive_with(
        [replace(medication("azathioprine", BEFORE_NATALIZUMAB), status="unknown")]
    ),
    Code.PRIOR_IS_UNIDENTIFIED: lambda: _positive_with(
        [medication("unidentified medication", date(2013, 1, 1),
                    agent_class=AgentClass.UNRESOLVED)]
    ),
    Code.EXPOSURE_EXTENDED_INTERVAL: lambda: run(
        inputs(POSITIVE, infusions(40, start=date(2020, 1, 6), every=42))
    ),
    Code.EXPOSURE_UNDATED: lambda: run(
        inputs(POSITIVE, [*infusions(29), Infusion("MedicationAdministration/x", None,
                                                   "completed")])
    ),
    Code.PRIOR_IS_NONE_ON_RECORD: lambda: _positive_with(),
    Code.PRIOR_IS_CONCOMITANT: lambda: _positive_with(
        [medication("methotrexate", date(2016, 5, 1))]
    ),
    Code.PRIOR_IS_UNDATED: lambda: _positive_with([medication("azathioprine", None)]),
    Code.OTHER_MS_THERAPY: lambda: _positive_with(
        [medication("interferon beta", date(2013, 1, 1),
                    agent_class=AgentClass.OTHER_MS_THERAPY)]
    ),
    Code.TABLE_CELL_FLAGGED: lambda: run(
        inputs(POSITIVE, infusions(10), [medication("azathioprine", BEFORE_NATALIZUMAB)])
    ),
    Code.OVERRIDE: lambda: _positive_with(overrides=Overrides(infusion_count=50)),
}

BLOCKING = {Code.ANTIBODY_MISSING, Code.ANTIBODY_INDETERMINATE, Code.ANTIBODY_DISCORDANT,
            Code.ANTIBODY_UNREAD, Code.EXPOSURE_UNREAD, Code.EXPOSURE_ORDERS_HIGHER}


@pytest.mark.parametrize("code", list(Code), ids=str)
def test_every_finding_code_is_triggered(code: Code) -> None:
    a = CASES[code]()  # a KeyError here means a finding code has no test case
    found = finding(a, code.value)
    if code in BLOCKING:
        assert found.severity is Severity.MISSING
        assert not a.complete
    else:
        assert found.severity is not Severity.MISSING
        assert a.complete, f"{code} must not block the estimate"


def test_findings_list_missing_first() -> None:
    a = run(inputs([lab(index="0.30")], [], [medication("azathioprine", None)]))
    severities = [f.severity for f in a.findings]
    assert severities[0] is Severity.MISSING
    order = {Severity.MISSING: 0, Severity.WARNING: 1, Severity.INFO: 2}
    assert severities == sorted(severities, key=order.__getitem__)


# --- staleness ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("tested", "at", "stale", "due"),
    [
        (date(2026, 5, 25), date(2026, 11, 25), False, None),  # exactly 6 months: not older
        (date(2026, 5, 24), date(2026, 11, 25), True, "2026-11-24"),
        (date(2026, 3, 25), date(2026, 11, 25), True, "2026-09-25"),
        (date(2026, 5, 31), date(2026, 11, 30), False, None),  # 31 May + 6 months = 30 Nov
        (date(2026, 5, 31), date(2026, 12, 1), True, "2026-11-30"),
        (date(2025, 8, 31), date(2026, 3, 1), True, "2026-02-28"),
    ],
)
def test_stale_after_six_calendar_months(
    tested: date, at: date, stale: bool, due: str | None
) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, "1.0", on=tested), infusions(30)), at=at)
    assert ("antibody-stale" in codes(a)) is stale
    if stale:
        message = finding(a, "antibody-stale").message
        assert f"retest due since {due}" in message
        assert tested.isoformat() in message
    assert a.per_1000 == Decimal("1.1")  # a stale result still gives the estimate


def test_stale_message_counts_months() -> None:
    a = CASES[Code.ANTIBODY_STALE]()
    assert "8 months ago" in finding(a, "antibody-stale").message


# --- seroreversion, discordance, local codes, undated -------------------------------------------

def test_seroreversion_keeps_the_negative_stratum_and_cites_the_earlier_positive() -> None:
    a = CASES[Code.ANTIBODY_SEROREVERSION]()
    assert a.antibody.status is Antibody.NEGATIVE
    assert a.per_1000 == Decimal("0.2")
    assert "2024-04-16" in finding(a, "antibody-seroreversion").message


def test_no_seroreversion_when_every_test_was_negative() -> None:
    a = run(inputs([*antibody_test(Antibody.NEGATIVE, "0.10", on=date(2025, 3, 1)),
                    *antibody_test(Antibody.NEGATIVE, "0.12")], infusions(30)))
    assert "antibody-seroreversion" not in codes(a)


@pytest.mark.parametrize(
    ("qualitative", "index", "discordant"),
    [
        (Antibody.POSITIVE, "0.10", True),
        (Antibody.NEGATIVE, "0.90", True),
        (Antibody.POSITIVE, "0.30", False),  # index in the grey zone: not a contradiction
        (Antibody.POSITIVE, "0.90", False),
        (Antibody.NEGATIVE, "0.15", False),
    ],
)
def test_discordant_qualitative_and_index(
    qualitative: Antibody, index: str, discordant: bool
) -> None:
    a = run(inputs([lab(qualitative), lab(index=index)], infusions(30)))
    assert ("antibody-discordant" in codes(a)) is discordant
    if discordant:  # never resolved by picking one: no estimate, "confirm with the laboratory"
        assert not a.complete
        assert "laboratory" in finding(a, "antibody-discordant").message
    else:
        assert a.antibody.status is qualitative and a.complete


def test_undated_result_is_not_used() -> None:
    a = CASES[Code.ANTIBODY_UNDATED]()
    assert a.antibody.index == Decimal("1.0")  # not the undated 3.0
    assert len(finding(a, "antibody-undated").sources) == 1


def test_only_undated_results_give_no_estimate() -> None:
    a = run(inputs([lab(Antibody.POSITIVE, on=None)], infusions(30)))
    assert not a.complete
    assert {"antibody-missing", "antibody-undated"} <= codes(a)


def test_local_code_match_still_gives_the_estimate_with_a_warning() -> None:
    a = CASES[Code.ANTIBODY_LOCAL_CODE]()
    assert a.per_1000 == Decimal("1.1")
    assert "map the local code" in finding(a, "antibody-local-code").message


# --- index near the cut-off, rising ------------------------------------------------------------

@pytest.mark.parametrize(
    ("index", "near"),
    [("1.39", False), ("1.4", True), ("1.45", True), ("1.5", True), ("1.51", True),
     ("1.6", True), ("1.61", False), ("0.9", False), ("3.0", False)],
)
def test_near_cut_off_is_within_0_1_of_1_5_inclusive(index: str, near: bool) -> None:
    a = run(inputs(antibody_test(Antibody.POSITIVE, index), infusions(30)))
    assert ("index-near-cutoff" in codes(a)) is near
    if near:
        message = finding(a, "index-near-cutoff").message
        assert index in message and "band can change on retest" in message


@pytest.mark.parametrize(
    ("indices", "rising"),
    [
        (("1.1", "1.3", "1.45"), True),
        (("0.8", "1.2"), True),
        (("2", "1.1", "1.3", "1.45"), True),  # the last three tests rise
        (("1.1", "1.3", "1.3"), False),
        (("1.45", "1.3", "1.1"), False),
        (("1.1", "1.45", "1.3"), False),
        (("1.3",), False),
    ],
)
def test_rising_index_across_the_last_tests(indices: tuple[str, ...], rising: bool) -> None:
    days = [date(2023 + k // 2, 3 if k % 2 == 0 else 9, 1) for k in range(len(indices))]
    labs = [r for day, i in zip(days, indices, strict=True)
            for r in antibody_test(Antibody.POSITIVE, i, on=day)]
    a = run(inputs(labs, infusions(36)), at=days[-1])
    assert ("index-rising" in codes(a)) is rising
    if rising:
        assert " → ".join(indices[-3:]) in finding(a, "index-rising").message


# --- exposure ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("every", "extended"), [(28, False), (34, False), (35, True), (47, True)])
def test_extended_interval_from_a_mean_of_35_days(every: int, extended: bool) -> None:
    standard = run(inputs(POSITIVE, infusions(30, start=date(2022, 1, 3))))
    a = run(inputs(POSITIVE, infusions(30, start=date(2022, 1, 3), every=every)))
    assert a.exposure.extended_interval is extended
    assert a.exposure.mean_interval_days == Decimal(every)
    assert ("exposure-extended-interval" in codes(a)) is extended
    assert a.per_1000 == standard.per_1000  # context only: never changes the table value
    if extended:
        assert "0.06" in finding(a, "exposure-extended-interval").message  # TOUCH HR


def test_undated_infusion_is_counted() -> None:
    a = CASES[Code.EXPOSURE_UNDATED]()
    assert a.exposure.infusions == 30
    assert a.per_1000 == Decimal("1.1")


@pytest.mark.parametrize(
    ("when", "warned"),
    [(date(2014, 1, 10), True), (FIRST_INFUSION - timedelta(days=43), True),
     (FIRST_INFUSION - timedelta(days=42), False), (FIRST_INFUSION.replace(day=4), False),
     (FIRST_INFUSION, False), (date(2016, 1, 1), False)],
)
def test_natalizumab_statement_before_the_first_infusion_warns_of_undercount(
    when: date, warned: bool
) -> None:
    statement = medication("natalizumab", when, agent_class=AgentClass.NATALIZUMAB)
    a = run(inputs(POSITIVE, infusions(30), [statement]))
    assert ("exposure-undercount" in codes(a)) is warned
    assert a.exposure.infusions == 30  # warned, never silently changed
    if warned:
        assert when.isoformat() in finding(a, "exposure-undercount").message


def test_natalizumab_order_long_before_the_first_infusion_warns_of_undercount() -> None:
    order = medication("natalizumab", date(2014, 1, 10), agent_class=AgentClass.NATALIZUMAB,
                       kind="MedicationRequest")
    assert "exposure-undercount" in codes(run(inputs(POSITIVE, infusions(30), [order])))


def test_natalizumab_statement_without_any_infusion_warns_of_undercount() -> None:
    statement = medication("natalizumab", date(2026, 1, 1), agent_class=AgentClass.NATALIZUMAB)
    a = run(inputs(POSITIVE, [], [statement]))
    assert {"exposure-none", "exposure-undercount"} <= codes(a)


# --- prior immunosuppressant --------------------------------------------------------------------

@pytest.mark.parametrize(
    "when", [FIRST_INFUSION, date(2016, 5, 1)], ids=["same day", "after first infusion"]
)
def test_concomitant_immunosuppressant_is_warned_not_counted(when: date) -> None:
    a = _positive_with([medication("methotrexate", when)])
    assert a.prior_immunosuppressant.value is False
    assert a.cell is not None and a.cell.row == "antibody positive, no prior IS, index ≤ 1.5"
    assert "Methotrexate" in finding(a, "prior-is-concomitant").message


def test_immunosuppressant_the_day_before_the_first_infusion_is_prior() -> None:
    a = _positive_with([medication("methotrexate", date(2015, 1, 4))])
    assert a.prior_immunosuppressant.value is True
    assert a.per_1000 == Decimal("12")
    assert not codes(a) & {"prior-is-concomitant", "prior-is-none-on-record"}


def test_any_dated_immunosuppressant_is_prior_when_natalizumab_has_not_started() -> None:
    a = run(inputs(POSITIVE, [], [medication("cyclophosphamide", date(2026, 10, 1))]))
    assert a.prior_immunosuppressant.value is True
    assert a.per_1000 == Decimal("6")


def test_undated_immunosuppressant_counts_as_prior_with_a_warning() -> None:
    a = CASES[Code.PRIOR_IS_UNDATED]()
    assert a.prior_immunosuppressant.value is True
    assert a.per_1000 == Decimal("12")
    assert "azathioprine" in finding(a, "prior-is-undated").message.lower()


def test_other_ms_therapy_is_listed_not_counted() -> None:
    a = CASES[Code.OTHER_MS_THERAPY]()
    assert a.prior_immunosuppressant.value is False
    assert a.per_1000 == Decimal("1.1")
    assert "interferon beta" in finding(a, "other-ms-therapy").message
    assert [m.agent for m in a.prior_immunosuppressant.other_therapies] == ["interferon beta"]


def test_none_on_record_is_an_overridable_info() -> None:
    a = CASES[Code.PRIOR_IS_NONE_ON_RECORD]()
    assert finding(a, "prior-is-none-on-record").severity is Severity.INFO
    assert a.prior_immunosuppressant.on_record is False
    overridden = _positive_with(overrides=Overrides(prior_immunosuppressant=False))
    assert "prior-is-none-on-record" not in codes(overridden)


def test_flagged_cell_keeps_its_value_and_shows_the_flag() -> None:
    a = CASES[Code.TABLE_CELL_FLAGGED]()
    assert a.per_1000 == Decimal("6")
    assert a.cell is not None and a.cell.flag
    assert finding(a, "table-cell-flagged").message == a.cell.flag


def test_assessment_date_is_the_one_given() -> None:
    a = run(inputs(POSITIVE, infusions(30)), at=date(2027, 4, 1))
    assert a.assessed_on == date(2027, 4, 1) != AT
    assert "antibody-stale" in codes(a)
