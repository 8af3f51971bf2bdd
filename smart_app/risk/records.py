"""Plain records the risk engine reads and writes.

The engine never sees FHIR JSON: adapters translate a chart into these records, so the clinical
rules of ``docs/clinical-basis.md`` can be read and tested without any I/O. Every record keeps the
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
    """What the engine may do with a lab result, from its FHIR status
    (docs/clinical-basis.md §3)."""

    USE = "use"  # final, amended, corrected
    SHOW = "show"  # preliminary, registered, unknown: shown, never used
    IGNORE = "ignore"  # entered-in-error, cancelled: as if absent


COMPARATORS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class IndexRange:
    """Where the true antibody index lies: one exact value, or one side of a reported bound.

    Labs report values outside their reportable range as bounds (">1.5", "<0.20"). A bound is
    evidence about which band the index falls in, and nothing more: every rule that reads an
    index asks this range whether the answer is certain, so a bound can never silently stand
    in for the value at its edge (docs/clinical-basis.md §3).
    """

    low: Decimal  # ≥ 0: an index is never negative
    low_open: bool
    high: Decimal | None  # None: no upper limit
    high_open: bool

    @classmethod
    def of(cls, value: Decimal, comparator: str = "") -> IndexRange:
        if comparator == ">":
            return cls(value, True, None, False)
        if comparator == ">=":
            return cls(value, False, None, False)
        if comparator == "<":
            return cls(Decimal(0), False, value, True)
        if comparator == "<=":
            return cls(Decimal(0), False, value, False)
        if comparator:
            raise ValueError(f"unknown comparator {comparator!r}")
        return cls(value, False, value, False)

    @property
    def exact(self) -> Decimal | None:
        return self.low if self.high == self.low and not self.low_open else None

    def below(self, x: Decimal) -> bool:
        """Every value in the range is < x."""
        return self.high is not None and (self.high < x or (self.high == x and self.high_open))

    def at_most(self, x: Decimal) -> bool:
        """Every value in the range is ≤ x."""
        return self.high is not None and self.high <= x

    def above(self, x: Decimal) -> bool:
        """Every value in the range is > x."""
        return self.low > x or (self.low == x and self.low_open)

    def at_least(self, x: Decimal) -> bool:
        """Every value in the range is ≥ x."""
        return self.low >= x

    def within(self, above: Decimal | None, at_most: Decimal | None) -> bool:
        """The whole range lies in (above, at_most]: the bound decides that band."""
        return (above is None or self.above(above)) and (at_most is None or self.at_most(at_most))

    def meets(self, above: Decimal | None, at_most: Decimal | None) -> bool:
        """Some value of the range lies in (above, at_most]: that band stays possible."""
        return (above is None or not self.at_most(above)) and (
            at_most is None or not self.above(at_most)
        )


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
    note: str = ""  # why the value could not be read (with ``unreadable``)
    unreadable: bool = False  # a value the adapter could not interpret: never a silent gap
    comparator: str = ""  # "<", "<=", ">", ">=": ``index`` is a bound, not the value

    def __post_init__(self) -> None:
        if self.comparator and self.comparator not in COMPARATORS:
            raise ValueError(f"unknown comparator {self.comparator!r}")

    @property
    def index_range(self) -> IndexRange | None:
        return None if self.index is None else IndexRange.of(self.index, self.comparator)

    @property
    def index_text(self) -> str:
        """The index as the laboratory reported it, e.g. "1.51" or ">1.5"."""
        return "" if self.index is None else f"{self.comparator}{self.index.normalize():f}"


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
    excluded: str = ""  # why the record is not evidence of use ("order intent plan"): listed
    every_days: int | None = None  # an order's dosing interval (timing.repeat), in days


    @property
    def started_by(self) -> date | None:
        """The latest date by which use had certainly begun."""
        known = [d for d in (self.when, self.ended, self.noted) if d is not None]
        return min(known) if known else None

    @property
    def resource_type(self) -> str:
        return self.source.split("/", 1)[0]


@dataclass(frozen=True)
class BrainMri:
    """One brain MRI the chart records: a report, an imaging study or a procedure.

    Only the date matters to the monitoring rule (the next MRI is due a set interval after the
    last); the source reference and the kind of record are kept so the page can show where the
    date comes from (docs/clinical-basis.md §6).
    """

    source: str  # "DiagnosticReport/123"
    when: date | None  # when the scan was done; None: the record gives no date
    kind: str  # "report", "study" or "procedure"
    status: str = ""  # the FHIR status as sent, for display
    label: str = ""  # code text/display as the EHR sent it


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


# The resource types the inputs come from (docs/clinical-basis.md §1).
OBSERVATION = "Observation"
ADMINISTRATION = "MedicationAdministration"
STATEMENT = "MedicationStatement"
REQUEST = "MedicationRequest"
PRIOR_IS_SOURCES = (STATEMENT, REQUEST, ADMINISTRATION)
MRI_SOURCES = ("DiagnosticReport", "ImagingStudy", "Procedure")


@dataclass(frozen=True)
class Copy:
    """The records one copy of a resource yields (a resource may yield none)."""

    lab_results: tuple[LabResult, ...] = ()
    infusions: tuple[Infusion, ...] = ()
    medications: tuple[MedicationEvidence, ...] = ()


@dataclass(frozen=True)
class Conflict:
    """One resource (type/id) received more than once with different content and nothing
    (``meta.versionId``, ``meta.lastUpdated``) to say which is newer. The engine weighs every
    copy; none is chosen silently (docs/clinical-basis.md §8)."""

    reference: str
    copies: tuple[Copy, ...]  # in a canonical order that does not depend on the input's


@dataclass(frozen=True)
class Inputs:
    """Everything the engine reads for one patient, as plain records.

    ``unread`` and ``not_offered`` say which resource types the chart could not supply: a type
    the EHR offers but did not let the app read is unknown, never "none on record"; a type the
    EHR does not offer at all is simply not a source there (docs/clinical-basis.md §8).
    """

    patient: str  # "Patient/123"
    lab_results: tuple[LabResult, ...] = ()
    infusions: tuple[Infusion, ...] = ()
    medications: tuple[MedicationEvidence, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)
    versions: tuple[tuple[str, str], ...] = ()  # (reference, meta.versionId) of the sources
    unread: tuple[str, ...] = ()  # resource types offered but not read (grant, 403, 5xx, …)
    not_offered: tuple[str, ...] = ()  # resource types the EHR does not offer
    conflicts: tuple[Conflict, ...] = ()  # conflicting copies, kept out of the records above
    #: Resources received as different copies with nothing to order them, whose copies all
    #: give the same records (a Patient, or a Medication every copy of which reads alike).
    unordered: tuple[str, ...] = ()
    mris: tuple[BrainMri, ...] = ()  # brain MRIs on record (for the monitoring due date)

    def unknown(self, resource_type: str) -> bool:
        """The chart cannot tell anything about this type (unread or not offered)."""
        return resource_type in self.unread or resource_type in self.not_offered

    def with_overrides(self, overrides: Overrides) -> Inputs:
        return replace(self, overrides=overrides)
