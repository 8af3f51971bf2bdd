"""Group an export's resources by patient without holding the export in memory.

Bulk Data files are per resource type, so one patient's chart is spread over every file. The
lines are written, unchanged, into an SQLite table keyed by patient inside the run's private
folder, then read back one patient at a time in patient order: memory holds one chart, whatever
the cohort size. Shared resources (``Medication``, which the patient compartment does not hold)
go into their own table and are joined to each chart that references them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..fhir.extract import newest_copies, subject_patient, unversioned

BATCH = 5_000
#: Compartment types the assessment reads; anything else in a file is counted and skipped.
CHART_TYPES = frozenset({
    "Observation", "MedicationAdministration", "MedicationStatement", "MedicationRequest",
    "DiagnosticReport", "ImagingStudy", "Procedure",  # brain MRIs
})
#: Shared (non-compartment) types a chart needs: resolved through ``medicationReference``.
SHARED_TYPES = frozenset({"Medication"})


@dataclass(frozen=True)
class PatientChart:
    """One patient's staged resources, parsed as ``pml-risk assess`` parses a file."""

    patient_id: str
    patient: Mapping[str, Any]  # the Patient resource (name, MRN)
    resources: tuple[Mapping[str, Any], ...]
    patient_conflict: bool = False  # different copies of the Patient that nothing orders


@dataclass(frozen=True)
class StagingCounts:
    """What went in, by type; the audit trail and the run summary carry only these numbers."""

    resource_types: Mapping[str, int]
    patients: int
    without_patient: int  # compartment resources whose patient has no Patient resource
    ignored: int  # resources the assessment has no use for (Practitioner, OperationOutcome…)


