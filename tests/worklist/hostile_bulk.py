"""A Bulk Data server that misbehaves on purpose, served over loopback HTTP for the worklist tests.

The sandbox's ``smart_app.sandbox.bulk`` is a well-behaved server with a few vendor quirks; this
one reproduces what real servers and hostile ones do that the sandbox does not: ``error``
entries in the manifest, manifests without ``output`` or ``transactionTime``, conflicting copies
of one resource, status and file URLs on another origin or over http, gzip bombs, bodies that
stall, per-patient searches that fail, scopes it does not offer, a smart-configuration without
``authorization_endpoint``. Every fault is a key of ``HostileBulk.faults``; every request is
logged with whether it carried a bearer token.

The data is the repository's fixture patients (``fhir_fixtures``), exported as the sandbox's
store resolves them, so a correct client's rows equal ``pml-risk assess`` on each fixture.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from smart_app.sandbox.store import FhirStore

from .helpers import EXPORT_TYPES, FIXTURES

TOKEN = "hostile-system-token"  # noqa: S105 - a test token, checked by this server only


@dataclass
class HostileBulk:
    """The server's state: faults to apply, the files it exports, what it was asked."""

    base: str = ""  # e.g. http://127.0.0.1:PORT/fhir, set once listening
    faults: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)  # type -> NDJSON lines
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, **event: Any) -> None:
        with self.lock:
            self.log.append(event)

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.log if e["event"] == kind]

    def add(self, resource: dict[str, Any]) -> None:
        self.files.setdefault(str(resource["resourceType"]), []).append(json.dumps(resource))


def fixture_files() -> dict[str, list[str]]:
    store = FhirStore(FIXTURES)
    return {kind: [json.dumps(e.resource) for e in store.search(kind, [])]
            for kind in EXPORT_TYPES}


def _outcome(status: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return Response(json.dumps(body), status, content_type="application/fhir+json")


def create_app(state: HostileBulk) -> Flask:  # noqa: C901 - one route per protocol step
    app = Flask("hostile-bulk")
    faults = state.faults

    @app.before_request
    def _log() -> None:
        state.record(event="request", method=request.method, path=request.path,
                     query=request.query_string.decode(), host=request.host,
                     authorization=request.headers.get("Authorization", ""))

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration() -> Any:
        doc: dict[str, Any] = {
            "token_endpoint": f"{state.base}/token",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "capabilities": ["client-confidential-asymmetric", "permission-v2"],
            "scopes_supported": [f"system/{t}.rs" for t in faults.get("offered", EXPORT_TYPES)],
        }
        if not faults.get("backend_only"):
            doc["authorization_endpoint"] = f"{state.base}/authorize"
            doc["capabilities"] = [*doc["capabilities"], "launch-standalone"]
        return doc

    @app.get("/fhir/metadata")
    def metadata() -> Any:
        offered = faults.get("offered", EXPORT_TYPES)
        return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                "fhirVersion": "4.0.1", "format": ["json"],
                "rest": [{"mode": "server", "resource": [
                    {"type": t, "interaction": [{"code": "search-type"}]} for t in offered]}]}

    @app.post("/fhir/token")
    def token() -> Any:
        scope = request.form.get("scope", "")
        state.record(event="token", scope=scope)
        for wanted in scope.split():
            kind = wanted.split("/", 1)[-1].split(".", 1)[0]
            if kind not in faults.get("offered", EXPORT_TYPES):
                return {"error": "invalid_scope",
                        "error_description": f"Resources of type {kind} do not exist"}, 400
        return {"access_token": TOKEN, "token_type": "bearer", "expires_in": 300,
                "scope": scope}

    def authorised() -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    @app.get("/fhir/Group/<group>/$export")
    def kick_off(group: str) -> Any:
        state.record(event="kickoff", group=group, args=request.args.to_dict(flat=False),
                     raw=request.query_string.decode())
        if faults.get("kickoff_401") or not authorised():
            return _outcome(401, "login", "token expired")
        refuse = faults.get("refuse_types", ())
        types = request.args.get("_type", "").split(",")
        named = [t for t in types if t in refuse]
        if named:
            return _outcome(400, "not-supported", f"Resource type {named[0]} is not supported")
        status = faults.get("status_url", f"{state.base}/status/1")
        return Response(status=202, headers={"Content-Location": status})

    @app.route("/fhir/status/<job>", methods=["GET", "DELETE"])
    def status(job: str) -> Any:
        if request.method == "DELETE":
            state.record(event="delete", job=job)
            return Response(status=202)
        state.record(event="poll", job=job)
        if "manifest" in faults:
            return faults["manifest"]
        types = request.args.get("types")
        output = [{"type": kind, "url": f"{faults.get('file_base', state.base)}/files/{kind}",
                   "count": len(lines)} for kind, lines in state.files.items()
                  if not types or kind in types]
        manifest: dict[str, Any] = {
            "transactionTime": "2026-11-25T01:00:00Z",
            "request": f"{state.base}/Group/x/$export",
            "requiresAccessToken": True, "output": output,
            "error": [{"type": "OperationOutcome", "url": f"{state.base}/files/errors"}]
            if faults.get("errors") else [],
        }
        return manifest

    @app.get("/fhir/files/<kind>")
    def files(kind: str) -> Any:
        state.record(event="file", kind=kind)
        if kind == "errors":
            body = "".join(json.dumps(o) + "\n" for o in faults["errors"])
            return Response(body, content_type="application/fhir+ndjson")
        if kind == faults.get("bomb"):
            return Response(faults["bomb_body"], content_type="application/fhir+ndjson")
        if kind == faults.get("drip"):
            def drip() -> Iterator[bytes]:
                for line in state.files[kind]:
                    yield (line + "\n").encode()
                    time.sleep(float(faults.get("drip_seconds", 1.0)))
            return Response(drip(), content_type="application/fhir+ndjson")
        if kind == faults.get("stall"):
            def stall() -> Iterator[bytes]:
                yield (state.files[kind][0] + "\n").encode()
                time.sleep(float(faults.get("stall_seconds", 30)))
                yield b""
            return Response(stall(), content_type="application/fhir+ndjson")
        lines = list(state.files.get(kind, []))
        body = "".join(line + "\n" for line in lines).encode()
        if faults.get("gzip"):
            return Response(gzip.compress(body), content_type="application/fhir+ndjson")
        return Response(body, content_type="application/fhir+ndjson")

    @app.get("/fhir/Group/<group>")
    def group(group: str) -> Any:
        members = faults.get("members")
        if members is None:
            return _outcome(403, "forbidden", "Group read not allowed")
        return {"resourceType": "Group", "id": group, "type": "person", "actual": True,
                "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members]}

    @app.get("/fhir/<kind>")
    def search(kind: str) -> Any:
        state.record(event="search", kind=kind, args=request.args.to_dict())
        failing = faults.get("search_fails")
        if failing and (failing is True or kind in failing):
            return _outcome(404, "not-found", "search not available")
        pid = request.args.get("patient") or request.args.get("_id")
        entries = []
        for line in state.files.get(kind, []):
            resource = json.loads(line)
            owner = resource.get("id") if kind == "Patient" else \
                (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
            if owner in (pid, f"Patient/{pid}"):
                entries.append({"resource": resource})
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    return app
