"""Assess every staged chart through the app's seam, on every core when the cohort is large.

Parsing and assessing a chart is pure CPU, so a large cohort is split over worker processes
(``spawn``: a clean interpreter each, whatever threads the parent runs). The parent reads the
staging database in patient order and hands out bounded batches of raw lines; each worker
parses, joins the Medications through its own read-only connection and returns finished rows.
Only one batch is in flight, so memory stays flat whatever the cohort size.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

from ..config import Settings
from ..fhir.extract import ForeignResourceError
from ..risk.table import RiskTable
from .rows import Row, row_for, unread_row
from .staging import Staging, chart_from_raw, open_read_only

#: Below this many patients a pool costs more (interpreter start-up) than it saves.
PARALLEL_FROM = 500
BATCH = 512


@dataclass(frozen=True)
class Context:
    """What every worker needs, sent once."""

    db_path: str
    settings: Settings
    table: RiskTable
    at: date
    max_resources: int = 20_000  # per chart; a larger one gets no estimate, with the reason


@dataclass(frozen=True)
class Job:
    patient_id: str
    patient: tuple[bytes, ...]  # the distinct copies of the Patient in the export
    lines: tuple[bytes, ...]
    unread: tuple[str, ...]
    previous_infusions: int | None
    data_notes: str
    link: str
    #: why the whole chart is unusable (an export error, an unreadable line naming this
    #: patient): no estimate, whatever the rest of the chart says
    unusable: str = ""
    not_offered: tuple[str, ...] = ()  # types the EHR does not offer at all


def assess_job(job: Job, context: Context, db: sqlite3.Connection) -> Row:
    from ..service import assess_chart  # the FHIR model import is slow: only when assessing

    chart = chart_from_raw(db, job.patient_id, job.patient, job.lines)
    reason = job.unusable
    if not reason and chart.patient_conflict:
        reason = ("the export holds two different Patient records with this id and nothing "
                  "says which is newer: the patient's identity is in doubt")
    if not reason and len(job.lines) > context.max_resources:
        reason = (f"the chart holds more than {context.max_resources} resources "
                  "(--max-patient-resources): not assessed")
    if reason:
        return unread_row(patient_id=job.patient_id, patient=chart.patient, at=context.at,
                          reason=reason, previous_infusions=job.previous_infusions,
                          link=job.link)
    try:
        result = assess_chart(chart.resources, job.patient_id, at=context.at,
                              settings=context.settings, table=context.table,
                              unread=job.unread, not_offered=job.not_offered, resource=False)
    except ForeignResourceError:
        return unread_row(patient_id=job.patient_id, patient=chart.patient, at=context.at,
                          reason="the export mixes this chart with another patient's",
                          previous_infusions=job.previous_infusions, link=job.link)
    return row_for(result.assessment, patient_id=job.patient_id, patient=chart.patient,
                   at=context.at, previous_infusions=job.previous_infusions,
                   data_notes=job.data_notes, link=job.link)


_WORKER: dict[str, Any] = {}


def _start_worker(context: Context) -> None:
    _WORKER["context"] = context
    _WORKER["db"] = open_read_only(Path(context.db_path))


def _work(job: Job) -> Row:
    return assess_job(job, _WORKER["context"], _WORKER["db"])


def workers_for(patients: int, requested: int | None) -> int:
    """``requested`` when given; else every core (at most 4) from ``PARALLEL_FROM`` patients."""
    if requested:
        return requested
    return min(os.cpu_count() or 1, 4) if patients >= PARALLEL_FROM else 1


def jobs_from(
    staging: Staging,
    *,
    unread: Mapping[str, Iterable[str]],
    previous: Mapping[str, int],
    data_notes: Mapping[str, str],
    link: Callable[[str], str],
    unusable: Mapping[str, str] | None = None,
    members: frozenset[str] | None = None,
    not_offered: tuple[str, ...] = (),
) -> Iterator[Job]:
    """One job per staged patient (only the group's members when ``members`` is known)."""
    for pid, patient, lines in staging.raw_charts():
        if members is not None and pid not in members:
            continue
        yield Job(pid, patient, lines, tuple(sorted(unread.get(pid, ()))), previous.get(pid),
                  data_notes.get(pid, ""), link(pid), (unusable or {}).get(pid, ""), not_offered)


def assess_all(jobs: Iterator[Job], context: Context, workers: int) -> list[Row]:
    if workers <= 1:
        db = open_read_only(Path(context.db_path))
        try:
            return [assess_job(job, context, db) for job in jobs]
        finally:
            db.close()
    rows: list[Row] = []
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(workers, initializer=_start_worker, initargs=(context,)) as pool:
        while batch := list(islice(jobs, BATCH)):
            rows.extend(pool.map(_work, batch, chunksize=max(1, len(batch) // (workers * 4))))
    return rows
