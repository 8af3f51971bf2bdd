"""A whole worklist run: stage the data in a private folder, assess each patient, write files.

Export files are PHI. Everything the run downloads or stages lives in one folder created with
mode 0700 under the system's temporary directory and removed in a ``finally``, so an error, a
Ctrl-C or (through the CLI's SIGTERM handler) a scheduler's kill removes it too. Only the
worklist files in the output folder remain, and the audit trail gets counts only.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ..config import Settings, Tenant
from ..ops import audit
from ..risk.table import RiskTable
from ..risk.tables import load_table
from . import ndjson, output
from .assessing import Context, assess_all, jobs_from, workers_for
from .errors import WorklistError
from .rows import NO_ESTIMATE, Row, carried_row, previous_infusions, sort_key
from .staging import Staging, StagingCounts

TEMP_PREFIX = "pml-risk-worklist-"


@dataclass(frozen=True)
class RunResult:
    rows: tuple[Row, ...]
    summary: dict[str, Any]
    files: tuple[Path, ...]


@dataclass
class SourceReport:
    """What the data source (export or files) tells the run besides the resources."""

    source: str  # "bulk-export" | "ndjson"
    transaction_time: str | None = None
    notes: list[str] = field(default_factory=list)
    #: patient id → resource types that could not be read for that patient (the engine then
    #: treats them as unknown, exactly as the app does when a search fails)
    unread: dict[str, set[str]] = field(default_factory=dict)
    #: patient id → how part of the chart was read (e.g. per-patient search)
    data_notes: dict[str, str] = field(default_factory=dict)
    #: rows of an earlier run kept as they were (incremental runs: charts that did not change)
    carried: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh 0700 folder for PHI, removed when the block exits, however it exits."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def deep_link(settings: Settings, tenant: Tenant | None, patient_id: str) -> str:
    """A standalone launch of the app against the tenant, carrying the patient as a hint."""
    if tenant is None:
        return ""
    query = urlencode({"iss": tenant.iss, "patient": patient_id})
    return f"{settings.base_url}/standalone?{query}"


def assess_staged(
    staging: Staging,
    *,
    at: date,
    settings: Settings,
    table: RiskTable,
    report: SourceReport,
    previous: Mapping[str, int],
    link: Callable[[str], str],
    workers: int | None = None,
) -> list[Row]:
    """One row per staged patient, assessed through the app's seam (``service.assess_chart``)."""
    jobs = jobs_from(staging, unread=report.unread, previous=previous,
                     data_notes=report.data_notes, link=link)
    context = Context(str(staging.path), settings, table, at)
    rows = assess_all(jobs, context, workers_for(staging.counts().patients, workers))
    rows.sort(key=sort_key)
    return rows


def summary(
    rows: list[Row],
    counts: StagingCounts,
    report: SourceReport,
    *,
    at: date,
    table: RiskTable,
    tenant: Tenant | None,
    group: str | None,
) -> dict[str, Any]:
    """The ``worklist`` object of worklist.json: how the list was made, in counts."""
    notes = list(report.notes)
    if counts.without_patient:
        notes.append(f"{counts.without_patient} resources name a patient the export has no "
                     "Patient resource for; they are not on the list")
    return {
        "at": at.isoformat(),
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": report.source,
        "tenant": tenant.name if tenant else None,
        "iss": tenant.iss if tenant else None,
        "group": group,
        "transactionTime": report.transaction_time,
        "table": table.id,
        "counts": {
            "patients": len(rows),
            "estimates": sum(1 for r in rows if r.status != NO_ESTIMATE),
            "no_estimate": sum(1 for r in rows if r.status == NO_ESTIMATE),
            "retest_due_this_month": sum(1 for r in rows if r.due_this_month),
            "crossed_24": sum(1 for r in rows if r.crossed_24 == "yes"),
            "resource_types": dict(counts.resource_types),
            "without_patient": counts.without_patient,
            "ignored": counts.ignored,
        },
        "notes": notes,
        **report.extra,
    }


def run(
    fill: Callable[[Staging, Path], SourceReport],
    *,
    out: Path,
    at: date,
    settings: Settings,
    tenant: Tenant | None = None,
    group: str | None = None,
    workers: int | None = None,
) -> RunResult:
    """Stage with ``fill`` (which gets the staging and the private folder), assess, write."""
    table = load_table(settings.risk_table)
    previous_run = output.read_previous(out)
    previous = previous_infusions((previous_run or {}).get("rows") or [])
    status = "failed"
    counts: StagingCounts | None = None
    listed: int | None = None
    try:
        with private_folder() as folder, Staging(folder) as staging:
            report = fill(staging, folder)
            counts = staging.counts()
            rows = assess_staged(staging, at=at, settings=settings, table=table, report=report,
                                 previous=previous, workers=workers,
                                 link=lambda pid: deep_link(settings, tenant, pid))
            rows = sorted([*rows, *report.carried], key=sort_key)
        listed = len(rows)
        data = summary(rows, counts, report, at=at, table=table, tenant=tenant, group=group)
        files = output.write_all(out, rows, data)
        status = "ok"
        return RunResult(tuple(rows), data, tuple(files))
    finally:
        audit.event(
            "worklist.run",
            tenant=tenant.name if tenant else None,
            iss=tenant.iss if tenant else None,
            table=table.id,
            status=status,
            patients=listed,
            resource_types=dict(counts.resource_types) if counts else None,
        )


