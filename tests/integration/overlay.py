"""Canned EHR answers in front of the real sandbox: what no valid FHIR server would send.

The sandbox serves well-formed FHIR from Python objects, so JSON nested 100,000 deep, a number
``json.dumps`` never writes, or a Bundle where a Patient belongs cannot come from it. The overlay
answers chosen GET paths (relative to the sandbox mount, e.g. ``/fhir/Observation``) with raw
bytes and passes everything else through, so the launch, the token and the other searches stay
the sandbox's own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class Overlay:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._routes: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def answer(self, path: str, body: str | bytes, status: int = 200) -> None:
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        with self._lock:
            self._routes[path] = (status, data)

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            canned = self._routes.get(environ.get("PATH_INFO", ""))
        if canned is None or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        status, body = canned
        start_response(f"{status} Canned", [("Content-Type", "application/fhir+json"),
                                            ("Content-Length", str(len(body)))])
        return [body]
