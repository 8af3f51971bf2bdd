"""A whole worklist run: stage the data in a private folder, assess each patient, write files.

Export files are PHI. Everything the run downloads or stages lives in one folder created with
mode 0700 under the system's temporary directory and removed in a ``finally``, so an error, a
Ctrl-C or (through the CLI's SIGTERM handler) a scheduler's kill removes it too. Only the
worklist files in the output folder remain, and the audit trail gets counts only.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..config import Settings, Tenant
from ..ops import audit
from ..risk.table import RiskTable
from ..risk.tables import load_table
from . import ndjson, output
from .assessing import Context, assess_all, jobs_from, workers_for
from .errors import WorklistError
from .rows import NO_ESTIMATE, Row, carried_row, previous_infusions, sort_key, unread_row
from .staging import Staging, StagingCounts

TEMP_PREFIX = "pml-risk-worklist-"


@dataclass(frozen=True)
class RunResult:
    rows: tuple[Row, ...]
    summary: dict[str, Any]
    files: tuple[Path, ...]
    incomplete: tuple[str, ...] = ()  # written, but the run exits non-zero for these reasons


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
    #: patient id → why the whole chart is unusable (an export error naming the patient)
    unusable: dict[str, str] = field(default_factory=dict)
    #: resource types the EHR does not offer at all (unknown to the engine, as in the app)
    not_offered: tuple[str, ...] = ()
    #: the group's members when the EHR let the run read the Group; None: not checked
    members: frozenset[str] | None = None
    #: why the run must exit non-zero although its list is written (every affected patient
    #: has a "no estimate" row): e.g. changed charts an incremental run could not re-read
    incomplete: list[str] = field(default_factory=list)

    def note(self, patient_id: str, text: str) -> None:
        """Add to a patient's data notes (every note is kept, in order, once)."""
        notes = [n for n in self.data_notes.get(patient_id, "").split("; ") if n]
        if text not in notes:
            notes.append(text)
        self.data_notes[patient_id] = "; ".join(notes)


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh 0700 folder for PHI, removed when the block exits, however it exits."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def deep_link(settings: Settings, tenant: Tenant | None, patient_id: str) -> str:
    """The tenant's chart URL for the patient (``worklist_link``, ``{patient}`` filled in), or
    no link: a provider standalone launch gets no patient at Epic or Oracle Health, so a link
    to the app itself would open on "No patient selected"."""
    template = tenant.worklist_link if tenant is not None else ""
    if not template:
        return ""
    return template.replace("{patient}", quote(patient_id, safe=""))


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
    max_resources: int = ndjson.Limits().patient_resources,
) -> list[Row]:
    """One row per staged patient, assessed through the app's seam (``service.assess_chart``)."""
    jobs = jobs_from(staging, unread=report.unread, previous=previous,
                     data_notes=report.data_notes, link=link, unusable=report.unusable,
                     members=report.members, not_offered=report.not_offered)
    context = Context(str(staging.path), settings, table, at, max_resources)
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
        "limits": report.extra.pop("limits", None),
        **report.extra,
    }


def run(
    fill: Callable[[Staging, Path, ndjson.Budget], SourceReport],
    *,
    out: Path,
    at: date,
    settings: Settings,
    tenant: Tenant | None = None,
    group: str | None = None,
    workers: int | None = None,
    limits: ndjson.Limits | None = None,
) -> RunResult:
    """Stage with ``fill`` (which gets the staging, the private folder and the run's byte
    budget), assess, write. A ``WorklistError`` anywhere leaves the previous files untouched:
    a list that cannot be trusted is never written over one that could."""
    limits = limits or ndjson.Limits()
    budget = ndjson.Budget(limits)
    table = load_table(settings.risk_table)
    previous_run = output.read_previous(out)
    previous = previous_infusions((previous_run or {}).get("rows") or [])
    status = "failed"
    counts: StagingCounts | None = None
    listed: int | None = None
    try:
        with private_folder() as folder, Staging(folder) as staging:
            report = fill(staging, folder, budget)
            counts = staging.counts()
            attribute_bad_lines(staging, report)
            if counts.patients == 0 and not report.carried:
                raise WorklistError("the export holds no Patient resource: no list can be made "
                                    "from it")
            outside = _outside_group(staging, report)
            rows = assess_staged(staging, at=at, settings=settings, table=table, report=report,
                                 previous=previous, workers=workers,
                                 link=lambda pid: deep_link(settings, tenant, pid),
                                 max_resources=limits.patient_resources)
            missing = sorted(report.members - set(staging.patient_ids())) \
                if report.members is not None else []
            # A member the export holds no Patient for is still on the list, without a figure.
            rows.extend(unread_row(patient_id=pid, patient=None, at=at, previous_infusions=None,
                                   reason="a member of the group, but the export holds no "
                                   "Patient resource for this patient",
                                   link=deep_link(settings, tenant, pid)) for pid in missing)
            rows = sorted([*rows, *report.carried], key=sort_key)
        listed = len(rows)
        report.extra["limits"] = {"line_bytes": limits.line_bytes,
                                  "file_bytes": limits.file_bytes,
                                  "run_bytes": limits.run_bytes,
                                  "patient_resources": limits.patient_resources,
                                  "bytes_read": budget.used}
        if outside:
            report.notes.append(f"{outside} patient(s) in the export are not members of the "
                                "group: not listed")
        data = summary(rows, counts, report, at=at, table=table, tenant=tenant, group=group)
        files = output.write_all(out, rows, data)
        status = "ok" if not report.incomplete else "incomplete"
        return RunResult(tuple(rows), data, tuple(files), tuple(report.incomplete))
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


