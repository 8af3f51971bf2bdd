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


@dataclass(frozen=True)
class Job:
    patient_id: str
    patient: bytes
    lines: tuple[bytes, ...]
    unread: tuple[str, ...]
    previous_infusions: int | None
    data_notes: str
    link: str


def assess_job(job: Job, context: Context, db: sqlite3.Connection) -> Row:
    from ..service import assess_chart  # the FHIR model import is slow: only when assessing

    chart = chart_from_raw(db, job.patient_id, job.patient, job.lines)
    try:
        result = assess_chart(chart.resources, job.patient_id, at=context.at,
                              settings=context.settings, table=context.table,
                              unread=job.unread, resource=False)
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
) -> Iterator[Job]:
    for pid, patient, lines in staging.raw_charts():
        yield Job(pid, patient, lines, tuple(sorted(unread.get(pid, ()))), previous.get(pid),
                  data_notes.get(pid, ""), link(pid))


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
