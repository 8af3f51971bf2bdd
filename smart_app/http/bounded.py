"""Bounded reads of EHR answers: a byte cap and a wall-clock deadline per response.

``requests``' ``timeout`` is per socket read, so a server that drips one byte just inside it
holds the caller for as long as it likes, and ``resp.json()`` reads a body of any size. These
helpers stream the body in small reads (at most one socket read each, whose timeout is cut to
what is left of the deadline) and stop past ``max_bytes`` or past ``deadline``.

The errors are ``requests.RequestException`` subclasses, so callers that already turn a network
failure into an error page (discovery, JWKS, style, CapabilityStatement) handle them unchanged.
Residual: response *headers* are read by ``http.client`` under the per-read timeout only.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import requests
from requests.exceptions import ContentDecodingError
from urllib3.exceptions import DecodeError, ReadTimeoutError

CHUNK = 64 * 1024
KB = 1024
MB = 1024 * 1024


class ResponseLimitError(requests.RequestException):
    """An answer exceeded a size or time bound; the message is safe to show."""


class ResponseTooLarge(ResponseLimitError):
    """The body is larger than the caller accepts."""


class DeadlineExceeded(ResponseLimitError, requests.Timeout):
    """The answer did not complete before the caller's wall-clock deadline."""


def deadline_in(seconds: float) -> float:
    """An absolute deadline (``time.monotonic()`` based) ``seconds`` from now."""
    return time.monotonic() + seconds


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; raises ``DeadlineExceeded`` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the EHR did not answer before the deadline")
    return left


def _set_socket_timeout(resp: requests.Response, seconds: float) -> None:
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(seconds, 0.001))


def read_body(resp: requests.Response, *, max_bytes: int, deadline: float,
              read_timeout: float | None = None) -> bytes:
    """Read a ``stream=True`` response within the bounds; the bytes also become ``content``.

    The response is closed (its connection not reused) when a bound is hit.
    """
    preloaded: object = resp._content  # noqa: SLF001 - False until the body has been read
    if preloaded is not False:  # already read (not streamed): only the size can be checked
        body = preloaded if isinstance(preloaded, bytes) else b""
        if len(body) > max_bytes:
            resp.close()
            raise ResponseTooLarge(f"the answer is larger than {max_bytes // KB} KB")
        return body
    try:
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(f"the answer is larger than {max_bytes // KB} KB")
        raw = resp.raw
        read1 = getattr(raw, "read1", None)
        parts: list[bytes] = []
        size = 0
        while True:
            left = remaining(deadline)
            _set_socket_timeout(resp, min(left, read_timeout) if read_timeout else left)
            try:
                if read1 is not None:
                    chunk = read1(CHUNK, decode_content=True)
                else:  # pragma: no cover - a raw object without read1 (not urllib3 2)
                    chunk = raw.read(CHUNK, decode_content=True)
            except requests.RequestException:
                raise
            except Exception as exc:  # urllib3 / socket errors while streaming
                if time.monotonic() >= deadline:
                    raise DeadlineExceeded(
                        "the EHR did not answer before the deadline") from exc
                if isinstance(exc, ReadTimeoutError | TimeoutError):
                    raise requests.ReadTimeout("the EHR stopped sending its answer") from exc
                if isinstance(exc, DecodeError):
                    raise ContentDecodingError("the answer could not be decoded") from exc
                raise requests.ConnectionError(f"reading the answer failed: "
                                               f"{type(exc).__name__}") from exc
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(f"the answer is larger than {max_bytes // KB} KB")
            parts.append(chunk)
        body = b"".join(parts)
    except BaseException:
        resp.close()
        raise
    resp._content = body  # noqa: SLF001 - makes .json()/.content/.text use the bounded bytes
    resp._content_consumed = True  # type: ignore[attr-defined]  # noqa: SLF001
    release = getattr(resp.raw, "release_conn", None)
    if callable(release):
        release()  # fully read: the connection may be reused
    else:
        resp.close()
    return body


def request(session: requests.Session, method: str, url: str, *, max_bytes: int,
            deadline: float, timeout: float | None = None, **kwargs: Any) -> requests.Response:
    """``session.request`` with the body read within ``max_bytes`` and ``deadline``.

    ``timeout`` (per read) is cut to what is left of the deadline.
    """
    left = remaining(deadline)
    per_read = min(timeout, left) if timeout is not None else left
    kwargs.setdefault("allow_redirects", False)
    try:
        send = getattr(session, method.lower())  # session.get / .post (tests may fake them)
        resp: requests.Response = send(url, stream=True, timeout=per_read, **kwargs)
    except requests.Timeout as exc:
        if time.monotonic() >= deadline:
            raise DeadlineExceeded("the EHR did not answer before the deadline") from exc
        raise
    read_body(resp, max_bytes=max_bytes, deadline=deadline, read_timeout=timeout)
    return resp


def get(session: requests.Session, url: str, *, max_bytes: int, deadline: float,
        **kwargs: Any) -> requests.Response:
    return request(session, "GET", url, max_bytes=max_bytes, deadline=deadline, **kwargs)


def get_json(session: requests.Session, url: str, *, max_bytes: int, deadline: float,
             **kwargs: Any) -> Any:
    """GET, raise for an error status, and parse JSON (``ValueError`` when it is not)."""
    resp = get(session, url, max_bytes=max_bytes, deadline=deadline, **kwargs)
    resp.raise_for_status()
    try:
        return resp.json()
    except RecursionError as exc:  # thousands of nested arrays: as unusable as invalid JSON
        raise ValueError("the answer is JSON nested too deeply") from exc
