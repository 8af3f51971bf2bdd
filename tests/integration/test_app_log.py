"""The application log as ``pml-risk serve`` writes it: one line per record, whatever a request
carried, and no launch ids (they belong in the audit trail only)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from smart_app.ops.logs import RedactingFormatter

from .conftest import Stack

pytestmark = pytest.mark.integration

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """The root logger through the serve formatter into a buffer, restored afterwards."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(RedactingFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_callback_error_cannot_forge_a_log_record(stack: Stack, app_log: io.StringIO) -> None:
    stack.control(deny_authorization=True)
    browser = stack.browser()
    resp = stack.to_callback(browser, f"{stack.base}/sandbox/launch?patient=ex01-negative-30")
    parts = urlsplit(resp.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = 'x\n2026-01-01 00:00:00,000 CRITICAL smart_app.ops.audit: {"event": "forged"}\r'
    query["error"] = forged
    done = browser.get(f"{stack.base}/callback?{urlencode(query)}", timeout=30)
    assert done.status_code == 403
    lines = app_log.getvalue().splitlines()
    assert any("authorization refused by the EHR" in line for line in lines)
    for line in lines:
        assert RECORD.match(line) or line.startswith("  "), line
    assert not any("CRITICAL" in line[:40] for line in lines)


def test_launch_ids_stay_out_of_the_app_log(stack: Stack, app_log: io.StringIO) -> None:
    browser = stack.browser()
    page = stack.launch(browser, "ex05-index-1-51-25-infusions")
    html = browser.get(page, timeout=30).text
    token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert token is not None
    saved = browser.post(page + "/assessment", json={}, headers={"X-CSRF-Token": token.group(1)},
                         timeout=30)
    assert saved.status_code == 200 and saved.json()["saved"] is True
    launch_id = page.rsplit("/", 1)[1]
    text = app_log.getvalue()
    assert "RiskAssessment write saved" in text
    assert launch_id not in text
