"""FHIR Bulk Data Group export (``Group/<id>/$export``) over the fixture patients.

Enough of Bulk Data 2.0/3.0 to run the worklist end to end, strict where clients go wrong:
``Prefer: respond-async`` required, unsupported parameters and types refused unless
``Prefer: handling=lenient``, ``_typeFilter`` queries validated, job files readable only with the
kicking-off client's token, ``DELETE`` ends a job. Knobs (``/_control/bulk``) reproduce what
vendors do: a slow export answered with ``Retry-After``, transient errors while polling, no
MedicationAdministration in the export (Oracle), ``_typeFilter`` unsupported, and downloads
from storage that must never receive the bearer token (pre-signed URLs, or a redirect from the
FHIR host to another host).

The default group ``natalizumab-cohort`` holds every fixture patient. A job is a snapshot taken
at kick-off, kept in memory: fixture data is small.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir.resources.R4B import get_fhir_model_class
from flask import Blueprint, Response, jsonify, request

from . import scopes
from .fhir_api import FHIR_JSON, FhirError, _fhir_error, _token, fhir_response, outcome
from .grants_store import TokenRecord
from .state import SandboxState, root_url, sandbox_state
from .store import COMPARTMENT_TYPES, Entry, SearchError

EXTENSION = "bulk"
DEFAULT_GROUP = "natalizumab-cohort"
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
SUPPORTED_PARAMS = frozenset({"_type", "_since", "_typeFilter", "_outputFormat"})
DOWNLOAD_MODES = ("token", "presigned", "redirect")
#: Shared types exported when a group member's resource references them.
REFERENCED_TYPES = ("Medication",)

blueprint = Blueprint("sandbox_bulk", __name__)
blueprint.register_error_handler(FhirError, _fhir_error)


@dataclass(frozen=True)
class BulkKnobs:
    """Vendor behaviours, all off by default (``POST /_control/bulk`` changes them)."""

    slow_polls: int = 0  # status polls answered 202 + Retry-After before the manifest
    retry_after: int = 1  # seconds, in those answers' Retry-After
    transient_errors: int = 0  # status polls answered 500 + OperationOutcome "transient" first
    no_medication_administration: bool = False  # the server cannot export this type
    type_filter: bool = True  # False: _typeFilter is not supported
    download: str = "token"  # token | presigned (no token allowed) | redirect (to another host)
    lines_per_file: int = 1000
    backend_token_lifetime: int = 300  # seconds (SMART: SHOULD NOT exceed 300)


@dataclass
class ExportFile:
    type: str
    name: str
    body: bytes
    count: int


@dataclass
class Job:
    id: str
    client_id: str
    request_url: str
    transaction_time: str
    files: list[ExportFile]
    polls_left: int
    signature: str
    notes: list[str] = field(default_factory=list)


@dataclass
class BulkState:
    knobs: BulkKnobs = field(default_factory=BulkKnobs)
    jobs: dict[str, Job] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # {} = the default group
    #: What happened, for the tests' assertions: kick-offs, polls, downloads, deletes.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Requests to storage URLs that carried an Authorization header (must stay 0).
    tokens_at_storage: int = 0
    loaded_at: float = field(default_factory=time.time)
    transient_left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, **details: Any) -> None:
        with self.lock:
            self.events.append({"event": kind, **details})


def bulk_state(state: SandboxState) -> BulkState:
    found = state.extensions.get(EXTENSION)
    if found is None:
        found = state.extensions.setdefault(EXTENSION, BulkState())
    assert isinstance(found, BulkState)
    return found


def _bulk() -> BulkState:
    return bulk_state(sandbox_state())


# -- kick-off -------------------------------------------------------------------------------------


def _preferences() -> set[str]:
    return {p.strip().lower() for p in request.headers.get("Prefer", "").split(",") if p.strip()}


def _parameters() -> list[tuple[str, str]]:
    """Query parameters (GET) or a ``Parameters`` resource (POST), as (name, value) pairs."""
    if request.method == "GET":
        return list(request.args.items(multi=True))
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "POST $export needs a Parameters resource")
    pairs = []
    for param in body.get("parameter") or []:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise FhirError(400, "invalid", "Parameters.parameter needs a name")
        value = next((v for k, v in param.items() if k.startswith("value")), None)
        if not isinstance(value, str):
            raise FhirError(400, "invalid", f"parameter {param['name']}: expected a string value")
        pairs.append((param["name"], value))
    return pairs


def _parse_instant(value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FhirError(400, "invalid", "_since must be a FHIR instant") from exc
    if parsed.tzinfo is None:
        raise FhirError(400, "invalid", "_since must include a time zone")
    return parsed.timestamp()


def _known_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (ValueError, KeyError):
        return False
    return True


def _exportable(state: SandboxState, knobs: BulkKnobs) -> set[str]:
    types = {"Patient", *REFERENCED_TYPES} | (set(state.store.types()) & COMPARTMENT_TYPES)
    if knobs.no_medication_administration:
        types.discard("MedicationAdministration")
    return types


def _type_filters(values: list[str], types: list[str], lenient: bool, knobs: BulkKnobs,
                  notes: list[str]) -> dict[str, list[list[tuple[str, str]]]]:
    """``Type?query`` strings (comma-separated) → per-type queries."""
    if not values:
        return {}
    if not knobs.type_filter:
        if lenient:
            notes.append("_typeFilter is not supported and was ignored")
            return {}
        raise FhirError(400, "not-supported", "_typeFilter is not supported by this server")
    filters: dict[str, list[list[tuple[str, str]]]] = {}
    for value in values:
        # Decoded once, with the rest of the URL, as servers do: a filter encoded twice by the
        # client reaches here as "Observation%3F..." and is refused, never silently ignored.
        # Items split where the next ``Type?`` starts, so "code=a,b" (FHIR's "or") stays whole.
        for item in re.split(r",(?=[A-Z][A-Za-z]+\?)", value):
            query = item.strip()
            kind, _, text = query.partition("?")
            if kind not in types or not text:
                raise FhirError(400, "invalid", f"_typeFilter {query!r}: expected Type?query "
                                "for a type being exported")
            params = parse_qsl(text, keep_blank_values=True)
            if any(name.split(":")[0] in ("_include", "_revinclude", "_sort")
                   for name, _ in params):
                raise FhirError(400, "invalid", "_typeFilter may not use _include or _sort")
            filters.setdefault(kind, []).append(params)
    return filters


def _modified_after(entry: Entry, since: float | None, loaded_at: float) -> bool:
    if since is None:
        return True
    meta = entry.resource.get("meta")
    stamp = meta.get("lastUpdated") if isinstance(meta, dict) else None
    when = loaded_at
    if isinstance(stamp, str):
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = loaded_at
    return when > since


def _collect(state: SandboxState, members: list[str], types: list[str],
             filters: Mapping[str, list[list[tuple[str, str]]]],
             since: float | None) -> dict[str, list[Entry]]:
    store = state.store
    loaded_at = bulk_state(state).loaded_at
    found: dict[str, dict[str, Entry]] = {t: {} for t in types}
    for pid in members:
        for kind in types:
            if kind in REFERENCED_TYPES:
                continue
            if kind == "Patient":
                hits = [e for e in [store.get("Patient", pid)] if e is not None]
            else:
                queries = filters.get(kind) or [[]]
                try:
                    hits = [e for q in queries for e in store.search(kind, [*q, ("patient", pid)])]
                except SearchError as exc:
                    raise FhirError(400, "invalid", f"_typeFilter: {exc}") from exc
            for entry in hits:
                if _modified_after(entry, since, loaded_at):
                    found[kind][entry.id] = entry
    for kind in REFERENCED_TYPES:
        if kind not in found:
            continue
        for bucket in list(found.values()):
            for entry in list(bucket.values()):
                ref = entry.resource.get("medicationReference")
                target = ref.get("reference") if isinstance(ref, dict) else None
                hit = store.resolve(target) if isinstance(target, str) else None
                if hit is not None and hit.type == kind:
                    found[kind][hit.id] = hit
    return {kind: list(bucket.values()) for kind, bucket in found.items()}


def _files(collected: Mapping[str, list[Entry]], per_file: int) -> list[ExportFile]:
    files = []
    for kind, entries in collected.items():
        for n, start in enumerate(range(0, len(entries), per_file), start=1):
            chunk = entries[start:start + per_file]
            body = b"".join(json.dumps(e.resource, separators=(",", ":")).encode() + b"\n"
                            for e in chunk)
            files.append(ExportFile(kind, f"{kind}-{n}.ndjson", body, len(chunk)))
    return files


def _require_system_read(token: TokenRecord, types: list[str]) -> None:
    for kind in types:
        if scopes.access_level(token.resource_scopes, kind, "r") != "all":
            raise FhirError(403, "forbidden", f"Bulk export of {kind} needs a system/ or user/ "
                            "read scope")


@blueprint.route("/fhir/Group/<group_id>/$export", methods=["GET", "POST"])
def kick_off(group_id: str) -> Response:
    token = _token()
    state = sandbox_state()
    bulk = bulk_state(state)
    knobs = bulk.knobs
    prefs = _preferences()
    lenient = "handling=lenient" in prefs
    if "respond-async" not in prefs:
        raise FhirError(400, "invalid", "Bulk export needs the header Prefer: respond-async")
    accept = request.headers.get("Accept", FHIR_JSON)
    if accept and not any(a in accept for a in (FHIR_JSON, "application/json", "*/*")):
        raise FhirError(400, "invalid", "Accept must be application/fhir+json")
    members = list(bulk.groups.get(group_id, ()))
    if not members and group_id == DEFAULT_GROUP and not bulk.groups:
        members = [p.id for p in state.store.patients] or state.store.patient_ids()
    if not members:
        raise FhirError(404, "not-found", f"Group/{group_id} not found")
    notes: list[str] = []
    params = _parameters()
    for name, _ in params:
        if name not in SUPPORTED_PARAMS:
            if not lenient:
                raise FhirError(400, "not-supported", f"Parameter {name} is not supported")
            notes.append(f"parameter {name} ignored")
    output_format = next((v for k, v in params if k == "_outputFormat"), NDJSON)
    if output_format not in OUTPUT_FORMATS:
        raise FhirError(400, "not-supported", f"_outputFormat {output_format} is not supported")
    exportable = _exportable(state, knobs)
    requested = [t.strip() for k, v in params if k == "_type" for t in v.split(",") if t.strip()]
    types: list[str] = []
    for kind in requested or sorted(exportable):
        if kind not in exportable:
            if not lenient or not _known_type(kind):
                raise FhirError(400, "not-supported",
                                f"{kind} is not supported by $export on this server")
            notes.append(f"{kind} is not exported by this server")
            continue
        if kind not in types:
            types.append(kind)
    _require_system_read(token, types)
    filters = _type_filters([v for k, v in params if k == "_typeFilter"], types, lenient, knobs,
                            notes)
    since_values = [v for k, v in params if k == "_since"]
    since = _parse_instant(since_values[0]) if since_values else None
    started = datetime.now(UTC)
    collected = _collect(state, members, types, filters, since)
    job = Job(
        id=secrets.token_urlsafe(12),
        client_id=token.client_id,
        request_url=request.url,
        transaction_time=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        files=_files(collected, max(1, knobs.lines_per_file)),
        polls_left=knobs.slow_polls,
        signature=secrets.token_urlsafe(24),
        notes=notes,
    )
    with bulk.lock:
        bulk.jobs[job.id] = job
        bulk.transient_left = knobs.transient_errors
    bulk.record("kickoff", job=job.id, group=group_id, types=types,
                type_filter={k: [dict(q) for q in v] for k, v in filters.items()},
                since=since_values[0] if since_values else None, lenient=lenient)
    body = outcome("informational", "Export started", "information")
    return fhir_response(body, 202, {"Content-Location": f"{root_url()}bulk/status/{job.id}"})


# -- status, manifest, delete ---------------------------------------------------------------------


def _job_for(job_id: str, token: TokenRecord) -> Job:
    bulk = _bulk()
    with bulk.lock:
        job = bulk.jobs.get(job_id)
    if job is None:
        raise FhirError(404, "not-found", "No such export job (finished and deleted, or unknown)")
    if job.client_id != token.client_id:
        raise FhirError(403, "forbidden", "This export job belongs to another client")
    return job


def _other_host() -> str:
    """127.0.0.1:port ↔ localhost:port: another host name for the same loopback server."""
    host, _, port = request.host.partition(":")
    other = "localhost" if host != "localhost" else "127.0.0.1"
    return f"{other}:{port}" if port else other


def _manifest(job: Job, knobs: BulkKnobs) -> dict[str, Any]:
    base = root_url()
    output = []
    for item in job.files:
        if knobs.download == "presigned":
            url = f"{base}bulk/storage/{job.id}/{item.name}?sig={job.signature}"
        else:
            url = f"{base}bulk/files/{job.id}/{item.name}"
        output.append({"type": item.type, "url": url, "count": item.count})
    return {
        "transactionTime": job.transaction_time,
        "request": job.request_url,
        "requiresAccessToken": knobs.download != "presigned",
        "output": output,
        "error": [],
    }


@blueprint.route("/bulk/status/<job_id>", methods=["GET"])
def status(job_id: str) -> Response:
    token = _token()
    bulk = _bulk()
    job = _job_for(job_id, token)
    knobs = bulk.knobs
    with bulk.lock:
        transient = bulk.transient_left > 0
        if transient:
            bulk.transient_left -= 1
        slow = not transient and job.polls_left > 0
        if slow:
            job.polls_left -= 1
    if transient:
        bulk.record("poll", job=job.id, status=500)
        return fhir_response(outcome("transient", "Export status temporarily unavailable"),
                             500, {"Retry-After": str(knobs.retry_after)})
    if slow:
        bulk.record("poll", job=job.id, status=202)
        return Response(status=202, headers={"Retry-After": str(knobs.retry_after),
                                             "X-Progress": "in progress"})
    bulk.record("poll", job=job.id, status=200)
    response = jsonify(_manifest(job, knobs))
    response.headers["Expires"] = "Fri, 01 Jan 2100 00:00:00 GMT"
    return response


@blueprint.route("/bulk/status/<job_id>", methods=["DELETE"])
def delete(job_id: str) -> Response:
    token = _token()
    bulk = _bulk()
    job = _job_for(job_id, token)
    with bulk.lock:
        bulk.jobs.pop(job.id, None)
    bulk.record("delete", job=job.id)
    return Response(status=202)


# -- files ----------------------------------------------------------------------------------------


def _file(job: Job, name: str) -> ExportFile:
    found = next((f for f in job.files if f.name == name), None)
    if found is None:
        raise FhirError(404, "not-found", "No such file in this export")
    return found


def _serve(item: ExportFile) -> Response:
    body = item.body
    headers = {"Cache-Control": "no-store"}
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, status=200, headers=headers, mimetype=NDJSON)


@blueprint.route("/bulk/files/<job_id>/<name>", methods=["GET"])
def download(job_id: str, name: str) -> Response:
    """A file behind the FHIR server's own authorization (``requiresAccessToken``: true)."""
    token = _token()
    bulk = _bulk()
    job = _job_for(job_id, token)
    item = _file(job, name)
    if bulk.knobs.download == "redirect":
        parts = urlsplit(request.url)
        target = (f"{parts.scheme}://{_other_host()}{request.script_root}/bulk/storage/"
                  f"{job.id}/{name}?sig={job.signature}")
        bulk.record("download", job=job.id, file=name, status=307)
        return Response(status=307, headers={"Location": target})
    bulk.record("download", job=job.id, file=name, status=200, host=request.host)
    return _serve(item)


