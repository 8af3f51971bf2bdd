"""The twelve worked examples (ex01–ex12): one patient per published example, each on
a boundary of the table (index 0.90/1.50/1.51, exactly 24/25/48/72 infusions, beyond 72).
"""

from __future__ import annotations

from datetime import date, timedelta

from ..chart import Chart
from ..expected import (
    BAND_0_24,
    BAND_25_48,
    BAND_25_PLUS,
    BAND_49_72,
    NEG_IS,
    NEG_NO_IS,
    NONE_ON_RECORD,
    POS_HIGH,
    POS_IS,
    POS_LOW,
    POS_NO_INDEX,
    Fixture,
    expect,
)
from ..fhir import (
    AZATHIOPRINE,
    DIMETHYL_FUMARATE,
    INTERFERON,
    METHOTREXATE,
    METHYLPRED,
    MITOXANTRONE,
    RECENT_TEST,
    TYRUKO,
)


def ex01() -> Fixture:
    c = Chart("ex01-negative-30", "Laura", "Brennan", "female", date(1988, 3, 14), "E100001")
    c.brain_mri(date(2026, 2, 12), "procedure")
    days = c.infusions(30)
    c.routine(onset=date(2017, 6, 2), labs_on=[date(2026, 5, 20), RECENT_TEST])
    c.statement(INTERFERON, date(2018, 1, 10), days[0] - timedelta(days=60))
    c.jcv_test(date(2026, 3, 18), "negative", "0.12")
    c.jcv_test(RECENT_TEST, "negative", "0.11")
    return Fixture(
        c,
        "Worked example 1: antibody negative, 30 infusions, no prior IS (interferon listed only)",
        expect(
            "ok",
            "0.2",
            NEG_NO_IS,
            BAND_25_PLUS,
            "low",
            infusions=30,
            antibody="negative",
            index="0.11",
            prior_is=False,
            findings=[NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )


def ex02() -> Fixture:
    c = Chart("ex02-positive-no-index", "Marcus", "Oyelaran", "male", date(1979, 11, 2), "E100002")
    c.infusions(20)
    c.routine(onset=date(2021, 2, 11), labs_on=[RECENT_TEST], pcr=date(2025, 4, 7))
    c.jcv_test(RECENT_TEST, "positive", None)
    return Fixture(
        c,
        "Worked example 2: antibody positive with no index reported, 20 infusions",
        expect(
            "ok",
            "1",
            POS_NO_INDEX,
            BAND_0_24,
            "moderate",
            infusions=20,
            antibody="positive",
            index=None,
            prior_is=False,
            findings=["index-missing", NONE_ON_RECORD],
        ),
    )


def ex03() -> Fixture:
    c = Chart(
        "ex03-index-0-90",
        "Sofia",
        "Lindqvist",
        "female",
        date(1991, 7, 23),
        "E100003",
        bundle_type="searchset",
    )
    c.brain_mri(date(2026, 10, 20))
    c.infusions(36)
    c.routine(onset=date(2019, 9, 5), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "0.90")
    return Fixture(
        c,
        "Worked example 3: index 0.90 (lower sub-band boundary), 36 infusions; searchset bundle",
        expect(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=36,
            antibody="positive",
            index="0.90",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex04() -> Fixture:
    c = Chart(
        "ex04-index-1-50-24-infusions",
        "Daniel",
        "Achterberg",
        "male",
        date(1985, 1, 30),
        "E100004",
        bundle_type="transaction",
        urn_full_urls=True,
    )
    c.brain_mri(date(2026, 8, 10))
    c.infusions(24)
    c.routine(onset=date(2022, 1, 19), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.50")
    return Fixture(
        c,
        "Worked example 4: index exactly 1.50, exactly 24 infusions; transaction bundle",
        expect(
            "ok",
            "0.2",
            POS_LOW,
            BAND_0_24,
            "moderate",
            infusions=24,
            antibody="positive",
            index="1.50",
            prior_is=False,
            findings=["index-near-cutoff", NONE_ON_RECORD],
        ),
    )


def ex05() -> Fixture:
    c = Chart(
        "ex05-index-1-51-25-infusions", "Priya", "Raman", "female", date(1990, 5, 8), "E100005"
    )
    c.brain_mri(date(2026, 6, 30), "study")
    days = c.infusions(25)
    c.routine(onset=date(2018, 10, 1), labs_on=[RECENT_TEST])
    c.statement(DIMETHYL_FUMARATE, date(2019, 2, 1), days[0] - timedelta(days=45))
    c.jcv_test(RECENT_TEST, "positive", "1.51")
    return Fixture(
        c,
        "Worked example 5: index 1.51 (just above 1.5), exactly 25 infusions; prior Tecfidera",
        expect(
            "ok",
            "8.8",
            POS_HIGH,
            BAND_25_48,
            "high",
            infusions=25,
            antibody="positive",
            index="1.51",
            prior_is=False,
            findings=["index-near-cutoff", NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )


def ex06() -> Fixture:
    c = Chart(
        "ex06-index-3-0-12-infusions",
        "Tomasz",
        "Wierzbicki",
        "male",
        date(1983, 9, 17),
        "E100006",
        urn_full_urls=True,
    )
    c.infusions(12)
    c.routine(onset=date(2023, 3, 3), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "3.00", style="string")
    return Fixture(
        c,
        "Worked example 6: index 3.00, exactly 12 infusions; qualitative as valueString",
        expect(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=12,
            antibody="positive",
            index="3.00",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex07() -> Fixture:
    c = Chart(
        "ex07-prior-is-azathioprine-48",
        "Helen",
        "Castellano",
        "female",
        date(1975, 12, 4),
        "E100007",
    )
    days = c.infusions(48)
    c.routine(onset=date(2012, 4, 16), labs_on=[RECENT_TEST])
    c.statement(AZATHIOPRINE, date(2016, 3, 1), date(2018, 6, 30))
    assert days[0] > date(2018, 6, 30)
    c.other_admin(date(2019, 5, 6), METHYLPRED)
    c.jcv_test(RECENT_TEST, "positive", "0.50")
    return Fixture(
        c,
        "Worked example 7: prior azathioprine overrides a low index (0.50), exactly 48 infusions",
        expect(
            "ok",
            "12",
            POS_IS,
            BAND_25_48,
            "high",
            infusions=48,
            antibody="positive",
            index="0.50",
            prior_is=True,
            findings=["index-not-used"],
        ),
    )


def ex08() -> Fixture:
    c = Chart(
        "ex08-prior-is-mitoxantrone-72",
        "Robert",
        "Nakamura",
        "male",
        date(1970, 2, 21),
        "E100008",
        urn_full_urls=True,
    )
    days = c.infusions(72)
    c.routine(onset=date(2010, 8, 9), labs_on=[date(2026, 3, 10), RECENT_TEST])
    c.request(MITOXANTRONE, date(2016, 9, 12))
    c.request(MITOXANTRONE, date(2016, 12, 5))
    assert days[0] > date(2016, 12, 5)
    c.jcv_test(RECENT_TEST, "positive", "2.50")
    return Fixture(
        c,
        "Worked example 8: prior mitoxantrone with a high index (2.50), exactly 72 infusions",
        expect(
            "ok",
            "13",
            POS_IS,
            BAND_49_72,
            "high",
            infusions=72,
            antibody="positive",
            index="2.50",
            prior_is=True,
            findings=["index-not-used"],
        ),
    )


def ex09() -> Fixture:
    c = Chart(
        "ex09-index-1-2-72-infusions", "Grace", "Adeyemi", "female", date(1987, 6, 29), "E100009"
    )
    days = c.infusions(72)
    # Switched to the biosimilar half way: the last 36 infusions are Tyruko, text only.
    for r in c.resources[36:72]:
        r["medicationCodeableConcept"] = TYRUKO
    c.routine(onset=date(2014, 11, 20), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.20")
    assert len(days) == 72
    return Fixture(
        c,
        "Worked example 9: index 1.20, exactly 72 infusions (36 Tysabri + 36 Tyruko by text)",
        expect(
            "ok",
            "1.4",
            POS_LOW,
            BAND_49_72,
            "moderate",
            infusions=72,
            antibody="positive",
            index="1.20",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex10() -> Fixture:
    c = Chart(
        "ex10-beyond-72-100-infusions", "Ahmed", "Haddad", "male", date(1978, 4, 11), "E100010"
    )
    c.infusions(100)
    c.routine(onset=date(2009, 1, 26), labs_on=[date(2025, 9, 9), RECENT_TEST])
    c.other_admin(date(2017, 2, 13), METHYLPRED)
    c.jcv_test(RECENT_TEST, "positive", "2.00")
    return Fixture(
        c,
        "Worked example 10: index 2.00, 100 infusions: beyond the table, 49–72 value shown",
        expect(
            "ok",
            "10.1",
            POS_HIGH,
            BAND_49_72,
            "high",
            infusions=100,
            antibody="positive",
            index="2.00",
            prior_is=False,
            findings=["exposure-beyond-table", NONE_ON_RECORD],
        ),
    )


def ex11() -> Fixture:
    c = Chart(
        "ex11-negative-prior-is-methotrexate",
        "Claire",
        "Dubois",
        "female",
        date(1981, 8, 5),
        "E100011",
    )
    days = c.infusions(10)
    c.routine(onset=date(2015, 5, 14), labs_on=[RECENT_TEST])
    c.statement(METHOTREXATE, date(2019, 4, 1), date(2024, 10, 31))
    assert days[0] > date(2024, 10, 31)
    c.jcv_test(RECENT_TEST, "negative", None, style="interpretation")
    return Fixture(
        c,
        "Worked example 11: antibody negative (interpretation NEG only), prior methotrexate, "
        "10 infusions",
        expect(
            "ok",
            "0.06",
            NEG_IS,
            BAND_0_24,
            "low",
            infusions=10,
            antibody="negative",
            index=None,
            prior_is=True,
        ),
    )


def ex12() -> Fixture:
    c = Chart(
        "ex12-eid-40-over-60-months", "Jonas", "Eriksen", "male", date(1986, 10, 13), "E100012"
    )
    days = c.infusions(40, interval=47)
    c.routine(onset=date(2020, 7, 7), labs_on=[RECENT_TEST])
    c.jcv_test(date(2026, 3, 20), "positive", "1.90")
    c.jcv_test(RECENT_TEST, "positive", "1.80")
    assert (days[-1].year - days[0].year) * 12 + days[-1].month - days[0].month == 60
    return Fixture(
        c,
        "Worked example 12: index 1.80, 40 infusions every 47 days over 60 calendar months (EID)",
        expect(
            "ok",
            "8.8",
            POS_HIGH,
            BAND_25_48,
            "high",
            infusions=40,
            antibody="positive",
            index="1.80",
            prior_is=False,
            findings=["exposure-extended-interval", NONE_ON_RECORD],
        ),
    )
