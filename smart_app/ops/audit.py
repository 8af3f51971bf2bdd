"""The audit trail: one structured JSON line per event, on the ``pml_risk.audit`` logger.

Health-system IT must be able to answer "who looked at which patient's risk, from which EHR, and
what was written back" without the log itself becoming PHI. So events carry identifiers only
(tenant, validated fhirUser, patient id, launch id, resource ids, types and counts) and an
allowlist drops any other field: clinical values and names can never slip in by accident.

Inside a request, fields bound with :func:`bind` (the launch's tenant, user, patient and launch
id, set once the launch is known) and the request id are added to every event, so a caller
only passes what is specific to its event. Where the lines go is decided once per process by
:func:`configure` (``[audit] path``; standard error by default).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
from datetime import UTC, datetime
from typing import Any

from flask import current_app, g, has_app_context, has_request_context

LOGGER = "pml_risk.audit"
METRICS = "pml_risk.metrics"  # app.extensions key of ops.metrics.Metrics

ALLOWED_FIELDS = frozenset({
    "tenant",  # the tenant's configured name
    "iss",  # the FHIR base URL
    "user",  # validated fhirUser reference
    "patient",  # patient id from the launch context
    "launch",  # our launch id
    "launch_type",  # ehr | standalone
    "client_auth",  # public | client_secret_basic | private_key_jwt
    "kid",  # the key that signed our client assertion
    "scopes",  # granted scopes
    "requested_scopes",  # what the authorize request asked for
    "resource_types",  # e.g. {"Observation": 104, "MedicationAdministration": 130}
    "round_trips",
    "patients",  # a count (the worklist run), never ids
    "table",  # risk table id
    "status",  # ok | incomplete | saved | failed …
    "resource_id",  # e.g. RiskAssessment/123
    "created",  # conditional create: True when a new resource was made
    "rotated",  # token refresh: the EHR sent a new refresh token (else the old one is kept)
    "http_status",
    "error",  # an error code, never a message with data in it
    "endpoint",  # the Flask endpoint name (never the URL: callback URLs carry codes)
    "request_id",  # one id per HTTP request, also sent back as X-Request-ID
    "instance",  # host:pid of the process that handled it (several instances, one trail)
    # CDS Hooks calls (smart_app/cds): identifiers and codes only, never the JWT or a token
    "service",  # the CDS service id
    "hook",  # patient-view | order-select | order-sign
    "hook_instance",  # the EHR's UUID for this hook firing
    "jti",  # the CDS client JWT's id (replay investigations)
    "prefetch",  # e.g. {"observations": "provided", "patient": "fetched"}
    "cards",  # number of cards returned
    "card",  # a card's uuid (also the SMART link's appContext)
    "outcome",  # feedback: accepted | overridden
    "override_reason",  # feedback: the override reason's code
})

_HOST = socket.gethostname()


def _context() -> dict[str, Any]:
    if not has_request_context():
        return {}
    bound: dict[str, Any] = g.get("audit_fields", {})
    request_id = g.get("request_id")
    return {**({"request_id": request_id} if request_id else {}), **bound}


def bind(**fields: Any) -> None:
    """Attach fields to every later event of this request (outside a request: no effect)."""
    if has_request_context():
        g.audit_fields = {**g.get("audit_fields", {}),
                          **{k: v for k, v in fields.items() if v is not None}}


def event(name: str, /, **fields: Any) -> None:
    """Write one audit line; fields outside the allowlist are dropped and named as dropped.

    ``name`` is positional-only, so even a field called ``name`` (a patient's?) is just dropped.
    """
    merged = {**_context(), **fields}
    dropped = sorted(k for k in merged if k not in ALLOWED_FIELDS)
    record: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": name,
        "instance": f"{_HOST}:{os.getpid()}",  # per call: gunicorn forks after import
        **{k: v for k, v in merged.items() if k in ALLOWED_FIELDS and v is not None},
    }
    if dropped:
        record["dropped_fields"] = dropped
    logging.getLogger(LOGGER).info(json.dumps(record, sort_keys=True, default=str))
    if has_app_context():  # the app's metrics count what the trail says (ops/metrics.py)
        metrics = current_app.extensions.get(METRICS)
        if metrics is not None:
            metrics.observe_event(name, record)


def configure(path: str = "") -> None:
    """Send audit lines, bare JSON, to ``path`` (appended) or to standard error.

    A ``WatchedFileHandler`` reopens the file after logrotate moves it; with ``O_APPEND`` every
    worker's line lands whole. The audit logger stops propagating, so the lines are not
    repeated, with a different format, in the application log.
    """
    logger = logging.getLogger(LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler: logging.Handler
    if path:
        # Patient and user ids are in it: owner-only, created before the handler opens it.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
