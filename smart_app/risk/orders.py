"""An infusion count estimated from natalizumab orders, for when administrations cannot be read.

Some EHRs do not offer ``MedicationAdministration`` to apps, or the grant does not cover it.
Then the exposure is unknown and there is no estimate (an unknown input never gives the
lowest band). Where natalizumab orders are readable, the page may offer a count
estimated from them, as the what-if's *suggested* value, labelled "estimated from orders" and
never applied by itself: the clinician decides whether to use it.

The estimate assumes dosing at the ordered interval (the product's every-four-weeks schedule
when the order does not say) from the first order to the assessment date. Orders are written
before the first infusion, and pauses and extended-interval dosing lengthen the real interval,
so it errs towards more infusions, which never moves a patient into a lower band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from .records import AgentClass, MedicationEvidence

#: The labelled natalizumab schedule: 300 mg by intravenous infusion every four weeks.
LABELLED_INTERVAL_DAYS = 28
LABEL = "estimated from orders"


@dataclass(frozen=True)
class OrderEstimate:
    """The suggested infusion count and what it rests on (for the label and the note)."""

    infusions: int
    first_order: date
    interval_days: int
    orders: tuple[str, ...]  # the MedicationRequest (and MedicationStatement) references
    verb: str = "ordered"  # "recorded in use" when the earliest record is a statement

    @property
    def label(self) -> str:
        return LABEL

    @property
    def since(self) -> str:
        """"natalizumab ordered since 2024-10-01", the words findings and notes use."""
        return f"natalizumab {self.verb} since {self.first_order.isoformat()}"

    @property
    def reason(self) -> str:
        """The what-if reason that goes into the note when the clinician uses it."""
        return f"Infusion count {LABEL}: {self.since}, every {self.interval_days} days"


def estimate_from_orders(medications: Sequence[MedicationEvidence],
                         at: date) -> OrderEstimate | None:
    """One infusion per interval from the first natalizumab order to ``at``, inclusive."""
    orders = sorted(
        (m for m in medications
         if m.agent_class is AgentClass.NATALIZUMAB and m.resource_type == "MedicationRequest"
         and not m.excluded and m.when is not None and m.when <= at),
        key=lambda m: (m.when or at, m.source),
    )
    if not orders:
        return None
    first = orders[0].when
    assert first is not None
    intervals = [m.every_days for m in orders if m.every_days]
    interval = min(intervals) if intervals else LABELLED_INTERVAL_DAYS
    count = (at - first).days // interval + 1
    return OrderEstimate(infusions=count, first_order=first, interval_days=interval,
                         orders=tuple(m.source for m in orders))


def estimate_from_history(evidence: Sequence[MedicationEvidence],
                          at: date) -> OrderEstimate | None:
    """One infusion per interval from the earliest natalizumab order or statement of use.

    Runs to ``at``, or to the last end date when every record is a statement that has ended
    (an order states no end). Statements carry no dosing interval: the labelled four weeks.
    Like ``estimate_from_orders`` it errs towards more infusions, so comparing its band with
    the recorded count's can only ever withhold a figure, never lower one.
    """
    records = sorted(
        (m for m in evidence
         if m.agent_class is AgentClass.NATALIZUMAB and not m.excluded
         and m.resource_type in ("MedicationRequest", "MedicationStatement")
         and m.when is not None and m.when <= at),
        key=lambda m: (m.when or at, m.source),
    )
    if not records:
        return None
    first = records[0].when
    assert first is not None
    ends = [m.ended for m in records]
    end = at
    if all(e is not None for e in ends) and all(m.resource_type == "MedicationStatement"
                                                for m in records):
        end = max(first, min(at, max(e for e in ends if e is not None)))
    intervals = [m.every_days for m in records if m.every_days]
    interval = min(intervals) if intervals else LABELLED_INTERVAL_DAYS
    verb = "ordered" if records[0].resource_type == "MedicationRequest" else "recorded in use"
    return OrderEstimate(infusions=(end - first).days // interval + 1, first_order=first,
                         interval_days=interval, orders=tuple(m.source for m in records),
                         verb=verb)
