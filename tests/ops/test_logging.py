"""The nets under "no PHI, no tokens in logs": the redactor and the audit allowlist."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from smart_app.ops import audit
from smart_app.ops.logs import redact

from .harness import ROOT


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj HTTP/1.1", "SplxlOBe"),
        ("GET /callback?code=abc&state=af0ifjsldkj", "af0ifjsldkj"),
        ("/launch?iss=https://e/fhir&launch=xyz123secret", "xyz123secret"),
        ('{"access_token": "at-123456", "token_type": "Bearer"}', "at-123456"),
        ("Authorization: Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
        ("assertion eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJjIn0.c2lnbmF0dXJl sent", "c2lnbmF0dXJl"),
        ("client_assertion=eyJhbGciOi.x.y&client_assertion_type=urn", "eyJhbGciOi"),
        ("GET /launches/LnMyKuSt_LM8bPiVSpfnLH_A/assessment", "LnMyKuSt_LM8bPiVSpfnLH_A"),
    ],
)
def test_redact_blanks_secrets(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_redact_keeps_ordinary_text() -> None:
    text = "chart read: {'Observation': 6} in 1 round trips, tenant Sandbox EHR"
    assert redact(text) == text


def test_audit_allowlist_drops_and_names_unknown_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=audit.LOGGER):
        audit.event("assessment.computed", patient="p1", table="t", name="Priya Raman",
                    jcv_index=1.51)
    record = json.loads(caplog.records[-1].getMessage())
    assert record["patient"] == "p1" and record["table"] == "t"
    assert record["dropped_fields"] == ["jcv_index", "name"]
    assert "Priya" not in caplog.text and "1.51" not in caplog.text


def test_serve_process_logs_are_redacted_including_tracebacks(tmp_path: object) -> None:
    """A logged exception quoting a URL with a code, in a configured process."""
    code = (
        "import logging; from smart_app.ops import logs; logs.configure()\n"
        "try:\n    raise ValueError('GET /callback?code=SECRETCODE&state=SECRETSTATE')\n"
        "except ValueError:\n    logging.getLogger('x').exception('failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True)
    assert "failed" in done.stderr and "ValueError" in done.stderr
    assert "SECRETCODE" not in done.stderr and "SECRETSTATE" not in done.stderr
