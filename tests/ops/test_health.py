"""``/healthz``, ``/readyz`` across a Redis outage, and a graceful SIGTERM."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests

from .conftest import Deployment, DeploymentFactory
from .harness import browser, free_port, launch, on_port


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    return make_deployment()


def _ready(base: str) -> requests.Response:
    return requests.get(f"{base}/readyz", timeout=10)


def test_readyz_follows_redis_down_and_back(deployment: Deployment) -> None:
    d = deployment
    app = d.running(d.port_a, "a")
    assert d.redis is not None
    ok = _ready(app.base)
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert "Set-Cookie" not in ok.headers

    d.redis.stop()
    started = time.monotonic()
    down = _ready(app.base)
    assert time.monotonic() - started < 5  # fails fast: no ten retries with backoff
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["session_store"] == {"ok": False, "error": "ConnectionError"}
    live = requests.get(f"{app.base}/healthz", timeout=10)
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    # A launch during the outage is an error page, not a hang or a crash.
    first = browser().get(f"{d.ehr}/sandbox/launch", params={"patient": "ex01-negative-30"},
                          allow_redirects=False, timeout=10)
    failed = browser().get(first.headers["Location"], allow_redirects=False, timeout=15)
    assert failed.status_code == 503 and "temporarily unavailable" in failed.text

    d.redis.start()  # same port, empty (no persistence)
    deadline = time.monotonic() + 10
    while _ready(app.base).status_code != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.2)
    page = launch(browser(), d.ehr, "ex01-negative-30")
    assert "/launches/" in page


def _timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    resp = call()
    return resp, time.monotonic() - started


def test_hung_redis_fails_fast(deployment: Deployment) -> None:
    """Redis stopped with SIGSTOP accepts connections and never answers: the app must still
    answer /readyz within 1.5 s and a page within 3 s, each with a clear 503."""
    d = deployment
    d.running(d.port_a, "a")  # the sandbox fetches the app's JWKS from instance A
    port = free_port()
    app = d.start(port, "hung")
    assert d.redis is not None
    http = browser()
    page = launch(http, d.ehr, "ex01-negative-30", app_port=port, callback_port=port)
    assert http.get(page, timeout=10).status_code == 200
    d.redis.pause()
    try:
        ready, took = _timed(lambda: _ready(app.base))
        assert ready.status_code == 503 and took < 1.5, took
        shown, took = _timed(lambda: http.get(page, timeout=10))
        assert shown.status_code == 503 and took < 3.0, took
        assert "temporarily unavailable" in shown.text
        first = browser().get(f"{d.ehr}/sandbox/launch", params={"patient": "ex01-negative-30"},
                              allow_redirects=False, timeout=10)
        start = on_port(first.headers["Location"], port)
        started, took = _timed(lambda: browser().get(start, allow_redirects=False, timeout=10))
        assert started.status_code == 503 and took < 3.0, took
    finally:
        d.redis.resume()
    deadline = time.monotonic() + 10
    while _ready(app.base).status_code != 200:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.2)
    assert http.get(page, timeout=10).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_exits_0(deployment: Deployment) -> None:
    d = deployment
    d.running(d.port_a, "a")  # the sandbox fetches the app's JWKS from instance A
    app = d.start(d.port_b, "b")
    http = browser()
    page = launch(http, d.ehr, "ex03-index-0-90", app_port=d.port_b, callback_port=d.port_b)
    requests.post(f"{d.ehr}/sandbox/_control", json={"latency_ms": 1200}, timeout=10)
    result: dict[str, int] = {}

    def slow() -> None:
        result["status"] = http.get(page + "/assessment", timeout=30).status_code

    try:
        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.5)  # the request is now waiting on the (slow) EHR
        started = time.monotonic()
        code = app.terminate()
        elapsed = time.monotonic() - started
        worker.join(timeout=30)
    finally:
        requests.post(f"{d.ehr}/sandbox/_control", json={"latency_ms": 0}, timeout=10)
    assert code == 0
    assert result.get("status") == 200  # the in-flight request was answered
    assert 0.5 < elapsed < 15  # it waited for the request, not for graceful_timeout (20 s)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{app.base}/healthz", timeout=2)
