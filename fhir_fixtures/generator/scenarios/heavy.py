"""The heavy patient: ten years of chart in mixed order, the size the speed targets are
measured on (bench/assess_bench.py).
"""

from __future__ import annotations

from datetime import date, timedelta

from ..chart import Chart
from ..expected import BAND_49_72, NONE_ON_RECORD, POS_HIGH, Fixture, expect
from ..fhir import DIMETHYL_FUMARATE, INTERFERON, METHYLPRED, RECENT_TEST


def heavy() -> Fixture:
    c = Chart(
        "heavy", "Catherine", "Vandermeer", "female", date(1974, 8, 18), "E100024", shuffle=True
    )
    days = c.infusions(130)
    c.patient()
    c.ms_condition(date(2012, 3, 3))
    c.statement(INTERFERON, date(2012, 6, 1), date(2014, 5, 31))
    c.statement(DIMETHYL_FUMARATE, date(2014, 7, 1), days[0] - timedelta(days=60))
    c.other_admin(date(2015, 11, 2), METHYLPRED)
    c.jcv_pcr(date(2021, 6, 14))
    # 20 tests every 6 months, index rising 0.45 -> 2.35; the latest on RECENT_TEST.
    tests = [RECENT_TEST - timedelta(days=182 * (19 - i)) for i in range(20)]
    for i, day in enumerate(tests):
        c.encounter(day)
        c.vitals(day, i)
        c.jcv_test(day, "positive", f"{(45 + 10 * i) // 100}.{(45 + 10 * i) % 100:02d}")
        c.cbc(day, i)
        c.alt(day, i)
    return Fixture(
        c,
        "Ten years: 130 infusions, 20 antibody tests with a rising index (0.45 -> 2.35), "
        "~100 noise labs, entries in mixed order",
        expect(
            "ok",
            "10.1",
            POS_HIGH,
            BAND_49_72,
            "high",
            infusions=130,
            antibody="positive",
            index="2.35",
            prior_is=False,
            findings=["exposure-beyond-table", "index-rising", NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )
