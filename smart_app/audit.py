"""The audit trail: one structured JSON line per event, on the ``pml_risk.audit`` logger.

Health-system IT must be able to answer "who looked at which patient's risk, from which EHR, and
what was written back" without the log itself becoming PHI. So events carry identifiers only
(tenant, validated fhirUser, patient id, launch id, resource ids, types and counts) and an
allowlist drops any other field: clinical values and names can never slip in by accident.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

LOGGER = "pml_risk.audit"

ALLOWED_FIELDS = frozenset({
    "tenant",  # the tenant's configured name
    "iss",  # the FHIR base URL
    "user",  # validated fhirUser reference
    "patient",  # patient id from the launch context
    "launch",  # our launch id
    "client_auth",  # public | client_secret_basic | private_key_jwt
    "scopes",  # granted scopes
    "resource_types",  # e.g. {"Observation": 104, "MedicationAdministration": 130}
    "round_trips",
    "table",  # risk table id
    "status",  # ok | incomplete | saved | failed …
    "resource_id",  # e.g. RiskAssessment/123
    "created",  # conditional create: True when a new resource was made
    "http_status",
    "error",  # an error code, never a message with data in it
})


def event(name: str, **fields: Any) -> None:
    """Write one audit line; fields outside the allowlist are dropped and named as dropped."""
    dropped = sorted(k for k in fields if k not in ALLOWED_FIELDS)
    record: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": name,
        **{k: v for k, v in fields.items() if k in ALLOWED_FIELDS and v is not None},
    }
    if dropped:
        record["dropped_fields"] = dropped
    logging.getLogger(LOGGER).info(json.dumps(record, sort_keys=True, default=str))