def attribute_bad_lines(staging: Staging, report: SourceReport) -> None:
    """Unreadable lines were skipped and counted (``Staging.bad_lines``): a patient a line names
    gets no estimate; a line that names nobody could be anyone's infusion or result, so no row
    can be trusted and the run fails."""
    unnamed = staging.bad_lines.get("", 0)
    if unnamed:
        raise WorklistError(f"{unnamed} line(s) of the export are not FHIR resources and name "
                            "no patient: any chart may be incomplete, so no list is written")
    skipped = 0
    for pid, count in staging.bad_lines.items():
        skipped += count
        report.unusable.setdefault(pid, f"{count} line(s) of the export for this patient could "
                                   "not be read: the chart is incomplete")
    if skipped:
        report.notes.append(f"{skipped} unreadable line(s) skipped; the patients they name have "
                            "no estimate")


def _outside_group(staging: Staging, report: SourceReport) -> int:
    if report.members is None:
        return 0
    return sum(1 for pid in staging.patient_ids() if pid not in report.members)


def from_ndjson(directory: Path, **kwargs: Any) -> RunResult:
    """``pml-risk worklist --from-ndjson DIR``: the files a health system already has."""
    paths = ndjson.files(directory)

    def fill(staging: Staging, folder: Path, budget: ndjson.Budget) -> SourceReport:
        for path in paths:
            staging.add(ndjson.file_lines(path, budget), path.name)
        return SourceReport(source="ndjson", notes=[f"read from {len(paths)} NDJSON file(s)"])

    return run(fill, **kwargs)


# -- from the EHR: Backend Services + Bulk export ------------------------------------------------

EXPORT_TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
                "MedicationRequest", "Medication",
                "DiagnosticReport", "ImagingStudy", "Procedure")  # brain MRIs: the MRI due date
#: Types a vendor's Bulk export does not include although its FHIR API serves them (Oracle
#: Health Millennium's ``_type`` list is the USCDI v1 set: no MedicationAdministration,
#: MedicationStatement, Medication or ImagingStudy); they are read per patient from the start.
NOT_EXPORTED = {"oracle": frozenset({"MedicationAdministration", "MedicationStatement",
                                     "Medication", "ImagingStudy"})}
MAX_REFUSALS = 2  # kick-off refusals worked around: one for types, one for _typeFilter


def observation_filter(settings: Settings, how: str) -> dict[str, list[list[tuple[str, str]]]]:
    """``_typeFilter`` for Observations: the app's own narrowing, or the anti-JCV codes only
    (one query per code: a comma inside a query would read as the list separator)."""
    if how == "jcv-codes":
        from ..fhir import codes

        wanted = sorted(codes.JCV_ANTIBODY | codes.JCV_INDEX | set(settings.codes.jcv_antibody)
                        | set(settings.codes.jcv_index))
        return {"Observation": [[("code", code)] for code in wanted]}
    if settings.observation_category:
        return {"Observation": [[("category", settings.observation_category)]]}
    return {}


def _named(types: list[str], text: str) -> list[str]:
    import re

    return [t for t in types if t != "Patient" and re.search(rf"\b{t}\b", text)]


