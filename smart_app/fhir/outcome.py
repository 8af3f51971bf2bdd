"""OperationOutcome: how the app says "no" in FHIR (bad input, missing data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def operation_outcome(
    code: str, diagnostics: Sequence[str], severity: str = "error"
) -> dict[str, Any]:
    """``code`` is a FHIR issue-type code: invalid, structure, incomplete, exception, …"""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": text} for text in diagnostics
        ],
    }
