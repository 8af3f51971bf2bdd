"""Save to chart on an EHR without conditional create, over real HTTP against the sandbox.

The sandbox's ``no-conditional-create`` profile ignores ``If-None-Exist`` and does not advertise
``conditionalCreate``, as such servers do: a second conditional create there would make a second
RiskAssessment. The app must search by its identifier first and create only when none is found,
so saving twice, or from a new launch of the same patient, still gives one resource.
"""

from __future__ import annotations

from typing import Any

import requests

from smart_app.fhir.riskassessment import IDENTIFIER_SYSTEM

from .conftest import Stack, StackFactory
from .test_writeback import PATIENT, Tab


def _writes(stack: Stack, identifier: str) -> list[dict[str, Any]]:
    """The app's searches for this RiskAssessment and its creates, in order, as the sandbox
    logged them (the history search by the identifier system alone is not among them)."""
    token = f"{IDENTIFIER_SYSTEM}|{identifier}"
    return [r for r in stack.requests_log() if r["path"] == "/sandbox/fhir/RiskAssessment"
            and (r["method"] == "POST" or r["args"].get("identifier") == [token])]


def test_without_conditional_create_the_app_searches_then_creates_once(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(sandbox={"ehr_profile": "no-conditional-create"})
    tab = Tab(stack)
    assert tab.assessment().json()["save"]["enabled"] is True
    stack.clear_log()

    first = tab.save({"identifier": tab.identifier})
    assert first.status_code == 200, first.text
    created = first.json()
    assert created["saved"] is True and created["created"] is True and created["id"]
    token = f"{IDENTIFIER_SYSTEM}|{tab.identifier}"
    writes = _writes(stack, tab.identifier)
    assert [(w["method"], w["status"]) for w in writes] == [("GET", 200), ("POST", 201)]
    assert writes[0]["args"]["identifier"] == [token]
    assert writes[0]["args"]["patient"] == [PATIENT]

    stack.clear_log()
    again = tab.save({"identifier": tab.identifier}).json()
    assert again["saved"] is True and again["created"] is False
    assert again["id"] == created["id"]
    relaunched = Tab(stack).save().json()  # a new launch of the same patient, the same day
    assert relaunched["created"] is False and relaunched["id"] == created["id"]
    # found each time: nothing posted
    assert [w["method"] for w in _writes(stack, tab.identifier)] == ["GET", "GET"]

    saved = tab.saved()
    assert [r["id"] for r in saved] == [created["id"]]
    assert saved[0]["identifier"] == [{"system": IDENTIFIER_SYSTEM, "value": tab.identifier}]


def test_the_profile_really_ignores_if_none_exist(make_stack: StackFactory) -> None:
    """Without the search first, this EHR would hold two copies: the test above proves the
    app's search, not the server's deduplication."""
    stack = make_stack(sandbox={"ehr_profile": "no-conditional-create"})
    tab = Tab(stack)
    assert tab.save().json()["created"] is True
    [resource] = tab.saved()
    launch = stack.services.repo.get(tab.url.rsplit("/", 1)[1])
    assert launch is not None
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    resp = requests.post(
        f"{stack.iss}/RiskAssessment", json=body, timeout=10,
        headers={"Authorization": f"Bearer {launch.tokens.access_token}",
                 "If-None-Exist": f"identifier={IDENTIFIER_SYSTEM}|{tab.identifier}"})
    assert resp.status_code == 201
    assert len(tab.saved()) == 2
