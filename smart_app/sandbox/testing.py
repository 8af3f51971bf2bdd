"""Run a WSGI app on a loopback port in a background thread, for tests and demos.

Real HTTP (not Flask's test client) is what exercises redirects, ``requests`` retries and
client-side OAuth libraries the way production does, so both the sandbox tests and the app's
integration tests use this helper.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server


@contextmanager
def serve_in_thread(wsgi_app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``wsgi_app`` (threaded) and yield its base URL, e.g. ``http://127.0.0.1:51234``.

    The server is shut down and its socket closed when the block exits.
    """
    server = make_server(host, port, wsgi_app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
        name="sandbox-server",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mounted(sandbox: Any, app: Any = None) -> Any:
    """Mount ``sandbox`` at ``/sandbox`` over ``app`` (default: a 404 for everything else).

    This is the URL layout of the demo, so a test using it sees the same URLs
    (``{root}/sandbox/fhir`` ...) as the combined deployment.
    """
    return DispatcherMiddleware(app if app is not None else NotFound(), {"/sandbox": sandbox})


class LateApp:
    """A WSGI callable whose target is set after the server has a port.

    The app and the sandbox must know each other's URLs before they are built, and a test
    server on port 0 only learns its port once it listens: serve this, then set ``target``.
    """

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.target(environ, start_response)


class Overlay:
    """Canned EHR answers in front of a real sandbox: what no valid FHIR server would send.

    The sandbox serves well-formed FHIR from Python objects, so JSON nested 100,000 deep, a
    number ``json.dumps`` never writes, or a Bundle where a Patient belongs cannot come from it.
    The overlay answers chosen GET paths (relative to the sandbox mount, e.g.
    ``/fhir/Observation``) with raw bytes and passes everything else through, so the launch,
    the token and the other searches stay the sandbox's own.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._routes: dict[str, tuple[int, bytes]] = {}
        #: POST paths whose answer loses its ``Location`` (a create confirmed by nothing).
        self.no_location: set[str] = set()
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
        if (environ.get("REQUEST_METHOD") == "POST"
                and environ.get("PATH_INFO", "") in self.no_location):
            def without_location(status: str, headers: list[tuple[str, str]],
                                 *rest: Any) -> Any:
                kept = [(k, v) for k, v in headers if k.lower() != "location"]
                return start_response(status, kept, *rest)
            return self.app(environ, without_location)  # type: ignore[no-any-return]
        if canned is None or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        status, body = canned
        start_response(f"{status} Canned", [("Content-Type", "application/fhir+json"),
                                            ("Content-Length", str(len(body)))])
        return [body]


class _FormFields(HTMLParser):
    """The first form's action and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = found.get("action") or ""
        elif tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields.append((str(found["name"]), found.get("value") or ""))


def submit_auto_form(http: Any, resp: Any, url: str) -> Any:
    """What a browser does with the app's auto-submitting authorize form (``authorize-post``):
    POST its hidden fields to its action, without following the answer's redirect. Any other
    response is returned unchanged, so a flow helper can call this on every step."""
    if resp.status_code != 200 or 'id="authorize"' not in resp.text:
        return resp
    form = _FormFields()
    form.feed(resp.text)
    return http.post(urljoin(url, form.action or url), data=form.fields,
                     allow_redirects=False, timeout=30)


def follow_launch(http: Any, url: str, *, stop_at: str = "",
                  timeout: float = 60) -> tuple[str, Any]:
    """A browser's way through a launch: redirects and the auto-submitted authorize form.

    Returns the last URL and its response: the first answer that is not a redirect, or (with
    ``stop_at``) the first redirect whose target path starts with ``stop_at``, unrequested, so a
    caller can time that request on its own."""
    for _ in range(12):
        resp = submit_auto_form(http, http.get(url, allow_redirects=False, timeout=timeout), url)
        if resp.status_code not in (301, 302, 303, 307):
            return url, resp
        url = urljoin(url, resp.headers["Location"])
        if stop_at and urlsplit(url).path.startswith(stop_at):
            return url, resp
    raise RuntimeError("launch: too many redirects")
