"""One call from a patient's FHIR resources to everything the views and the CLI show.

This is the seam between the adapters (FHIR JSON in, RiskAssessment out) and the pure engine;
the web views, the CLI and the benchmarks all go through it, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .config import Settings
from .fhir.extract import extract_inputs
from .fhir.present import assessment_json
from .fhir.riskassessment import build_risk_assessment
from .fhir.shape import check_resources
from .risk.engine import assess
from .risk.orders import OrderEstimate, estimate_from_orders
from .risk.records import ADMINISTRATION, REQUEST, Inputs, Overrides
from .risk.result import Assessment, Code
from .risk.table import RiskTable
from .risk.tables import load_table


@dataclass(frozen=True)
class ChartAssessment:
    assessment: Assessment
    risk_assessment: dict[str, Any] | None  # validated FHIR R4 RiskAssessment, or None
    #: The infusion count estimated from natalizumab orders, offered as the what-if's
    #: suggestion when administrations could not be read (never applied by itself).
    order_estimate: OrderEstimate | None = None

    @property
    def status(self) -> str:
        return "ok" if self.assessment.complete else "incomplete"

    def api_json(self) -> dict[str, Any]:
        """The body of ``GET /launches/<id>/assessment``."""
        body = {
            "status": self.status,
            "riskAssessment": self.risk_assessment,
            **assessment_json(self.assessment),
        }
        estimate = self.order_estimate
        body["suggestions"] = {} if estimate is None else {"infusions": {
            "value": estimate.infusions,
            "label": estimate.label,
            "firstOrder": estimate.first_order.isoformat(),
            "since": estimate.since,
            "intervalDays": estimate.interval_days,
            "orders": list(estimate.orders),
            "reason": estimate.reason,
        }}
        return body


def assess_chart(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    *,
    at: date,
    settings: Settings,
    overrides: Overrides | None = None,
    table: RiskTable | None = None,
    encounter: str | None = None,
    performer: str | None = None,
    full_urls: Mapping[str, Mapping[str, Any]] | None = None,
    unread: Iterable[str] = (),
    not_offered: Iterable[str] = (),
    resource: bool = True,
) -> ChartAssessment:
    """Assess one patient's resources (already checked to belong to ``patient_id``).

    ``unread`` names the resource types the EHR offers but did not let the app read (grant,
    403, 5xx); ``not_offered`` those it does not offer at all. Both reach the engine as plain
    data: what the app could not see is unknown, never "none on record".

    ``resource=False`` skips building the write-back RiskAssessment (about half the cost of a
    light chart) for callers that only show the assessment, such as the worklist's thousands of
    rows and the CDS cards; the assessment itself is the same.

    Raises ``smart_app.fhir.extract.ForeignResourceError`` when a resource belongs to another
    patient: mixing two charts must never produce a number; and
    ``smart_app.fhir.shape.MalformedResource`` when an element the app reads is not shaped as
    FHIR says (``"coding": true``): a chart the app cannot read gets no number either.
    """
    inputs = chart_inputs(resources, patient_id, settings=settings, full_urls=full_urls,
                          unread=unread, not_offered=not_offered)
    return assess_inputs(inputs, at=at, settings=settings, overrides=overrides, table=table,
                         encounter=encounter, performer=performer, resource=resource)


def chart_inputs(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    *,
    settings: Settings,
    full_urls: Mapping[str, Mapping[str, Any]] | None = None,
    unread: Iterable[str] = (),
    not_offered: Iterable[str] = (),
) -> Inputs:
    """The first half of ``assess_chart``: the chart's resources checked and read as inputs.

    Apart so a caller assessing one chart many times (the page's what-if updates) reads it
    once; the same exceptions as ``assess_chart``.
    """
    resources = tuple(resources)
    check_resources(resources)
    if full_urls:
        check_resources(full_urls.values())
    return extract_inputs(
        resources, patient_id, code_sets=settings.codes, full_urls=full_urls,
        unread=unread, not_offered=not_offered,
    )


def assess_inputs(
    inputs: Inputs,
    *,
    at: date,
    settings: Settings,
    overrides: Overrides | None = None,
    table: RiskTable | None = None,
    encounter: str | None = None,
    performer: str | None = None,
    resource: bool = True,
) -> ChartAssessment:
    """The second half of ``assess_chart``: overrides, the engine, the RiskAssessment."""
    if overrides is not None:
        inputs = inputs.with_overrides(overrides)
    table = table or load_table(settings.risk_table)
    result = assess(inputs, table, at)
    ra = (
        build_risk_assessment(
            result, encounter=encounter, performer=performer, versions=dict(inputs.versions)
        )
        if result.complete and resource
        else None
    )
    estimate = None
    if inputs.unknown(ADMINISTRATION) and not inputs.unknown(REQUEST):
        estimate = estimate_from_orders(inputs.medications, at)
    elif result.exposure.from_orders is not None and (
        inputs.overrides.infusion_count is not None
        or any(f.code is Code.EXPOSURE_ORDERS_HIGHER for f in result.findings)
    ):
        # The orders imply a higher band than the recorded infusions: the same suggestion.
        estimate = result.exposure.from_orders
    return ChartAssessment(result, ra, estimate)
