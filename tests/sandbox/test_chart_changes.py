"""Changing a chart as an EHR user would (``put_resources``) and finding the change again
(``_lastUpdated``), which the app's freshness check before a save relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sandbox_helpers import Smart


@pytest.fixture
def token(smart: Smart) -> str:
    return str(smart.login("app-public")["access_token"])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_changes_are_versioned_and_found_by_last_updated(smart: Smart, token: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    original = smart.get(token, "Observation/alice-obs-1").json()
    unchanged = smart.get(token, "Observation", patient="alice",
                          _lastUpdated=f"ge{_stamp(before)}").json()
    assert unchanged["total"] == 0  # loaded earlier: nothing changed since
    smart.control(put_resources=[{**original, "status": "amended"}])
    changed = smart.get(token, "Observation", patient="alice",
                        _lastUpdated=f"ge{_stamp(before)}").json()
    assert [e["resource"]["id"] for e in changed["entry"]] == ["alice-obs-1"]
    stored = changed["entry"][0]["resource"]
    assert stored["status"] == "amended" and stored["meta"]["versionId"] == "2"
    later = _stamp(datetime.now(UTC) + timedelta(minutes=1))
    assert smart.get(token, "Observation", patient="alice",
                     _lastUpdated=f"gt{later}").json()["total"] == 0
    assert smart.get(token, "Observation", patient="alice",
                     _lastUpdated="ge2026-99").status_code == 400


def test_put_resources_refuses_what_is_not_a_resource(smart: Smart) -> None:
    r = smart.http.post(f"{smart.base}/_control", json={"put_resources": [{"id": "x"}]})
    assert r.status_code == 400 and "put_resources" in r.json()["error"]
