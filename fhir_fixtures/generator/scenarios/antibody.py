"""Antibody edge cases: stale, indeterminate, missing, seroreversion, preliminary or
entered-in-error latest results, local lab codes and a rising index near the cut-off.
"""

from __future__ import annotations

from datetime import date

from ..chart import Chart
from ..expected import (
    BAND_25_48,
    BAND_25_PLUS,
    BAND_49_72,
    NEG_NO_IS,
    NONE_ON_RECORD,
    POS_LOW,
    Fixture,
    expect,
)
from ..fhir import RECENT_TEST, TYRUKO_BRAND


def stale_result() -> Fixture:
    c = Chart("stale-result", "Irene", "Kowalczyk", "female", date(1984, 2, 2), "E100013")
    c.infusions(30, product=TYRUKO_BRAND)
    c.routine(onset=date(2020, 12, 1), labs_on=[date(2026, 3, 25), date(2026, 10, 1)])
    c.jcv_test(date(2025, 9, 24), "positive", "1.00")
    c.jcv_test(date(2026, 3, 25), "positive", "0.95")  # 8 months before AT
    return Fixture(
        c,
        "Latest antibody test 8 months before the assessment (retest due); Tyruko by brand text",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="0.95",
            prior_is=False,
            findings=["antibody-stale", NONE_ON_RECORD],
        ),
    )


def indeterminate() -> Fixture:
    c = Chart("indeterminate", "Samuel", "Ortiz", "male", date(1992, 3, 27), "E100014")
    c.infusions(18)
    c.routine(onset=date(2022, 6, 30), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "indeterminate", "0.30")
    return Fixture(
        c,
        "Qualitative indeterminate with index 0.30: no estimate (confirmatory assay needed)",
        expect(
            "incomplete",
            infusions=18,
            antibody="indeterminate",
            index="0.30",
            prior_is=False,
            findings=["antibody-indeterminate", NONE_ON_RECORD],
        ),
    )


def no_antibody_result() -> Fixture:
    c = Chart("no-antibody-result", "Beatrice", "Moreau", "female", date(1994, 9, 9), "E100015")
    c.infusions(6)
    c.routine(
        onset=date(2024, 9, 18), labs_on=[date(2026, 5, 1), RECENT_TEST], pcr=date(2026, 4, 2)
    )
    return Fixture(
        c,
        "No anti-JCV antibody result at all (a JCV DNA PCR is on file and must not count)",
        expect(
            "incomplete",
            infusions=6,
            antibody="unknown",
            index=None,
            prior_is=False,
            findings=["antibody-missing", NONE_ON_RECORD],
        ),
    )


def seroreversion() -> Fixture:
    c = Chart("seroreversion", "Victor", "Lindgren", "male", date(1982, 12, 19), "E100016")
    c.infusions(40)
    c.routine(onset=date(2019, 3, 8), labs_on=[RECENT_TEST])
    c.jcv_test(date(2024, 4, 16), "positive", "0.65")
    c.jcv_test(date(2025, 3, 11), "negative", "0.18")
    c.jcv_test(RECENT_TEST, "negative", "0.15")
    return Fixture(
        c,
        "Positive in 2024, negative on the latest tests (seroreversion), 40 infusions",
        expect(
            "ok",
            "0.2",
            NEG_NO_IS,
            BAND_25_PLUS,
            "low",
            infusions=40,
            antibody="negative",
            index="0.15",
            prior_is=False,
            findings=["antibody-seroreversion", NONE_ON_RECORD],
        ),
    )


def preliminary_latest() -> Fixture:
    c = Chart("preliminary-latest", "Nadia", "Petrova", "female", date(1989, 4, 1), "E100017")
    c.infusions(30)
    c.routine(onset=date(2020, 10, 22), labs_on=[date(2026, 7, 10)])
    c.jcv_test(date(2026, 7, 10), "positive", "1.20")
    c.jcv_test(date(2026, 11, 18), "positive", "1.90", status="preliminary")
    return Fixture(
        c,
        "Latest test preliminary (index 1.90, shown not used); older final index 1.20 used",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="1.20",
            prior_is=False,
            findings=["antibody-preliminary", NONE_ON_RECORD],
        ),
    )


def entered_in_error_latest() -> Fixture:
    c = Chart("entered-in-error-latest", "George", "Whitfield", "male", date(1977, 7, 7), "E100018")
    c.infusions(50)
    c.routine(onset=date(2016, 2, 29), labs_on=[date(2026, 8, 5)])
    c.jcv_test(date(2026, 8, 5), "positive", "0.80")
    c.jcv_test(date(2026, 10, 20), "positive", "3.10", status="entered-in-error")
    return Fixture(
        c,
        "Latest test (index 3.10) entered-in-error and ignored; older final index 0.80 used",
        expect(
            "ok",
            "1.4",
            POS_LOW,
            BAND_49_72,
            "moderate",
            infusions=50,
            antibody="positive",
            index="0.80",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def local_lab_code() -> Fixture:
    c = Chart("local-lab-code", "Hannah", "Osei", "female", date(1987, 2, 14), "E100022")
    c.infusions(30)
    c.routine(onset=date(2019, 7, 1), labs_on=[RECENT_TEST], pcr=date(2024, 1, 9))
    c.jcv_test(RECENT_TEST, "positive", "0.70", local=True)
    return Fixture(
        c,
        "Antibody results under a local lab code only (no LOINC), matched by text",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="0.70",
            prior_is=False,
            findings=["antibody-local-code", NONE_ON_RECORD],
        ),
    )


def rising_index_near_cutoff() -> Fixture:
    c = Chart(
        "rising-index-near-cutoff", "Lucas", "Ferreira", "male", date(1990, 11, 11), "E100025"
    )
    c.infusions(36)
    c.routine(onset=date(2020, 2, 20), labs_on=[RECENT_TEST])
    c.jcv_test(date(2025, 9, 16), "positive", "1.10", style="interpretation")
    c.jcv_test(date(2026, 3, 17), "positive", "1.30", style="interpretation")
    c.jcv_test(RECENT_TEST, "positive", "1.45", style="interpretation")
    return Fixture(
        c,
        "Index 1.10 -> 1.30 -> 1.45 over the last three tests: rising, near the 1.5 cut-off "
        "(qualitative by interpretation POS)",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=36,
            antibody="positive",
            index="1.45",
            prior_is=False,
            findings=["index-near-cutoff", "index-rising", NONE_ON_RECORD],
        ),
    )
