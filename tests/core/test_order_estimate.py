"""The infusion count estimated from natalizumab orders : a suggestion only."""

from __future__ import annotations

from datetime import date

from smart_app.fhir.extract import dosing_interval_days
from smart_app.risk.orders import LABELLED_INTERVAL_DAYS, estimate_from_orders
from smart_app.risk.records import AgentClass, MedicationEvidence

AT = date(2026, 11, 26)


def order(source: str, when: date | None, every: int | None = None, *,
          excluded: str = "", agent: AgentClass = AgentClass.NATALIZUMAB) -> MedicationEvidence:
    return MedicationEvidence(source, agent, "natalizumab", when, "active", excluded=excluded,
                              every_days=every)


def test_one_infusion_per_interval_from_the_first_order() -> None:
    found = estimate_from_orders([order("MedicationRequest/b", date(2026, 3, 1), 28),
                                  order("MedicationRequest/a", date(2025, 12, 31), 28)], AT)
    assert found is not None
    assert found.first_order == date(2025, 12, 31) and found.interval_days == 28
    assert found.infusions == 331 // 28 + 1 == 12
    assert found.orders == ("MedicationRequest/a", "MedicationRequest/b")
    assert found.label == "estimated from orders"
    assert "estimated from orders" in found.reason and "2025-12-31" in found.reason


def test_the_labelled_interval_when_the_order_gives_none_and_the_shortest_otherwise() -> None:
    plain = estimate_from_orders([order("MedicationRequest/a", date(2026, 10, 1))], AT)
    assert plain is not None and plain.interval_days == LABELLED_INTERVAL_DAYS == 28
    assert plain.infusions == 3  # 1 Oct, 29 Oct and 26 Nov (the assessment day)
    mixed = estimate_from_orders([order("MedicationRequest/a", date(2026, 1, 1), 42),
                                  order("MedicationRequest/b", date(2026, 6, 1), 35)], AT)
    assert mixed is not None and mixed.interval_days == 35  # more infusions, never fewer


def test_no_estimate_without_usable_orders() -> None:
    assert estimate_from_orders([], AT) is None
    unusable = [
        order("MedicationRequest/plan", date(2026, 1, 1), excluded="order intent plan"),
        order("MedicationRequest/undated", None),
        order("MedicationRequest/later", date(2027, 1, 1)),
        order("MedicationStatement/s", date(2026, 1, 1)),
        order("MedicationRequest/aza", date(2026, 1, 1), agent=AgentClass.IMMUNOSUPPRESSANT),
    ]
    assert estimate_from_orders(unusable, AT) is None


def test_dosing_interval_from_timing_repeat() -> None:
    def request(repeat: object) -> dict[str, object]:
        return {"resourceType": "MedicationRequest",
                "dosageInstruction": [{"timing": {"repeat": repeat}}]}

    assert dosing_interval_days(request({"period": 4, "periodUnit": "wk"})) == 28
    assert dosing_interval_days(request({"frequency": 1, "period": 6, "periodUnit": "wk"})) == 42
    assert dosing_interval_days(request({"period": 1, "periodUnit": "mo"})) == 30
    assert dosing_interval_days(request({"period": 28, "periodUnit": "d"})) == 28
    for bad in ({"period": 8, "periodUnit": "h"}, {"period": 0, "periodUnit": "d"},
                {"period": "4", "periodUnit": "wk"}, {"period": True, "periodUnit": "wk"},
                {"period": 4, "periodUnit": "wk", "frequency": 0}, "every 4 weeks"):
        assert dosing_interval_days(request(bad)) is None
    assert dosing_interval_days({"resourceType": "MedicationRequest"}) is None


def test_statements_count_from_their_start_to_their_end_and_orders_to_the_assessment_date(
) -> None:
    from dataclasses import replace

    from smart_app.risk.orders import estimate_from_history

    use = replace(order("MedicationStatement/s", date(2026, 1, 1)), ended=date(2026, 3, 1))
    ended = estimate_from_history([use], AT)
    assert ended is not None and ended.infusions == 59 // 28 + 1 == 3
    assert ended.since == "natalizumab recorded in use since 2026-01-01"
    with_order = estimate_from_history([use, order("MedicationRequest/a", date(2026, 2, 1))], AT)
    assert with_order is not None and with_order.infusions == 329 // 28 + 1  # open order: to AT
    assert estimate_from_history([order("MedicationRequest/p", date(2026, 1, 1),
                                        excluded="order intent plan")], AT) is None