@blueprint.route("/bulk/storage/<job_id>/<name>", methods=["GET"])
def storage(job_id: str, name: str) -> Response:
    """Object storage with signed URLs: it must never see the EHR's bearer token."""
    bulk = _bulk()
    if request.headers.get("Authorization"):
        with bulk.lock:
            bulk.tokens_at_storage += 1
        bulk.record("storage", job=job_id, file=name, status=400, authorization=True)
        return Response("Only one auth mechanism allowed: the URL is signed", status=400,
                        mimetype="text/plain")
    with bulk.lock:
        job = bulk.jobs.get(job_id)
    if job is None or not secrets.compare_digest(request.args.get("sig", ""), job.signature):
        bulk.record("storage", job=job_id, file=name, status=403, authorization=False)
        return Response("Signature does not match", status=403, mimetype="text/plain")
    item = _file(job, name)
    bulk.record("storage", job=job_id, file=name, status=200, authorization=False,
                host=request.host)
    return _serve(item)


# -- control --------------------------------------------------------------------------------------


def _validated(current: BulkKnobs, changes: Mapping[str, Any]) -> BulkKnobs:
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("reset", "groups"):
            continue
        if key in ("slow_polls", "retry_after", "transient_errors", "lines_per_file",
                   "backend_token_lifetime"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key}: expected a non-negative integer")
        elif key in ("no_medication_administration", "type_filter"):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false")
        elif key == "download":
            if value not in DOWNLOAD_MODES:
                raise ValueError(f"download: expected one of {', '.join(DOWNLOAD_MODES)}")
        else:
            raise ValueError(f"unknown bulk control key '{key}'")
        updates[key] = value
    return dataclasses.replace(current, **updates)


