"""Charts from the clinical-safety review: each once gave a lower figure than the evidence
supports. Discordant antibody results days apart, an index reported as a bound above the cut-off,
immunosuppressant records that are not use, and an antibody-negative patient beyond the published
follow-up.
"""

from __future__ import annotations

from datetime import date

from ..chart import Chart
from ..expected import (
    BAND_25_48,
    BAND_25_PLUS,
    NEG_NO_IS,
    NONE_ON_RECORD,
    POS_HIGH,
    POS_LOW,
    Fixture,
    expect,
)
from ..fhir import (
    AZATHIOPRINE,
    JCV_INDEX_CODE,
    JCV_QUAL_CODE,
    METHOTREXATE,
    MITOXANTRONE,
    POSITIVE,
    RECENT_TEST,
    concept,
    quantity,
)


def discordant_negative_then_index() -> Fixture:
    c = Chart(
        "discordant-negative-then-index", "Ingrid", "Solberg", "female", date(1986, 5, 12),
        "E100030",
    )
    c.infusions(30)
    c.routine(onset=date(2019, 4, 2), labs_on=[date(2026, 10, 1)])
    c.jcv_test(date(2026, 10, 1), "negative", None)
    c.jcv_test(date(2026, 10, 3), None, "2.00")
    return Fixture(
        c,
        "Qualitative negative on 2026-10-01, index 2.00 on 2026-10-03, 30 infusions: the results "
        "contradict each other, so no estimate (never paired as 'low')",
        expect(
            "incomplete",
            infusions=30,
            antibody="indeterminate",
            index="2.00",
            prior_is=False,
            findings=["antibody-discordant", NONE_ON_RECORD],
        ),
    )


def index_bound_above_cutoff() -> Fixture:
    c = Chart(
        "index-bound-above-cutoff", "Rafael", "Quintero", "male", date(1983, 1, 30), "E100031"
    )
    c.infusions(30)
    c.routine(onset=date(2019, 8, 14), labs_on=[RECENT_TEST])
    c.observation("jcvab", JCV_QUAL_CODE, RECENT_TEST, value={"valueCodeableConcept": POSITIVE},
                  extra={"method": concept("STRATIFY JCV DxSelect")})
    c.observation(
        "jcvidx", JCV_INDEX_CODE, RECENT_TEST,
        value={"valueQuantity": {**quantity("1.5", "{index}"), "comparator": ">"}},
        extra={"method": concept("STRATIFY JCV DxSelect")},
    )
    return Fixture(
        c,
        "Positive, index reported as '>1.5' (above the reportable range), 30 infusions: the "
        "index > 1.5 row",
        expect(
            "ok",
            "8.8",
            POS_HIGH,
            BAND_25_48,
            "high",
            infusions=30,
            antibody="positive",
            index="1.5",
            prior_is=False,
            findings=["antibody-value-bound", NONE_ON_RECORD],
        ),
    )


def immunosuppressant_records_not_use() -> Fixture:
    c = Chart(
        "immunosuppressant-records-not-use", "Mei", "Tanaka", "female", date(1991, 10, 3),
        "E100032",
    )
    c.infusions(30)
    c.routine(onset=date(2018, 11, 20), labs_on=[RECENT_TEST])
    c.request(AZATHIOPRINE, date(2016, 2, 1), status="active", intent="plan")
    c.request(METHOTREXATE, date(2016, 3, 1), status="active", intent="option")
    c.request(MITOXANTRONE, date(2016, 4, 1), status="cancelled")
    c.jcv_test(RECENT_TEST, "positive", "0.60")
    return Fixture(
        c,
        "Azathioprine planned, methotrexate as an option, mitoxantrone order cancelled: listed as "
        "other records (not counted), never dropped",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="0.60",
            prior_is=False,
            findings=["records-not-counted", NONE_ON_RECORD],
        ),
    )


def negative_beyond_follow_up() -> Fixture:
    c = Chart(
        "negative-beyond-follow-up", "Tobias", "Engel", "male", date(1975, 3, 17), "E100033"
    )
    c.infusions(80)
    c.routine(onset=date(2012, 6, 6), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "negative", "0.12")
    return Fixture(
        c,
        "Antibody negative, 80 infusions: the published follow-up ends at about 72 months "
        "(information; the figure is unchanged)",
        expect(
            "ok",
            "0.2",
            NEG_NO_IS,
            BAND_25_PLUS,
            "low",
            infusions=80,
            antibody="negative",
            index="0.12",
            prior_is=False,
            findings=["exposure-beyond-follow-up", NONE_ON_RECORD],
        ),
    )
