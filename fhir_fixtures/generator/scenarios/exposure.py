"""Exposure edge cases: no infusions, infusions by medicationReference, statuses that do not
count, and natalizumab recorded before the first documented administration.
"""

from __future__ import annotations

from datetime import date, timedelta

from ..chart import Chart
from ..expected import BAND_0_24, NEG_NO_IS, NONE_ON_RECORD, POS_HIGH, POS_IS, Fixture, expect
from ..fhir import AT, AZATHIOPRINE, LAST_INFUSION, RECENT_TEST, RXNORM, coding, concept


def no_infusions() -> Fixture:
    c = Chart("no-infusions", "Olivia", "Fernandes", "female", date(1996, 1, 15), "E100019")
    c.routine(onset=date(2021, 4, 4), labs_on=[RECENT_TEST])
    c.statement(AZATHIOPRINE, date(2022, 1, 10), date(2024, 3, 1))
    c.jcv_test(RECENT_TEST, "positive", "0.60")
    return Fixture(
        c,
        "Antibody positive (index 0.60), natalizumab not started, prior azathioprine",
        expect(
            "ok",
            "6",
            POS_IS,
            BAND_0_24,
            "moderate",
            infusions=0,
            antibody="positive",
            index="0.60",
            prior_is=True,
            findings=["exposure-none", "index-not-used", "table-cell-flagged"],
        ),
    )


def medication_reference() -> Fixture:
    c = Chart("medication-reference", "Elena", "Marchetti", "female", date(1993, 10, 31), "E100021")
    c.add(
        {
            "resourceType": "Medication",
            "id": "medication-reference-tysabri",
            "code": concept(
                "Tysabri (natalizumab) 300 mg/15 mL injection",
                coding(RXNORM, "354770", "natalizumab"),
            ),
            "status": "active",
            "form": concept("Injection"),
        }
    )
    days = [LAST_INFUSION - timedelta(days=28 * (19 - i)) for i in range(20)]
    for i, day in enumerate(days):
        if i < 14:
            c.infusion(day, reference="Medication/medication-reference-tysabri")
        else:  # the last six reference a contained Medication, text only
            c.infusion(
                day,
                reference="#med1",
                contained={
                    "resourceType": "Medication",
                    "id": "med1",
                    "code": concept("Tyruko (natalizumab-sztn) 300 mg/15 mL injection"),
                },
            )
    c.routine(onset=date(2023, 1, 12), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.70")
    return Fixture(
        c,
        "Infusions via medicationReference: 14 to an included Medication, 6 to contained #med1",
        expect(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=20,
            antibody="positive",
            index="1.70",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def not_done_and_other_statuses() -> Fixture:
    c = Chart(
        "not-done-and-other-statuses", "Patrick", "Byrne", "male", date(1983, 5, 25), "E100023"
    )
    days = c.infusions(24)
    c.infusion(days[5], status="entered-in-error", reason="Duplicate documentation")
    c.infusion(days[8] + timedelta(days=7), status="not-done", reason="Patient febrile")
    c.infusion(days[14] + timedelta(days=2), status="stopped", reason="Infusion reaction")
    c.infusion(AT - timedelta(days=1), status="in-progress")
    c.routine(onset=date(2021, 9, 9), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "2.20")
    c.cancelled_jcv(date(2026, 11, 10))
    return Fixture(
        c,
        "24 completed infusions plus entered-in-error, not-done, stopped and in-progress ones "
        "(not counted); a newer cancelled antibody result (ignored)",
        expect(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=24,
            antibody="positive",
            index="2.20",
            prior_is=False,
            findings=["exposure-not-counted", NONE_ON_RECORD],
        ),
    )


def natalizumab_before_first_admin() -> Fixture:
    c = Chart(
        "natalizumab-before-first-admin", "Amara", "Nwosu", "female", date(1995, 3, 3), "E100026"
    )
    days = c.infusions(14)
    c.routine(onset=date(2023, 4, 25), labs_on=[RECENT_TEST])
    c.statement(
        concept(
            "Tysabri 300 mg IV every 4 weeks (given at outside infusion center)",
            coding(RXNORM, "354770", "natalizumab"),
        ),
        days[0] - timedelta(days=365),
        days[0] - timedelta(days=28),
    )
    c.jcv_test(RECENT_TEST, "negative", "0.09")
    return Fixture(
        c,
        "A natalizumab MedicationStatement a year before the first recorded administration "
        "(exposure may be undercounted); 14 recorded infusions, antibody negative",
        expect(
            "ok",
            "0.02",
            NEG_NO_IS,
            BAND_0_24,
            "low",
            infusions=14,
            antibody="negative",
            index="0.09",
            prior_is=False,
            findings=["exposure-undercount", NONE_ON_RECORD],
        ),
    )
