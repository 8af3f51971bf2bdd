"""Save with a chunked body against ``pml-risk serve`` (gunicorn, as deployed): the body is read,
so the saved result is the one shown with its what-if values, and a stale identifier writes
nothing. (tests/integration/test_save_chunked.py checks the same under Werkzeug's server.)"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.integration.test_save_chunked import PATIENT, WHAT_IF, chunked_save

from .conftest import Deployment, DeploymentFactory
from .harness import browser, launch


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    return make_deployment(redis=False)


def _saved(d: Deployment) -> list[dict[str, Any]]:
    store = d.sandbox.extensions["sandbox"].store
    return [e.resource for e in store.search("RiskAssessment", [("patient", PATIENT)])]


def test_gunicorn_reads_a_chunked_save(deployment: Deployment) -> None:
    d = deployment
    d.running(d.port_a, "a")
    http = browser()
    url = launch(http, d.ehr, PATIENT)
    html = http.get(url, timeout=30).text
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert csrf
    shown = http.get(f"{url}/assessment?{urlencode(WHAT_IF)}", timeout=30).json()
    ident = shown["save"]["identifier"]

    class Tab:  # what chunked_save needs of a launched page
        def __init__(self) -> None:
            self.url, self.browser, self.csrf = url, http, csrf.group(1)

    tab: Any = Tab()
    status, stale = chunked_save(tab, {"identifier": ident[:-1] + "x", "overrides": WHAT_IF})
    assert status == 409 and stale["saved"] is False
    assert _saved(d) == []
    status, answer = chunked_save(tab, {"identifier": ident, "overrides": WHAT_IF})
    assert status == 200 and answer["saved"] is True and answer["identifier"] == ident, answer
    [resource] = _saved(d)
    assert resource["identifier"][0]["value"] == ident
