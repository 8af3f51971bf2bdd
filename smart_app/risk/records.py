"""Plain records the risk engine reads and writes.

The engine never sees FHIR JSON: adapters translate a chart into these records, so the clinical
rules of ``risk-model.md`` can be read and tested without any I/O. Every record keeps the
reference of the resource it came from (``source``), because every figure on screen must trace
back to the chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum


class Antibody(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    INDETERMINATE = "indeterminate"
    UNKNOWN = "unknown"


class ResultUse(StrEnum):
    """What the engine may do with a lab result, from its FHIR status (risk-model.md §3)."""

    USE = "use"  # final, amended, corrected
    SHOW = "show"  # preliminary, registered, unknown: shown, never used
    IGNORE = "ignore"  # entered-in-error, cancelled: as if absent


class AgentClass(StrEnum):
    NATALIZUMAB = "natalizumab"
    IMMUNOSUPPRESSANT = "immunosuppressant"  # the five agents of the source analyses
    OTHER_MS_THERAPY = "other-ms-therapy"  # listed for the clinician, never counted as prior IS
    UNRESOLVED = "unresolved"  # the medication could not be identified: it might be any of these


@dataclass(frozen=True)
class LabResult:
    """One anti-JCV antibody Observation: a qualitative result, an index, or both."""

    source: str  # "Observation/123"
    effective: date | None
    use: ResultUse
    status: str  # the FHIR status as sent, for display
    qualitative: Antibody | None = None
    index: Decimal | None = None
    matched_by_text: bool = False  # an unmapped local code recognised by its name
    label: str = ""  # code text/display as the lab sent it
    note: str = ""  # how the value was read when it was not a plain value, e.g. "<1.5"
    unreadable: bool = False  # a value the adapter could not interpret: never a silent gap


@dataclass(frozen=True)
class Infusion:
    """One natalizumab MedicationAdministration."""

    source: str
    when: date | None
    status: str  # FHIR status; only "completed" counts
    product: str = ""  # text/display, e.g. "Tysabri 300 mg"


@dataclass(frozen=True)
class MedicationEvidence:
    """A MedicationAdministration/Statement/Request for an immunosuppressant, another MS
    therapy, or natalizumab itself (a statement or order that may predate the first recorded
    infusion)."""

    source: str
    agent_class: AgentClass
    agent: str  # normalised ingredient name, e.g. "azathioprine"
    when: date | None  # when use started (or the order was written)
    status: str
    label: str = ""
    ended: date | None = None  # effectivePeriod.end
    noted: date | None = None  # dateAsserted: use had started by then

    @property
    def started_by(self) -> date | None:
        """The latest date by which use had certainly begun."""
        known = [d for d in (self.when, self.ended, self.noted) if d is not None]
        return min(known) if known else None

    @property
    def resource_type(self) -> str:
        return self.source.split("/", 1)[0]


@dataclass(frozen=True)
class Overrides:
    """A clinician's corrections to what the chart says; every one is marked in the result."""

    prior_immunosuppressant: bool | None = None
    antibody: Antibody | None = None
    index: Decimal | None = None
    clear_index: bool = False  # "positive, index not available" even if the chart has one
    infusion_count: int | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.infusion_count is not None and self.infusion_count < 0:
            raise ValueError("an infusion count cannot be negative")
        if self.index is not None and (not self.index.is_finite() or self.index < 0):
            raise ValueError("an antibody index must be a number ≥ 0")

    def any(self) -> bool:
        return (
            self.prior_immunosuppressant is not None
            or self.antibody is not None
            or self.index is not None
            or self.clear_index
            or self.infusion_count is not None
        )


@dataclass(frozen=True)
class Inputs:
    """Everything the engine reads for one patient, as plain records."""

    patient: str  # "Patient/123"
    lab_results: tuple[LabResult, ...] = ()
    infusions: tuple[Infusion, ...] = ()
    medications: tuple[MedicationEvidence, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)
    versions: tuple[tuple[str, str], ...] = ()  # (reference, meta.versionId) of the sources

    def with_overrides(self, overrides: Overrides) -> Inputs:
        return replace(self, overrides=overrides)