@dataclass(frozen=True)
class Plan:
    """What the run asks for, decided before the kick-off from the tenant's ``read_types`` or
    the EHR's CapabilityStatement (never learnt from error texts)."""

    exported: tuple[str, ...]
    per_patient: tuple[str, ...]
    not_offered: tuple[str, ...]
    scope: str


def offered_types(http: Any, tenant: Tenant, timeout: float) -> tuple[str, ...] | None:
    """The tenant's ``read_types``, else the types its CapabilityStatement lists; None when
    the statement cannot be read (then every type is asked for, as before)."""
    if tenant.read_types:
        return tenant.read_types
    from ..http.bounded import MB, deadline_in
    from ..http.bounded import get as bounded_get

    headers = {"Accept": "application/fhir+json"}
    if tenant.vendor == "epic":
        headers["Epic-Client-ID"] = tenant.backend_client_id or tenant.client_id
    try:
        resp = bounded_get(http, tenant.iss.rstrip("/") + "/metadata", max_bytes=4 * MB,
                           deadline=deadline_in(3 * timeout), timeout=timeout,
                           headers=headers, allow_redirects=False)
        data = resp.json() if resp.status_code == 200 else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    found: list[str] = []
    for rest in data.get("rest") or []:
        for item in (rest.get("resource") or []) if isinstance(rest, dict) else []:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                found.append(item["type"])
    return tuple(found) or None


def plan(tenant: Tenant, offered: tuple[str, ...] | None, per_patient: tuple[str, ...]) -> Plan:
    from .auth import system_scopes

    wanted = [t for t in EXPORT_TYPES if offered is None or t in offered]
    if "Patient" not in wanted:
        raise WorklistError(f"tenant {tenant.name}: the EHR does not offer Patient resources; "
                            "no worklist can be made")
    skip = NOT_EXPORTED.get(tenant.vendor, frozenset()) | set(per_patient)
    exported = tuple(t for t in wanted if t == "Patient" or t not in skip)
    by_search = tuple(t for t in wanted if t not in exported and t != "Medication")
    not_offered = tuple(t for t in EXPORT_TYPES if t not in wanted and t != "Medication")
    if tenant.scopes not in ("v1", "v2"):
        scope = tenant.scopes  # the site's own scope string, as the app's launch uses it
    else:
        scope = system_scopes(tenant, [*wanted, *(["Group"] if offered and "Group" in offered
                                                  else [])])
    return Plan(exported, by_search, not_offered, scope)


_NAMED_PATIENT = re.compile(rb"Patient/([A-Za-z0-9\-.]{1,64})")


