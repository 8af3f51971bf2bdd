"""A scripted EHR for what the sandbox cannot be made to do: fixed handlers by path, served on
loopback, every request path recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from smart_app.sandbox.testing import serve_in_thread

Handler = Callable[[Request], Response]


class Script:
    """Routes by path; records every request path (and each path's latest query string)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[str] = []
        self.queries: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.hits.append(request.path)
            self.queries[request.path] = request.query_string.decode("latin-1")
        handler = self.routes.get(request.path)
        response = handler(request) if handler else Response("{}", status=404)
        return response(environ, start_response)


@pytest.fixture
def ehr() -> Iterator[tuple[str, Script]]:
    script = Script()
    with serve_in_thread(script) as base:
        yield base, script
