"""A FHIR Bulk Data client for ``Group/[id]/$export`` (Bulk Data IG 2.0/3.0).

Kick-off with ``Prefer: respond-async``; polling with exponential backoff that honours
``Retry-After`` and retries transient failures (5xx without an outcome, 429, or an
OperationOutcome whose issue code is a *transient* one) a bounded number of times; the manifest's
``requiresAccessToken`` honoured: no token to a file URL that does not need one, and none across a
redirect to another origin (pre-signed storage URLs); files streamed (``Accept-Encoding: gzip``,
gzip files recognised by their bytes) straight into the staging database; ``DELETE`` of the job
at the end, even when the run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

import requests
import urllib3

from ..http.bounded import MB, _set_socket_timeout, deadline_in
from ..http.bounded import request as bounded_request
from .auth import BackendAuth
from .errors import WorklistError

FHIR_JSON = "application/fhir+json"
#: OperationOutcome issue codes that mean "try again later" (FHIR IssueType: transient + children).
TRANSIENT = frozenset({"transient", "lock-error", "no-store", "exception", "timeout",
                       "incomplete", "throttled"})
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
MAX_TRANSIENT = 8  # consecutive transient failures tolerated while polling
MAX_REDIRECTS = 5
FIRST_INTERVAL = 1.0  # seconds before the first re-poll when the server gives no Retry-After
MAX_INTERVAL = 600.0  # the longest pause between polls (Oracle's example Retry-After)
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class ExportOptions:
    wait: float = 6 * 3600  # seconds the export may take before the run gives up
    per_patient: tuple[str, ...] = ()  # types read by per-patient search instead
    concurrency: int = 4
    observations: str = "category"  # "category" | "jcv-codes" (_typeFilter for Observations)
    since: str | None = None  # a FHIR instant, or "last"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExportOptions:
        types = tuple(t.strip() for t in (args.per_patient or "").split(",") if t.strip())
        if args.concurrency < 1 or args.concurrency > 16:
            raise ValueError("--concurrency: expected 1 to 16")
        if args.wait <= 0:
            raise ValueError("--wait: expected a positive number of seconds")
        since = getattr(args, "since", None)
        if since and since != "last" and not INSTANT.fullmatch(since):
            raise ValueError("--since: expected a FHIR instant such as 2026-11-24T01:30:00Z, "
                             "or 'last'")
        return cls(wait=args.wait, per_patient=types, concurrency=args.concurrency,
                   observations=args.observations, since=since or None)


@dataclass(frozen=True)
class OutputFile:
    type: str
    url: str
    count: int | None


@dataclass(frozen=True)
class Manifest:
    transaction_time: str | None
    requires_token: bool
    output: tuple[OutputFile, ...]
    error: tuple[OutputFile, ...]


class KickOffRefused(WorklistError):
    """The server refused the kick-off (4xx); ``diagnostics`` is its OperationOutcome text."""

    def __init__(self, status: int, diagnostics: str) -> None:
        super().__init__(f"the EHR refused the export (HTTP {status})")
        self.status = status
        self.diagnostics = diagnostics


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def retry_after(resp: requests.Response, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock())


def outcome_codes(resp: requests.Response) -> tuple[list[str], str]:
    """Issue codes and joined diagnostics of an OperationOutcome body (empty when none)."""
    try:
        body = resp.json()
    except ValueError:
        return [], ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return [], ""
    issues = [i for i in body.get("issue") or [] if isinstance(i, dict)]
    codes = [str(i.get("code", "")) for i in issues]
    texts = [str(i.get("diagnostics") or (i.get("details") or {}).get("text") or "")
             for i in issues]
    return codes, " ".join(t for t in texts if t)[:500]


def type_filter(queries: Mapping[str, Sequence[Sequence[tuple[str, str]]]]) -> str:
    """``_typeFilter``: ``Type?query`` items joined by commas, written as plain FHIR queries.

    The kick-off URL's own encoding is the only one applied: servers decode the parameter once
    (the SMART reference server silently ignores a filter encoded twice and exports everything).
    """
    items = []
    for kind, options in queries.items():
        for params in options:
            items.append(f"{kind}?" + "&".join(f"{name}={value}" for name, value in params))
    return ",".join(items)


class BulkClient:
    """One EHR's Bulk Data endpoint, with the backend token provider."""

    def __init__(
        self,
        http: requests.Session,
        base: str,
        auth: BackendAuth,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self.polls = 0

    def send(self, method: str, url: str, *, token: bool = True, stream: bool = False,
              headers: Mapping[str, str] | None = None) -> requests.Response:
        """One request with the current token; a 401 re-authenticates once and repeats it."""
        sent: str | None = None
        for attempt in range(2):
            hdrs = {"Accept": FHIR_JSON, **(headers or {})}
            if token:
                sent = self.auth.token(sent if attempt else None)
                hdrs["Authorization"] = f"Bearer {sent}"
            self.requests += 1
            try:
                if stream:
                    resp = self.http.request(method, url, headers=hdrs, stream=True,
                                             allow_redirects=False,
                                             timeout=(self.timeout, max(self.timeout, 60.0)))
                else:
                    resp = bounded_request(self.http, method, url, max_bytes=8 * MB,
                                           deadline=deadline_in(3 * self.timeout),
                                           timeout=self.timeout, headers=hdrs)
            except requests.RequestException as exc:
                raise WorklistError(f"{method} to the EHR failed ({type(exc).__name__})") \
                    from exc
            if resp.status_code != 401 or not token or attempt:
                return resp
            resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- kick-off ----------------------------------------------------------------------------
    def kick_off(self, group: str, types: Sequence[str],
                 filters: Mapping[str, Sequence[Sequence[tuple[str, str]]]],
                 since: str | None, *, deadline: float) -> str:
        """Start the export; returns the status URL. ``KickOffRefused`` on a 4xx."""
        params = [("_type", ",".join(types))]
        if filters:
            params.append(("_typeFilter", type_filter(filters)))
        if since:
            params.append(("_since", since))
        url = f"{self.base}/Group/{quote(group, safe='')}/$export?{urlencode(params)}"
        waits = 0
        while True:
            resp = self.send("GET", url, headers={"Prefer": "respond-async"})
            if resp.status_code == 202 and resp.headers.get("Content-Location"):
                status = urljoin(url, resp.headers["Content-Location"])
                if origin(status) != origin(self.base):
                    # The status URL is polled and deleted with the system token: anywhere
                    # else than the FHIR server itself would hand that token to another host.
                    raise WorklistError("the export's status URL is not on the FHIR server's "
                                        "origin (scheme, host and port); not followed")
                return status
            if resp.status_code in (401, 403):
                codes, text = outcome_codes(resp)
                raise WorklistError(f"the EHR refused the system token at the export kick-off "
                                    f"(HTTP {resp.status_code}{', ' + text[:120] if text else ''})"
                                    "; check the backend client's scopes and registration")
            if resp.status_code in (429, 503) and waits < MAX_TRANSIENT:
                # Oracle allows one export per client at a time: a 429 means "later".
                waits += 1
                self._pause(retry_after(resp) or FIRST_INTERVAL * 2 ** waits, deadline)
                continue
            codes, text = outcome_codes(resp)
            if 400 <= resp.status_code < 500:
                raise KickOffRefused(resp.status_code, text)
            raise WorklistError(f"the export could not be started (HTTP {resp.status_code}"
                                f"{', ' + codes[0] if codes else ''})")

    def _pause(self, seconds: float, deadline: float) -> None:
        left = deadline - self.clock()
        if left <= 0:
            raise WorklistError("the export did not complete in the time allowed (--wait)")
        self.sleep(max(0.0, min(seconds, MAX_INTERVAL, left)))

    # -- polling -----------------------------------------------------------------------------
    def wait(self, status_url: str, *, deadline: float) -> Manifest:
        interval = FIRST_INTERVAL
        failures = 0
        while True:
            resp = self.send("GET", status_url)
            self.polls += 1
            if resp.status_code == 200:
                return parse_manifest(resp, status_url)
            delay = retry_after(resp)
            if resp.status_code == 202:
                failures = 0
            elif resp.status_code == 429 or resp.status_code >= 500:
                codes, _ = outcome_codes(resp)
                if codes and not set(codes) & TRANSIENT:
                    raise WorklistError(f"the export failed on the EHR (HTTP "
                                        f"{resp.status_code}, {codes[0]})")
                failures += 1
                if failures > MAX_TRANSIENT:
                    raise WorklistError(f"the export status kept failing (HTTP "
                                        f"{resp.status_code}, {failures} times in a row)")
            else:
                codes, _ = outcome_codes(resp)
                raise WorklistError(f"the export failed (HTTP {resp.status_code}"
                                    f"{', ' + codes[0] if codes else ''})")
            self._pause(delay if delay is not None else interval, deadline)
            interval = min(interval * 2, MAX_INTERVAL)

    def delete(self, status_url: str) -> int:
        """Tell the server the job's files may go (or cancel it); the HTTP status, 0 if none."""
        try:
            resp = self.send("DELETE", status_url)
        except WorklistError:
            return 0
        return resp.status_code

    # -- files -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, item: OutputFile, *, requires_token: bool) -> Iterator[requests.Response]:
        """A streamed, transport-decoded response for one manifest file.

        The token goes only where the manifest says it is needed, only over https (or to the
        FHIR server's own origin), and never across a redirect to another origin.
        """
        url = item.url
        self._check_transport(url, item.type)
        send_token = requires_token and origin(url) == origin(self.base)
        failures = 0
        for _ in range(MAX_REDIRECTS + MAX_TRANSIENT):
            resp = self.send("GET", url, token=send_token, stream=True,
                              headers={"Accept": "application/fhir+ndjson",
                                       "Accept-Encoding": "gzip"})
            if resp.status_code in REDIRECTS and resp.headers.get("Location"):
                target = urljoin(url, resp.headers["Location"])
                resp.close()
                self._check_transport(target, item.type)
                if origin(target) != origin(url):
                    send_token = False  # pre-signed storage: the URL itself is the credential
                url = target
                continue
            if resp.status_code in (429, 500, 502, 503, 504) and failures < 3:
                failures += 1
                resp.close()
                self.sleep(min(retry_after(resp) or FIRST_INTERVAL * 2 ** failures, 30.0))
                continue
            if resp.status_code != 200:
                resp.close()
                raise WorklistError(f"download of a {item.type} file failed "
                                    f"(HTTP {resp.status_code})")
            resp.raw.decode_content = True
            try:
                yield resp
            finally:
                resp.close()
            return
        raise WorklistError(f"download of a {item.type} file: too many redirects or failures")

    def _check_transport(self, url: str, kind: str) -> None:
        """Export files of an https FHIR server come over https (they are PHI)."""
        if not url.startswith(("https://", "http://")):
            raise WorklistError(f"a {kind} export file is not at an http(s) URL")
        if self.base.startswith("https://") and not url.startswith("https://"):
            raise WorklistError(f"a {kind} export file is offered over plain http by an https "
                                "EHR; not downloaded")

    def body(self, resp: requests.Response, deadline: float, what: str) -> DeadlineReader:
        """The body of a streamed download, read against the run's one deadline."""
        return DeadlineReader(resp, deadline, self.clock, self.timeout, what)


class DeadlineReader:
    """A raw body whose every read is bounded by what is left of the run's deadline (``--wait``
    covers the downloads too) and by the socket timeout; a server that drips or stalls ends the
    run with a one-line error instead of holding it, or a traceback."""

    def __init__(self, resp: requests.Response, deadline: float,
                 clock: Callable[[], float], timeout: float, what: str) -> None:
        self._raw = resp.raw
        self._resp = resp
        self._deadline = deadline
        self._clock = clock
        self._timeout = timeout
        self._what = what

    def read(self, size: int = -1) -> bytes:
        left = self._deadline - self._clock()
        if left <= 0:
            raise WorklistError(f"the export did not complete in the time allowed (--wait) "
                                f"while downloading {self._what}")
        _read_timeout(self._resp, min(left, self._timeout))
        try:
            # read1: what has arrived, at most one socket read; ``read(n)`` would keep reading
            # a dripping body until n bytes, past any deadline.
            data: bytes = self._raw.read1(size if size and size > 0 else 64 * 1024)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            if self._deadline - self._clock() <= 0:
                raise WorklistError(f"the export did not complete in the time allowed (--wait) "
                                    f"while downloading {self._what}") from exc
            raise WorklistError(f"the download of {self._what} stalled or broke off "
                                f"({type(exc).__name__})") from exc
        return data


def _read_timeout(resp: requests.Response, seconds: float) -> None:
    """Bound the next socket read of a streamed body. urllib3 2 drops its connection's
    ``sock`` once the headers are read, so the socket is reached through the body's file."""
    fp = getattr(getattr(resp.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is None:
        _set_socket_timeout(resp, seconds)
        return
    with contextlib.suppress(OSError):
        sock.settimeout(max(seconds, 0.001))


def _files(data: Any, key: str) -> tuple[OutputFile, ...]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise WorklistError(f"the export manifest's {key} is not a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) \
                or not isinstance(item.get("type"), str):
            raise WorklistError(f"the export manifest has an unusable {key} entry")
        count = item.get("count")
        out.append(OutputFile(item["type"], item["url"], count if isinstance(count, int) else None))
    return tuple(out)


def parse_manifest(resp: requests.Response, status_url: str) -> Manifest:
    try:
        data = resp.json()
    except ValueError as exc:
        raise WorklistError("the export manifest is not JSON") from exc
    if not isinstance(data, dict):
        raise WorklistError("the export manifest is not a JSON object")
    requires = data.get("requiresAccessToken")
    output = tuple(OutputFile(f.type, urljoin(status_url, f.url), f.count)
                   for f in _files(data, "output"))
    error = tuple(OutputFile(f.type, urljoin(status_url, f.url), f.count)
                  for f in _files(data, "error"))
    stamp = data.get("transactionTime")
    if not isinstance(stamp, str) or not INSTANT.fullmatch(stamp):
        raise WorklistError("the export manifest has no transactionTime: not a completed export")
    if not isinstance(data.get("output"), list):
        raise WorklistError("the export manifest has no output list: not a completed export")
    return Manifest(
        transaction_time=stamp,
        # Absent is read as "required" (the field is mandatory in the IG); ``open`` still
        # sends the token only over https or to the FHIR server's own origin.
        requires_token=requires is not False,
        output=output,
        error=error,
    )
