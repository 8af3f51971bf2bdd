"""What the engine hands back: the estimate, the cell it came from, and every caveat.

Adapters render this (HTML, text, FHIR RiskAssessment); none of them recomputes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from .orders import OrderEstimate
from .records import Antibody, IndexRange, Infusion, LabResult, MedicationEvidence, Overrides


class Severity(StrEnum):
    MISSING = "missing"  # blocks the estimate
    WARNING = "warning"  # the estimate stands, but read it with this in mind
    INFO = "info"  # context for the clinician


class Code(StrEnum):
    """Stable finding codes: tests, the UI and the RiskAssessment notes key on these."""

    ANTIBODY_MISSING = "antibody-missing"
    ANTIBODY_INDETERMINATE = "antibody-indeterminate"
    ANTIBODY_PRELIMINARY = "antibody-preliminary"
    ANTIBODY_STALE = "antibody-stale"
    ANTIBODY_SEROREVERSION = "antibody-seroreversion"
    ANTIBODY_LOCAL_CODE = "antibody-local-code"
    ANTIBODY_DISCORDANT = "antibody-discordant"
    ANTIBODY_UNDATED = "antibody-undated"
    ANTIBODY_VALUE_BOUND = "antibody-value-bound"
    ANTIBODY_UNREAD = "antibody-unread"
    ANTIBODY_UNREADABLE = "antibody-unreadable"
    INDEX_DUPLICATE = "index-duplicate"
    INDEX_MISSING = "index-missing"
    INDEX_NEAR_CUTOFF = "index-near-cutoff"
    INDEX_RISING = "index-rising"
    INDEX_NOT_USED = "index-not-used"
    EXPOSURE_NONE = "exposure-none"
    EXPOSURE_BEYOND_TABLE = "exposure-beyond-table"
    EXPOSURE_UNDERCOUNT = "exposure-undercount"
    EXPOSURE_EXTENDED_INTERVAL = "exposure-extended-interval"
    EXPOSURE_UNDATED = "exposure-undated"
    PRIOR_IS_NONE_ON_RECORD = "prior-is-none-on-record"
    PRIOR_IS_CONCOMITANT = "prior-is-concomitant"
    PRIOR_IS_UNDATED = "prior-is-undated"
    OTHER_MS_THERAPY = "other-ms-therapy"
    TABLE_CELL_FLAGGED = "table-cell-flagged"
    OVERRIDE = "override"
    MEDICATION_UNRESOLVED = "medication-unresolved"
    EXPOSURE_NOT_COUNTED = "exposure-not-counted"
    EXPOSURE_SAME_DAY = "exposure-same-day"
    EXPOSURE_UNREAD = "exposure-unread"
    EXPOSURE_BEYOND_FOLLOW_UP = "exposure-beyond-follow-up"
    PRIOR_IS_UNREAD = "prior-is-unread"
    RECORDS_NOT_COUNTED = "records-not-counted"
    SOURCES_NOT_OFFERED = "sources-not-offered"
    RESOURCE_CONFLICT = "resource-conflict"
    AFTER_ASSESSMENT_DATE = "after-assessment-date"
    EXPOSURE_ORDERS_HIGHER = "exposure-orders-higher"
    EXPOSURE_UNIDENTIFIED = "exposure-unidentified"
    PRIOR_IS_STATUS_UNKNOWN = "prior-is-status-unknown"
    PRIOR_IS_UNIDENTIFIED = "prior-is-unidentified"


@dataclass(frozen=True)
class Finding:
    code: Code
    severity: Severity
    message: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class EarlierIndex:
    """The index of an earlier positive test, offered when the latest positive test reports
    none (docs/clinical-basis.md §3): the engine uses it only where its row is higher."""

    index: Decimal
    comparator: str
    tested_on: date
    sources: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.comparator}{self.index.normalize():f}"


@dataclass(frozen=True)
class AntibodySummary:
    status: Antibody
    index: Decimal | None
    tested_on: date | None
    sources: tuple[str, ...]  # the results of the latest test
    history: tuple[LabResult, ...]  # usable results, oldest first (for the index chart)
    not_used: tuple[LabResult, ...]  # preliminary and other results shown but not used
    overridden: bool = False
    comparator: str = ""  # the index was reported as a bound (">1.5"): ``index`` is the bound
    discordant: bool = False  # the latest results contradict each other (status: indeterminate)
    #: the latest positive test has no index but an earlier positive test has one
    earlier_index: EarlierIndex | None = None
    #: the earlier index is used (its row is higher than "index not available")
    index_from: date | None = None

    @property
    def index_range(self) -> IndexRange | None:
        return None if self.index is None else IndexRange.of(self.index, self.comparator)

    @property
    def index_text(self) -> str:
        return "" if self.index is None else f"{self.comparator}{self.index.normalize():f}"


@dataclass(frozen=True)
class ExposureSummary:
    infusions: int
    counted: tuple[Infusion, ...]  # completed infusions, oldest first
    first: date | None
    last: date | None
    calendar_months: int | None
    mean_interval_days: Decimal | None
    extended_interval: bool
    overridden: bool = False
    unknown: str = ""  # "unread" / "not offered": the chart could not give the count
    #: The count the natalizumab orders/statements imply, when they predate the first recorded
    #: infusion (or there is none): the engine compares its band with the recorded count's.
    from_orders: OrderEstimate | None = None
    #: Completed administrations of an unidentified medication, and natalizumab administrations
    #: of status ``unknown``: each might be an infusion the count lacks.
    unidentified: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriorImmunosuppressant:
    value: bool
    on_record: bool  # False: "no (none on record)" or an override without evidence
    evidence: tuple[MedicationEvidence, ...]
    concomitant: tuple[MedicationEvidence, ...]
    other_therapies: tuple[MedicationEvidence, ...]
    overridden: bool = False
    not_counted: tuple[MedicationEvidence, ...] = ()  # records that are not use, with the reason
    unread_sources: tuple[str, ...] = ()  # prior-IS sources the app could not read
    #: Records dated before the first infusion whose medication could not be identified: any
    #: of them might be an immunosuppressant.
    unidentified: tuple[str, ...] = ()

    @property
    def unknown(self) -> bool:
        """No evidence found, but some sources could not be read or some records could not be
        identified: use is unknown."""
        return (bool(self.unread_sources) or bool(self.unidentified)) and (
            not self.on_record and not self.overridden
        )


@dataclass(frozen=True)
class Cell:
    row: str  # e.g. "antibody positive, no prior IS, index > 1.5"
    band: str  # e.g. "25–48 infusions"
    per_1000: Decimal
    flag: str = ""

    @property
    def words(self) -> str:
        return f"{self.row}, {self.band}"


class MriState(StrEnum):
    """Where the patient stands against the brain-MRI interval (docs/clinical-basis.md §6)."""

    SCHEDULED = "scheduled"  # the next MRI is not yet due
    DUE = "due"  # due now: the short end of the interval has passed
    OVERDUE = "overdue"  # the long end of the interval has passed
    NONE_ON_RECORD = "none-on-record"  # every MRI source was read and none holds a brain MRI
    UNKNOWN = "unknown"  # a source could not be read (or is not offered): never "none"


@dataclass(frozen=True)
class MriSchedule:
    """The last brain MRI on record and when the next one is due."""

    state: MriState
    text: str  # "due 2027-01-15", "overdue by 3 weeks (due 2026-10-15)", "no brain MRI on record"
    last: date | None = None
    sources: tuple[str, ...] = ()  # the record(s) of the last MRI
    due: date | None = None  # last + the short end of the interval
    overdue_from: date | None = None  # last + the long end of the interval
    unread: tuple[str, ...] = ()  # MRI sources that could not be read or are not offered

    @property
    def actionable(self) -> bool:
        """An MRI to arrange now: overdue, or none on record for a patient who needs one."""
        return self.state in (MriState.OVERDUE, MriState.NONE_ON_RECORD)


@dataclass(frozen=True)
class Monitoring:
    mri: str
    antibody_retest: str
    antibody_retest_due: date | None
    # Set when there is no estimate: the interval follows the most cautious reading of the
    # evidence, and holds only "until the antibody result is resolved".
    provisional: str = ""
    mri_months: tuple[int, int] | None = None  # (due, overdue) months after the last MRI
    mri_schedule: MriSchedule | None = None


@dataclass(frozen=True)
class NextBand:
    """The next infusion crosses a band edge: the figure that infusion begins."""

    infusion: int  # the ordinal of the next infusion (25 for the 25th)
    band: str  # "25–48 infusions"
    per_1000: Decimal
    beyond_published: bool = False  # past the last published band: the figure is not new
    if_index_above: Decimal | None = None  # the cut-off the index could retest above
    per_1000_if_above: Decimal | None = None  # the next band's figure in that row
    text: str = ""


@dataclass(frozen=True)
class Advice:
    """What the product information and regulators ask of the prescriber, with sources."""

    text: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Assessment:
    patient: str
    assessed_on: date
    table_id: str
    table_title: str
    table_version: str
    antibody: AntibodySummary
    exposure: ExposureSummary
    prior_immunosuppressant: PriorImmunosuppressant
    cell: Cell | None
    qualitative: str | None  # risk-probability code: low | moderate | high
    monitoring: Monitoring
    findings: tuple[Finding, ...]
    basis: tuple[str, ...]  # every resource the estimate rests on
    overrides: Overrides
    category_reason: str = ""  # one sentence: why this qualitative category
    unread: tuple[str, ...] = ()  # resource types the app could not read
    not_offered: tuple[str, ...] = ()  # resource types the EHR does not offer
    next_band: NextBand | None = None  # the next infusion begins a new exposure band
    advice: tuple[Advice, ...] = ()  # for the EMA/PRAC higher-risk groups

    @property
    def complete(self) -> bool:
        return self.cell is not None

    @property
    def per_1000(self) -> Decimal | None:
        return self.cell.per_1000 if self.cell else None

    @property
    def one_in(self) -> int | None:
        """"About 1 in N", rounded to a whole patient."""
        if self.cell is None or self.cell.per_1000 <= 0:
            return None
        return int((Decimal(1000) / self.cell.per_1000).to_integral_value())

    @property
    def missing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.MISSING)
