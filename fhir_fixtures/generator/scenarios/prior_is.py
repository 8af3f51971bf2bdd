"""Prior-immunosuppressant cases beyond the worked examples: an immunosuppressant ordered after
the first natalizumab infusion is concomitant, not prior.
"""

from __future__ import annotations

from datetime import date, timedelta

from ..chart import Chart
from ..expected import BAND_25_48, NONE_ON_RECORD, POS_LOW, Fixture, expect
from ..fhir import METHOTREXATE, RECENT_TEST


def prior_is_after_first_infusion() -> Fixture:
    c = Chart(
        "prior-is-after-first-infusion", "Michael", "Grünewald", "male", date(1980, 6, 6), "E100020"
    )
    days = c.infusions(30)
    c.routine(onset=date(2018, 5, 5), labs_on=[RECENT_TEST])
    c.request(METHOTREXATE, days[10] + timedelta(days=3), status="active")
    c.jcv_test(RECENT_TEST, "positive", "1.00")
    return Fixture(
        c,
        "Methotrexate ordered after the first natalizumab infusion: concomitant, not prior IS",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="1.00",
            prior_is=False,
            findings=["prior-is-concomitant", NONE_ON_RECORD],
        ),
    )
