"""One bounded FHIR request: timeouts, a wall-clock deadline, a byte cap, bounded retries.

Every read the app makes goes through ``FhirTransport._get``: 429 (Retry-After) and 503 are
retried a bounded number of times, a 401 triggers one forced token refresh, and an answer that
is too large, too slow or not JSON becomes a ``FhirError`` whose message is safe to show.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from ...http.bounded import MB, DeadlineExceeded, ResponseTooLarge, deadline_in
from ...http.bounded import request as bounded_request

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
MAX_RETRIES = 2
MAX_RETRY_AFTER = 5.0  # seconds; a longer Retry-After is an outage, not a hiccup
MAX_PAGE_BYTES = 20 * MB  # one FHIR answer (a search page, a read)
DEADLINE_FACTOR = 3.0  # a whole chart read must finish within this many fhir_timeouts


#: Returns a bearer token; called with the token the server rejected (401), else None, so
#: parallel requests that all got a 401 for the same token cause one refresh, not several.
TokenProvider = Callable[[str | None], str]


class FhirError(RuntimeError):
    """The chart could not be read; ``message`` is safe to show (no PHI, no token)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ForeignResource(FhirError):
    """The server returned a resource outside the launch patient's compartment."""


@dataclass
class _Job:
    label: str  # resource type of the search, for logs and the withheld list
    url: str
    page: int = 1
    count: int | None = None  # the _count asked for (a page may not hold more matches)
    include: bool = False  # _include asked for: up to ``count`` more included entries
    fallback: str | None = None  # a first page's URL with its required parameters only


@dataclass
class _Result:
    job: _Job
    status: int
    body: dict[str, Any] | None
    requests: int
    date: str | None = None  # the answer's HTTP Date header: the server's clock


def _retry_delay(resp: requests.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying, or None when the response is not worth retrying."""
    if resp.status_code not in (429, 503):
        return None
    header = resp.headers.get("Retry-After")
    if header is None:
        return min(0.25 * float(1 << attempt), MAX_RETRY_AFTER)
    if header.strip().isdigit():
        delay = float(header.strip())
    else:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        delay = max(0.0, when.timestamp() - time.time())
    return float(delay) if delay <= MAX_RETRY_AFTER else None



class FhirTransport:
    """The connection to one FHIR base for one launch: its token, timeouts and budget."""

    def __init__(
        self,
        http: requests.Session,
        base: str,
        token: TokenProvider,
        *,
        timeout: float,
        max_pages: int,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
    ) -> None:
        self._http = http
        self._base = base.rstrip("/")
        #: Wall-clock budget (seconds) of one chart read / one search / one create.
        self._budget = deadline if deadline is not None else DEADLINE_FACTOR * timeout
        self._token = token
        self._timeout = timeout
        self._max_pages = max_pages
        self._page_size = page_size
        self._sleep = sleep

    def _get(self, job: _Job, deadline: float | None = None) -> _Result:
        if deadline is None:
            deadline = deadline_in(self._budget)
        sent = 0
        token = self._token(None)
        forced = False
        attempt = 0
        while True:
            headers = {"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}
            try:
                resp = bounded_request(
                    self._http, "GET", job.url, max_bytes=MAX_PAGE_BYTES, deadline=deadline,
                    headers=headers, timeout=self._timeout, allow_redirects=False,
                )
            except DeadlineExceeded as exc:
                raise FhirError(
                    f"the EHR did not answer in time ({job.label}); the chart read was stopped "
                    f"after {self._budget:g} seconds"
                ) from exc
            except ResponseTooLarge as exc:
                raise FhirError(
                    f"the EHR sent an answer larger than {MAX_PAGE_BYTES // MB} MB ({job.label})"
                ) from exc
            except requests.Timeout as exc:
                raise FhirError(f"the EHR did not answer in time ({job.label})") from exc
            except requests.RequestException as exc:
                raise FhirError(f"the EHR could not be reached ({job.label})") from exc
            sent += 1
            if resp.status_code == 401 and not forced:
                forced = True  # the token may have been revoked early: refresh once
                token = self._token(token)
                continue
            delay = _retry_delay(resp, attempt)
            if delay is not None and attempt < MAX_RETRIES:
                if time.monotonic() + delay >= deadline:
                    raise FhirError(
                        f"the EHR answered {resp.status_code} ({job.label}) and there is no "
                        "time left to retry", resp.status_code)
                attempt += 1
                log.info("FHIR %s: %s, retrying in %.2fs", job.label, resp.status_code, delay)
                self._sleep(delay)
                continue
            body: dict[str, Any] | None = None
            if resp.status_code == 200:
                try:
                    parsed = resp.json()
                except ValueError as exc:
                    raise FhirError(f"the EHR sent a non-JSON response ({job.label})") from exc
                except RecursionError as exc:  # JSON nested thousands deep
                    raise FhirError(f"the EHR sent JSON nested too deeply ({job.label})") from exc
                if not isinstance(parsed, dict):
                    raise FhirError(f"the EHR sent an unexpected response ({job.label})")
                body = parsed
            return _Result(job, resp.status_code, body, sent, resp.headers.get("Date"))

    def _url(self, path: str, params: Sequence[tuple[str, str]] = ()) -> str:
        query = urlencode(list(params), safe=":|,")
        return f"{self._base}/{path}" + (f"?{query}" if query else "")

    @staticmethod
    def _diagnostics(outcome: Mapping[str, Any]) -> list[str]:
        texts = []
        for issue in outcome.get("issue", []) or []:
            if isinstance(issue, dict):
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                if isinstance(text, str) and text:
                    texts.append(text[:300])
        return texts