class Staging:
    """An SQLite staging database in ``folder`` (the run's private temporary folder)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "staging.sqlite3"
        self._db = sqlite3.connect(self.path)
        # A scratch database: it is deleted with the folder, so durability buys nothing.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE chart (patient TEXT NOT NULL, body BLOB NOT NULL)")
        # Every distinct copy of a Patient or shared resource is kept (identical ones once): an
        # export holding two different ``Medication/nat`` must reach the app's copy rule, never
        # be settled here by whichever line came last.
        self._db.execute("CREATE TABLE patient (id TEXT NOT NULL, body BLOB NOT NULL, "
                         "UNIQUE (id, body))")
        self._db.execute("CREATE TABLE shared (ref TEXT NOT NULL, body BLOB NOT NULL, "
                         "UNIQUE (ref, body))")
        self._pending: list[tuple[str, bytes]] = []
        self._types: Counter[str] = Counter()
        self._ignored = 0
        self._indexed = False
        #: unreadable lines skipped, by the patient they name ("" when they name none)
        self.bad_lines: Counter[str] = Counter()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading -------------------------------------------------------------------------------
    def add(self, lines: Iterable[bytes], source: str) -> int:
        """Stage every line of one file or download; returns the number of resources."""
        count = 0
        for number, line in enumerate(lines, start=1):
            self._add_line(line, source, number)
            count += 1
            if len(self._pending) >= BATCH:
                self._flush()
        self._flush()
        return count

    def add_resource(self, resource: Mapping[str, Any]) -> None:
        """Stage one resource already parsed (the per-patient search fallback)."""
        self._add_parsed(resource, json.dumps(resource, separators=(",", ":"),
                                              default=str).encode(), "search", 0)

    def _add_line(self, line: bytes, source: str, number: int) -> None:
        """Stage one line; a line that is not a FHIR resource is skipped and counted against
        the patient it names, if any (``bad_lines``): one broken line does not sink the run,
        and that patient's chart is known to be incomplete."""
        try:
            resource = json.loads(line)
        except (ValueError, RecursionError):
            resource = None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str) \
                or (resource["resourceType"] == "Patient"
                    and not (isinstance(resource.get("id"), str) and resource["id"])):
            self.bad_lines[named_patient(line)] += 1
            return
        self._add_parsed(resource, line, source, number)

    def _add_parsed(self, resource: Mapping[str, Any], body: bytes, source: str,
                    number: int) -> None:
        kind = str(resource["resourceType"])
        rid = resource.get("id")
        if kind == "Patient":
            if not isinstance(rid, str) or not rid:
                self.bad_lines[""] += 1
                return
            self._flush()
            self._db.execute("INSERT OR IGNORE INTO patient VALUES (?, ?)", (rid, body))
        elif kind in SHARED_TYPES:
            if not isinstance(rid, str) or not rid:
                self._ignored += 1
                return
            self._db.execute("INSERT OR IGNORE INTO shared VALUES (?, ?)", (f"{kind}/{rid}", body))
        else:
            owner = subject_patient(resource) if kind in CHART_TYPES else None
            if owner is None:
                self._ignored += 1
                return
            self._pending.append((owner, body))
        self._types[kind] += 1

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO chart VALUES (?, ?)", self._pending)
            self._pending.clear()

    # -- reading -------------------------------------------------------------------------------
    def _index(self) -> None:
        """Write what is pending (resources may be added between reads) and index once."""
        self._flush()
        if not self._indexed:
            self._db.execute("CREATE INDEX chart_patient ON chart (patient)")
            self._db.execute("CREATE INDEX patient_id ON patient (id)")
            self._indexed = True
        self._db.commit()

    def counts(self) -> StagingCounts:
        self._index()
        patients = self._db.execute("SELECT COUNT(DISTINCT id) FROM patient").fetchone()[0]
        orphans = self._db.execute(
            "SELECT COUNT(*) FROM chart WHERE patient NOT IN (SELECT id FROM patient)"
        ).fetchone()[0]
        return StagingCounts(dict(sorted(self._types.items())), patients, orphans, self._ignored)

    def mentioned_patients(self) -> list[str]:
        """Every patient with a staged Patient resource or chart resource (an incremental
        export holds only what changed, often without the unchanged Patient)."""
        self._index()
        return [row[0] for row in self._db.execute(
            "SELECT id FROM patient UNION SELECT DISTINCT patient FROM chart ORDER BY 1")]

    def patient_ids(self) -> list[str]:
        self._index()
        return [row[0] for row in
                self._db.execute("SELECT DISTINCT id FROM patient ORDER BY id")]

    def raw_charts(self) -> Iterator[tuple[str, tuple[bytes, ...], tuple[bytes, ...]]]:
        """(patient id, Patient lines, chart lines) of every patient with a Patient resource,
        in id order, one chart in memory at a time; nothing parsed (workers parse). Several
        Patient lines are the distinct copies the export holds of that Patient."""
        self._index()
        reader = self._db.cursor()
        for (pid,) in self._db.cursor().execute("SELECT DISTINCT id FROM patient ORDER BY id"):
            copies = tuple(row[0] for row in reader.execute(
                "SELECT body FROM patient WHERE id = ? ORDER BY body", (pid,)))
            bodies = tuple(row[0] for row in reader.execute(
                "SELECT body FROM chart WHERE patient = ? ORDER BY rowid", (pid,)))
            yield pid, copies, bodies

    def charts(self) -> Iterator[PatientChart]:
        """Every patient's chart, parsed, with the Medications it references."""
        for pid, patient, bodies in self.raw_charts():
            yield chart_from_raw(self._db, pid, patient, bodies)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A second connection to a finished staging database (another process's reader)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def chart_from_raw(db: sqlite3.Connection, pid: str, patient_bodies: tuple[bytes, ...],
                   bodies: tuple[bytes, ...]) -> PatientChart:
    """Parse one staged chart as ``pml-risk assess`` parses a file, and join its Medications
    (every distinct copy: the app's copy rule weighs them). Copies of the Patient go through
    the same rule (``newest_copies``): newest by versionId/lastUpdated; different copies that
    nothing orders leave the patient's identity in doubt (``patient_conflict``)."""
    newest = newest_copies([_parse(b) for b in patient_bodies])
    patient = newest[0]
    resources: list[Mapping[str, Any]] = [patient]
    resources.extend(_parse(b) for b in bodies)
    resources.extend(_medications(db, resources))
    return PatientChart(pid, patient, tuple(resources), patient_conflict=len(newest) > 1)


def _medications(db: sqlite3.Connection,
                 resources: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    refs: set[str] = set()
    for resource in resources:
        reference = resource.get("medicationReference")
        ref = reference.get("reference") if isinstance(reference, Mapping) else None
        if isinstance(ref, str) and not ref.startswith("#"):
            refs.add("/".join(unversioned(ref).split("/")[-2:]))
    if not refs:
        return []
    marks = ",".join("?" * len(refs))
    found = db.execute(f"SELECT body FROM shared WHERE ref IN ({marks}) ORDER BY ref, body",  # noqa: S608
                       sorted(refs))
    return [_parse(row[0]) for row in found]


def _parse(body: bytes) -> dict[str, Any]:
    """As the CLI reads a file: decimals stay ``Decimal``, so figures compare exactly."""
    parsed: dict[str, Any] = json.loads(body, parse_float=Decimal)
    return parsed


_PATIENT_REF = re.compile(rb'"reference"\s*:\s*"(?:[^"]*/)?Patient/([A-Za-z0-9\-.]{1,64})"')
_PATIENT_LINE = re.compile(rb'"resourceType"\s*:\s*"Patient"')
_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9\-.]{1,64})"')


def named_patient(line: bytes) -> str:
    """The patient an unreadable line names (its subject, or its own id if it is a Patient),
    "" when it names none: the run can then say whose chart is incomplete."""
    found = _PATIENT_REF.search(line)
    if found is None and _PATIENT_LINE.search(line):
        found = _ID.search(line)
    return found.group(1).decode() if found else ""