def export_errors(lines: list[bytes], staged: set[str]) -> tuple[dict[str, str], int, list[str]]:
    """The manifest's ``error`` files (OperationOutcomes): patient id → the error naming it,
    how many errors name no staged patient (a patient missing from the export is lost, so it
    counts as naming none), and the texts of warnings (kept as notes)."""
    named: dict[str, str] = {}
    unnamed = 0
    warnings: list[str] = []
    for line in lines:
        try:
            outcome = json.loads(line)
        except (ValueError, RecursionError):
            unnamed += 1
            continue
        issues = outcome.get("issue") if isinstance(outcome, dict) else None
        issues = [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
        severe = [i for i in issues if i.get("severity") in ("error", "fatal")] or (
            [] if issues else [{}])
        if not severe:
            warnings.extend(str(i.get("diagnostics") or "")[:160] for i in issues)
            continue
        text = " ".join(str(i.get("diagnostics") or (i.get("details") or {}).get("text") or "")
                        for i in severe if isinstance(i.get("details") or {}, dict))[:160]
        found = _NAMED_PATIENT.search(line)
        pid = found.group(1).decode() if found else ""
        if pid in staged:
            named.setdefault(pid, f"the EHR reported an export error for this chart"
                             f"{': ' + text if text else ''}")
        else:
            unnamed += 1
    return named, unnamed, [w for w in warnings if w]


def from_ehr(tenant: Tenant, group: str, *, options: Any, **kwargs: Any) -> RunResult:
    """``pml-risk worklist --tenant T --group G``: Backend Services token, Group export."""
    from ..http.session import make_http
    from ..smart import discovery
    from ..smart import keys as keyfile
    from .auth import BackendAuth
    from .export import BulkClient, KickOffRefused
    from .fallback import search_patients

    settings: Settings = kwargs["settings"]
    try:
        signing = keyfile.load(settings.keys_file)
    except keyfile.KeyFileError as exc:
        raise WorklistError(f"keys_file: {exc}") from exc
    http = make_http(pool=max(8, options.concurrency * 2), proxy=settings.http_proxy,
                     no_proxy=settings.no_proxy, ca_bundle=settings.ca_bundle)
    try:
        smart = discovery.fetch(http, tenant.iss, settings.fhir_timeout, backend=True)
    except discovery.DiscoveryError as exc:
        raise WorklistError(f"tenant {tenant.name}: {exc}") from exc
    chosen = plan(tenant, offered_types(http, tenant, settings.fhir_timeout), options.per_patient)
    auth = BackendAuth(http, tenant, signing, smart.token_endpoint,
                       scope=chosen.scope, timeout=settings.fhir_timeout)
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

    def fill(staging: Staging, folder: Path, budget: ndjson.Budget) -> SourceReport:
        deadline = client.clock() + options.wait
        per_patient = list(chosen.per_patient)
        types = list(chosen.exported)
        filters = observation_filter(settings, options.observations)
        report = SourceReport(source="bulk-export", not_offered=chosen.not_offered)
        if per_patient:
            report.notes.append(f"{', '.join(per_patient)} read by per-patient search (not in "
                                "this EHR's export)")
        if chosen.not_offered:
            report.notes.append(f"the EHR does not offer {', '.join(chosen.not_offered)}: "
                                "unknown for every patient")
        status_url = None
        refusals = 0
        while status_url is None:
            try:
                status_url = client.kick_off(group, types, filters, since, deadline=deadline)
            except KickOffRefused as exc:
                named = _named(types, exc.diagnostics)
                if exc.status == 404:
                    raise WorklistError(f"the EHR has no Group/{group} for this client "
                                        "(HTTP 404)") from exc
                refusals += 1
                if refusals > MAX_REFUSALS or not (named or filters):
                    raise WorklistError(f"the EHR refused the export (HTTP {exc.status}): "
                                        f"{exc.diagnostics[:200]}") from exc
                if named:
                    types = [t for t in types if t not in named]
                    per_patient += [t for t in named if t != "Medication"]
                    report.notes.append(f"the EHR cannot export {', '.join(named)}: read by "
                                        "per-patient search instead" if named != ["Medication"]
                                        else "the EHR cannot export Medication resources")
                else:
                    filters = {}
                    report.notes.append("the EHR refused _typeFilter: exported all "
                                        "Observations")
        target = staging
        if since:  # what changed goes to a scratch staging; full charts are read afterwards
            (folder / "changes").mkdir(mode=0o700)
            target = Staging(folder / "changes")
        error_lines: list[bytes] = []
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
                        target.add(ndjson.lines(client.body(resp, deadline, name), name,
                                                budget=budget), name)
                    except ndjson.NdjsonError as exc:  # the EHR's data, not the user's input
                        raise WorklistError(f"the export is not usable: {exc}") from exc
            for item in manifest.error:
                with client.open(item, requires_token=manifest.requires_token) as resp:
                    try:
                        error_lines.extend(ndjson.lines(client.body(resp, deadline, "errors"),
                                                        "error file", budget=budget))
                    except ndjson.NdjsonError as exc:
                        raise WorklistError(f"the export's error file is not usable: {exc}") \
                            from exc
            members = _group_members(client, group, chosen) if not since else None
        finally:
            deleted = client.delete(status_url)
        reported, unnamed, warnings = export_errors(
            error_lines, set(target.mentioned_patients() if since else staging.patient_ids()))
        if unnamed:
            raise WorklistError(f"the EHR reported {unnamed} export error(s) that name no "
                                "patient: any chart may be incomplete, so no list is written")
        for pid, why in reported.items():
            report.unusable[pid] = why
        if reported:
            report.notes.append(f"the EHR reported export errors for {len(reported)} patient(s): "
                                "no estimate for them")
        report.notes.extend(f"EHR export warning: {w}" for w in warnings[:20])
        if members is not None:
            report.members = members
        elif not since:
            report.notes.append("the group's membership could not be read: patients were "
                                "taken as the export delivered them")
        if since and base_run is not None:
            attribute_bad_lines(target, report)
            changed = target.mentioned_patients()
            target.close()
            failed = _read_changed(client, staging, report, changed, filters,
                                   options.concurrency)
            prev_at = str(base_run["worklist"].get("at", "?"))
            previous_rows = {r.get("patient"): r for r in base_run.get("rows") or []
                             if isinstance(r, dict)}
            carried = [r for pid, r in previous_rows.items() if pid not in set(changed)]
            try:
                report.carried = [carried_row(r, at=kwargs["at"], since_run=prev_at)
                                  for r in carried]
            except (KeyError, TypeError, ValueError) as exc:
                raise WorklistError("--since: the previous worklist.json cannot be carried "
                                    "over; run once without --since") from exc
            staged = set(staging.patient_ids())
            for pid in changed:
                if pid in staged:
                    continue
                # Its Patient could not be re-read: the patient stays listed, without a figure.
                old = previous_rows.get(pid) or {}
                report.carried.append(unread_row(
                    patient_id=pid, patient={"name": [{"text": old.get("name") or ""}],
                                             "identifier": [{"value": old.get("mrn") or ""}]}
                    if old else None, at=kwargs["at"],
                    reason=report.data_notes.get(pid) or "the changed chart could not be re-read",
                    previous_infusions=None))
            read = len(changed) - len(failed)
            report.notes.append(f"incremental since {since}: {read} changed chart(s) read in full "
                                f"by per-patient search, {len(failed)} could not be read (no "
                                f"estimate for them), {len(carried)} row(s) carried over from "
                                f"the run of {prev_at}")
            if failed:
                report.incomplete.append(f"{len(failed)} changed chart(s) could not be re-read: "
                                         "listed with no estimate; run a full export")
            per_patient = []
        if per_patient:
            ids = [pid for pid in staging.patient_ids()
                   if report.members is None or pid in report.members]
            failed_patients: set[str] = set()
            for result in search_patients(client, per_patient, ids, options.concurrency):
                if result.error is not None:
                    failed_patients.add(result.patient_id)
                    report.unread.setdefault(result.patient_id, set()).add(result.kind)
                    report.note(result.patient_id, result.error)
                    continue
                for resource in result.resources:
                    staging.add_resource(resource)
                report.note(result.patient_id, f"{result.kind} by per-patient search")
            report.notes.append(f"{', '.join(per_patient)} read by per-patient search for "
                                f"{len(ids)} patients" + (
                                    f" ({len(failed_patients)} patient(s) failed: no estimate "
                                    "for them)" if failed_patients else ""))
        report.extra["export"] = {
            "types": types,
            "per_patient": per_patient,
            "not_offered": list(chosen.not_offered),
            "typeFilter": bool(filters),
            "since": since,
            "polls": client.polls,
            "requests": client.requests,
            "token_requests": auth.fetches,
            "scope": auth.granted,
            "deleted": deleted in (200, 202, 204),
        }
        return report

    return run(fill, tenant=tenant, group=group, **kwargs)


def _group_members(client: Any, group: str, chosen: Plan) -> frozenset[str] | None:
    """The Group's member patients, when the EHR lets the run read it (a patient outside the
    cohort is then never listed); None when it cannot be read."""
    if "Group" not in chosen.scope:
        return None
    from .staging import named_patient

    try:
        resp = client.send("GET", f"{client.base}/Group/{quote(group, safe='')}")
        data = resp.json() if resp.status_code == 200 else None
    except (WorklistError, ValueError, RecursionError):
        return None
    members = data.get("member") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members:
        return None
    found = set()
    for member in members:
        entity = member.get("entity") if isinstance(member, dict) else None
        ref = entity.get("reference") if isinstance(entity, dict) else None
        if isinstance(ref, str):
            pid = named_patient(json.dumps({"reference": ref}).encode())
            if pid:
                found.add(pid)
    return frozenset(found) or None


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
                  filters: Mapping[str, list[list[tuple[str, str]]]],
                  concurrency: int) -> set[str]:
    """Read every changed patient's whole chart by per-patient search (an incremental export
    holds only the changed resources, and a figure needs the whole chart); the patients some
    part of whose chart could not be read."""
    from .fallback import search_patients

    extra = {kind: options[0] for kind, options in filters.items() if len(options) == 1}
    kinds = [k for k in CHART_SEARCHES if k not in report.not_offered]
    failed: set[str] = set()
    for result in search_patients(client, kinds, changed, concurrency, extra):
        if result.error is not None:
            failed.add(result.patient_id)
            report.unread.setdefault(result.patient_id, set()).add(result.kind)
            report.unusable.setdefault(result.patient_id, f"changed since the last run, and "
                                       f"could not be re-read: {result.error}")
            report.note(result.patient_id, result.error)
            continue
        for resource in result.resources:
            staging.add_resource(resource)
    for pid in changed:
        if pid not in failed:
            report.note(pid, "changed since the last run: chart read in full by per-patient "
                        "search")
    return failed
