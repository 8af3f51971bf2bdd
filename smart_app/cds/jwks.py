"""The CDS clients' public keys, per allowlisted JWKS URL.

A CDS client rotates its signing key by publishing the new one in its JWKS, so a ``kid`` the
cache does not know may be new: the set is fetched again, but at most once per
``REFETCH_INTERVAL`` per URL. Without that limit, a stream of calls with made-up ``kid``s would
turn the service into a request amplifier against the EHR's key server. Only URLs from the
configuration are ever passed in (``trust.py`` checks ``jku`` against them first), redirects are
not followed, and the answer is bounded in size and time.

How long a set is kept follows its ``Cache-Control: max-age``, clamped to [1 min, 1 day]; without
one, an hour. When a refetch fails, keys already known keep working until the next attempt, so
a blip at the EHR's key server does not blank every card.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from ..http.bounded import MB, deadline_in, get

REFETCH_INTERVAL = 30.0  # seconds between two fetches of one JWKS URL, whatever the reason
DEFAULT_TTL = 3600.0
MIN_TTL, MAX_TTL = 60.0, 86400.0
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)

Key = RSAKey | ECKey


class KeyUnavailable(Exception):
    """No usable key for this ``kid``; ``reason`` is an audit code (``unknown-kid`` ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Entry:
    keys: KeySet | None  # None: never fetched successfully
    expires: float  # monotonic time after which the set is fetched again before use
    attempted: float  # monotonic time of the last fetch attempt (success or not)


def _ttl(resp: requests.Response) -> float:
    header = resp.headers.get("Cache-Control", "")
    if "no-store" in header.lower() or "no-cache" in header.lower():
        return MIN_TTL  # honoured as "as short as we dare": every call would be a fetch
    found = _MAX_AGE.search(header)
    if found is None:
        return DEFAULT_TTL
    return min(MAX_TTL, max(MIN_TTL, float(found.group(1))))


class CdsJwks:
    """Thread-safe cache of JWK Sets with a rate-limited refetch on an unknown ``kid``."""

    def __init__(
        self,
        http: requests.Session,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL,
    ) -> None:
        self.refetch_interval = refetch_interval
        self._http = http
        self._timeout = timeout
        self.clock = clock  # replaceable: the refetch limit is about time
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self.fetches = 0  # how many HTTP fetches were made (the refetch limit is observable)

    def key(self, url: str, kid: str) -> Key:
        """The public key ``kid`` from the set at ``url``; raises :class:`KeyUnavailable`."""
        entry = self._entry(url)
        now = self.clock()
        if entry is not None and entry.expires > now:
            found = _find(entry.keys, kid)
            if found is not None:
                return found
        with self._url_lock(url):
            entry = self._entry(url)  # another thread may have fetched while this one waited
            now = self.clock()
            found = _find(entry.keys, kid) if entry is not None else None
            if found is not None and entry is not None and entry.expires > now:
                return found
            if entry is not None and now - entry.attempted < self.refetch_interval:
                if found is not None:
                    return found  # expired but just attempted: the stale key stands
                raise KeyUnavailable("unknown-kid" if entry.keys is not None
                                     else "jwks-unavailable")
            entry = self._fetch(url, entry)
        found = _find(entry.keys, kid)
        if found is None:
            raise KeyUnavailable("unknown-kid" if entry.keys is not None else "jwks-unavailable")
        return found

    def _entry(self, url: str) -> _Entry | None:
        with self._lock:
            return self._entries.get(url)

    def _url_lock(self, url: str) -> threading.Lock:
        with self._lock:
            return self._url_locks.setdefault(url, threading.Lock())

    def _fetch(self, url: str, old: _Entry | None) -> _Entry:
        now = self.clock()
        self.fetches += 1
        try:
            resp = get(self._http, url, max_bytes=1 * MB, deadline=deadline_in(self._timeout),
                       timeout=self._timeout, allow_redirects=False,
                       headers={"Accept": "application/json, application/jwk-set+json"})
            resp.raise_for_status()
            keys = KeySet.import_key_set(resp.json())
            entry = _Entry(keys, now + _ttl(resp), now)
        except (requests.RequestException, ValueError, TypeError, KeyError, JoseError):
            # Keep what was known (a key server blip must not blank every card) and remember
            # the attempt, so the refetch limit also holds while the server is failing.
            entry = _Entry(old.keys if old else None, old.expires if old else now, now)
        with self._lock:
            self._entries[url] = entry
        return entry


def _find(keys: KeySet | None, kid: str) -> Key | None:
    if keys is None:
        return None
    for key in keys.keys:
        if key.kid == kid and isinstance(key, RSAKey | ECKey):
            return key
    return None