@blueprint.route("/_control/bulk", methods=["GET", "POST"])
def control() -> tuple[Response, int] | Response:
    """Read or change the Bulk knobs; ``groups`` sets ``{id: [patient ids]}``, ``reset`` clears
    knobs, jobs and events. Exists only when the sandbox allows control."""
    state = sandbox_state()
    if not state.config.allow_control:
        return jsonify({"error": "control endpoint disabled"}), 404
    bulk = bulk_state(state)
    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "expected a JSON object"}), 400
        try:
            knobs = _validated(BulkKnobs() if body.get("reset") else bulk.knobs, body)
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        groups = body.get("groups")
        if groups is not None and not (isinstance(groups, dict) and all(
                isinstance(v, list) and all(isinstance(p, str) for p in v)
                for v in groups.values())):
            return jsonify({"error": "groups: expected {id: [patient ids]}"}), 400
        with bulk.lock:
            if body.get("reset"):
                bulk.jobs.clear()
                bulk.events.clear()
                bulk.groups.clear()
                bulk.tokens_at_storage = 0
            bulk.knobs = knobs
            if groups is not None:
                bulk.groups = {str(k): tuple(v) for k, v in groups.items()}
    with bulk.lock:
        return jsonify({
            **dataclasses.asdict(bulk.knobs),
            "groups": {k: list(v) for k, v in bulk.groups.items()},
            "jobs": sorted(bulk.jobs),
            "events": [dict(e) for e in bulk.events],
            "tokens_at_storage": bulk.tokens_at_storage,
        })


def init_bulk(state: SandboxState) -> None:
    bulk_state(state)