def from_ndjson(directory: Path, **kwargs: Any) -> RunResult:
    """``pml-risk worklist --from-ndjson DIR``: the files a health system already has."""
    paths = ndjson.files(directory)

    def fill(staging: Staging, folder: Path) -> SourceReport:
        for path in paths:
            staging.add(ndjson.file_lines(path), path.name)
        return SourceReport(source="ndjson", notes=[f"read from {len(paths)} NDJSON file(s)"])

    return run(fill, **kwargs)


# -- from the EHR: Backend Services + Bulk export ------------------------------------------------

EXPORT_TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
                "MedicationRequest", "Medication",
                "DiagnosticReport", "ImagingStudy", "Procedure")  # brain MRIs: the MRI due date


def observation_filter(settings: Settings, how: str) -> dict[str, list[list[tuple[str, str]]]]:
    """``_typeFilter`` for Observations: the app's own narrowing, or the anti-JCV codes only."""
    if how == "jcv-codes":
        from ..fhir import codes

        wanted = sorted(codes.JCV_ANTIBODY | codes.JCV_INDEX | set(settings.codes.jcv_antibody)
                        | set(settings.codes.jcv_index))
        return {"Observation": [[("code", ",".join(wanted))]]}
    if settings.observation_category:
        return {"Observation": [[("category", settings.observation_category)]]}
    return {}


def _named(types: list[str], text: str) -> list[str]:
    import re

    return [t for t in types if t != "Patient" and re.search(rf"\b{t}\b", text)]


