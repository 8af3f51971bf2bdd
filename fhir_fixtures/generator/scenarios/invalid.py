"""Bad inputs that are not patients: the app must refuse them with a clear message."""

from __future__ import annotations

from datetime import date

from ..chart import Chart
from ..fhir import AT, RECENT_TEST, Json


def invalid_two_patients() -> Json:
    a = Chart("invalid-two-a", "Anna", "Example", "female", date(1985, 1, 1), "E199001")
    b = Chart("invalid-two-b", "Bruno", "Example", "male", date(1980, 2, 2), "E199002")
    for chart, index in ((a, "1.70"), (b, "0.50")):
        chart.patient()
        chart.infusions(12)
        chart.jcv_test(RECENT_TEST, "positive", index)
    merged = Chart("two-patients", "", "", "unknown", AT, "")
    merged.resources = a.resources + b.resources
    return merged.bundle()


def invalid_no_patient() -> Json:
    c = Chart("no-patient", "", "", "unknown", AT, "")
    c.jcv_test(RECENT_TEST, "positive", "1.70")
    c.jcv_test(date(2026, 3, 17), "positive", "1.60")
    for r in c.resources:
        del r["subject"]
    return c.bundle()