def from_ehr(tenant: Tenant, group: str, *, options: Any, **kwargs: Any) -> RunResult:
    """``pml-risk worklist --tenant T --group G``: Backend Services token, Group export."""
    from ..http.session import make_http
    from ..smart import discovery
    from ..smart import keys as keyfile
    from .auth import BackendAuth, system_scopes
    from .export import BulkClient, KickOffRefused
    from .fallback import search_patients

    settings: Settings = kwargs["settings"]
    try:
        signing = keyfile.load(settings.keys_file)
    except keyfile.KeyFileError as exc:
        raise WorklistError(f"keys_file: {exc}") from exc
    http = make_http(pool=max(8, options.concurrency * 2))
    try:
        smart = discovery.fetch(http, tenant.iss, settings.fhir_timeout)
    except discovery.DiscoveryError as exc:
        raise WorklistError(f"tenant {tenant.name}: {exc}") from exc
    auth = BackendAuth(http, tenant, signing, smart.token_endpoint,
                       scope=system_scopes(tenant), timeout=settings.fhir_timeout)
    client = BulkClient(http, tenant.iss, auth, timeout=settings.fhir_timeout)
    since = options.since
    base_run: dict[str, Any] | None = None
    if since:
        base_run = _base_run(kwargs["out"], tenant, group)
        if since == "last":
            since = base_run["worklist"].get("transactionTime")
            if not isinstance(since, str) or not since:
                raise WorklistError("--since last: the previous run recorded no transactionTime; "
                                    "run once without --since")

    def fill(staging: Staging, folder: Path) -> SourceReport:
        deadline = client.clock() + options.wait
        per_patient = [t for t in options.per_patient if t in EXPORT_TYPES and t != "Patient"]
        types = [t for t in EXPORT_TYPES if t not in per_patient]
        filters = observation_filter(settings, options.observations)
        report = SourceReport(source="bulk-export")
        status_url = None
        for _ in range(4):
            try:
                status_url = client.kick_off(group, types, filters, since, deadline=deadline)
                break
            except KickOffRefused as exc:
                named = _named(types, exc.diagnostics)
                if exc.status == 404:
                    raise WorklistError(f"the EHR has no Group/{group} for this client "
                                        "(HTTP 404)") from exc
                if named:
                    types = [t for t in types if t not in named]
                    per_patient += [t for t in named if t != "Medication"]
                    report.notes.append(f"the EHR cannot export {', '.join(named)}: read by "
                                        "per-patient search instead" if named != ["Medication"]
                                        else "the EHR cannot export Medication resources")
                elif filters:
                    filters = {}
                    report.notes.append("the EHR refused _typeFilter: exported all "
                                        "Observations")
                else:
                    raise WorklistError(f"the EHR refused the export (HTTP {exc.status}): "
                                        f"{exc.diagnostics[:200]}") from exc
        if status_url is None:
            raise WorklistError("the EHR kept refusing the export")
        errors = 0
        target = staging
        if since:  # what changed goes to a scratch staging; full charts are read afterwards
            (folder / "changes").mkdir(mode=0o700)
            target = Staging(folder / "changes")
        try:
            manifest = client.wait(status_url, deadline=deadline)
            report.transaction_time = manifest.transaction_time
            files = 0
            for item in manifest.output:
                if item.type not in types:
                    continue
                files += 1
                name = f"{item.type} file {files}"
                with client.open(item, requires_token=manifest.requires_token) as resp:
                    try:
                        target.add(ndjson.lines(resp.raw, name), name)
                    except ndjson.NdjsonError as exc:  # the EHR's data, not the user's input
                        raise WorklistError(f"the export is not usable: {exc}") from exc
            for item in manifest.error:
                with client.open(item, requires_token=manifest.requires_token) as resp:
                    for _ in ndjson.lines(resp.raw, "error file"):
                        errors += 1
        finally:
            deleted = client.delete(status_url)
        if errors:
            report.notes.append(f"the EHR reported {errors} export error(s) (OperationOutcome); "
                                "affected charts may be incomplete")
        if since and base_run is not None:
            changed = target.mentioned_patients()
            target.close()
            _read_changed(client, staging, report, changed, filters, options.concurrency)
            prev_at = str(base_run["worklist"].get("at", "?"))
            carried = [r for r in base_run.get("rows") or []
                       if isinstance(r, dict) and r.get("patient") not in set(changed)]
            try:
                report.carried = [carried_row(r, at=kwargs["at"], since_run=prev_at)
                                  for r in carried]
            except (KeyError, TypeError, ValueError) as exc:
                raise WorklistError("--since: the previous worklist.json cannot be carried "
                                    "over; run once without --since") from exc
            report.notes.append(f"incremental since {since}: {len(changed)} changed chart(s) "
                                f"read in full by per-patient search, {len(report.carried)} "
                                f"row(s) carried over from the run of {prev_at}")
            per_patient = []
        if per_patient:
            ids = staging.patient_ids()
            failed = 0
            for result in search_patients(client, per_patient, ids, options.concurrency):
                if result.error is not None:
                    failed += 1
                    report.unread.setdefault(result.patient_id, set()).add(result.kind)
                    report.data_notes[result.patient_id] = result.error
                    continue
                for resource in result.resources:
                    staging.add_resource(resource)
                how = f"{', '.join(per_patient)} by per-patient search"
                report.data_notes.setdefault(result.patient_id, how)
            report.notes.append(f"{', '.join(per_patient)} read by per-patient search for "
                                f"{len(ids)} patients" + (f" ({failed} failed: no estimate for "
                                                          "them)" if failed else ""))
        report.extra["export"] = {
            "types": types,
            "per_patient": per_patient,
            "typeFilter": bool(filters),
            "since": since,
            "polls": client.polls,
            "requests": client.requests,
            "token_requests": auth.fetches,
            "deleted": deleted in (200, 202, 204),
        }
        return report

    return run(fill, tenant=tenant, group=group, **kwargs)


def _base_run(out: Path, tenant: Tenant, group: str) -> dict[str, Any]:
    """The previous run an incremental run builds on: same EHR, same group, same folder."""
    previous = output.read_previous(out)
    info = previous.get("worklist") if previous else None
    if not isinstance(info, dict) or not isinstance(previous, dict) or \
            info.get("iss") != tenant.iss or info.get("group") != group:
        raise WorklistError(f"--since: {out} holds no earlier worklist of this tenant and "
                            "group; run once without --since")
    return previous


CHART_SEARCHES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
                  "MedicationRequest")


def _read_changed(client: Any, staging: Staging, report: SourceReport, changed: list[str],
                  filters: Mapping[str, list[list[tuple[str, str]]]], concurrency: int) -> None:
    """Read every changed patient's whole chart by per-patient search (an incremental export
    holds only the changed resources, and a figure needs the whole chart)."""
    from .fallback import search_patients

    extra = {kind: options[0] for kind, options in filters.items() if options}
    for result in search_patients(client, CHART_SEARCHES, changed, concurrency, extra):
        if result.error is not None:
            report.unread.setdefault(result.patient_id, set()).add(result.kind)
            report.data_notes[result.patient_id] = result.error
            continue
        for resource in result.resources:
            staging.add_resource(resource)
        report.data_notes.setdefault(result.patient_id, "changed since the last run: chart read "
                                     "in full by per-patient search")

