"""Server-side storage for pending authorizations and launches (tokens never reach the browser).

SMART App Launch keeps tokens in app-specific storage, never in cookies: the browser holds only
an opaque id in a signed cookie; the state, the PKCE verifier, the tokens and the launch context
stay here. Every value is encrypted
with a key derived from ``secret_key`` (Fernet), and every key is an HMAC of the caller's key, so
a copy of the database or a Redis dump yields neither tokens nor usable state/launch ids.

Backends share one tiny key-value interface with expiry, so the semantics that matter (single-use
``take`` for ``state``, exclusive ``add`` for the refresh lock) are atomic in each of them:

* ``sqlite:///path``: the embedded default, safe across gunicorn workers on one host;
* ``redis://host:port/db``: several instances behind a load balancer;
* ``memory://``: one process (tests, the demo).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class StoreUnavailable(RuntimeError):
    """The backend cannot be reached; ``__cause__`` is the driver's exception."""


class KeyValue(Protocol):
    """The primitive operations a backend must make atomic."""

    def set(self, key: str, value: bytes, ttl: int) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def take(self, key: str) -> bytes | None:
        """Return the value and delete it in one step: the second caller gets None."""
        ...

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        """Set only if absent (or expired); True for the one caller that set it."""
        ...

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter (created at 1, expiring ``ttl`` seconds after its creation)."""
        ...

    def delete(self, key: str) -> None: ...

    def ping(self) -> None:
        """Raise if the backend cannot serve requests now (``/readyz``)."""
        ...


class MemoryKV:
    """A dict with expiry behind a lock: one process only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        return item[0]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (value, self._clock() + ttl)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key)

    def take(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key)
            self._data.pop(key, None)
            return value

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, self._clock() + ttl)
            return True

    def incr(self, key: str, ttl: int) -> int:
        with self._lock:
            item = self._data.get(key)
            if item is None or item[1] <= self._clock():
                count, expires = 1, self._clock() + ttl
            else:
                count, expires = int(item[0]) + 1, item[1]
            self._data[key] = (str(count).encode(), expires)
            return count

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def ping(self) -> None:
        return None


class SQLiteKV:
    """One table in a local SQLite file; WAL mode so gunicorn workers can share it."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Encrypted records, but still the app's private store: owner-only, whatever the umask.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv "
                "(k TEXT PRIMARY KEY, v BLOB NOT NULL, exp REAL NOT NULL)"
            )
            # The expiry sweep on every write must not scan the table (thousands of pending
            # sign-ins would make each write slower).
            db.execute("CREATE INDEX IF NOT EXISTS kv_exp ON kv (exp)")

    def _connect(self) -> sqlite3.Connection:
        # A connection per operation: cheap for SQLite, and no connection crosses threads.
        return sqlite3.connect(self._path, timeout=10, isolation_level=None)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO kv (k, v, exp) VALUES (?, ?, ?) "
                "ON CONFLICT(k) DO UPDATE SET v = excluded.v, exp = excluded.exp",
                (key, value, self._clock() + ttl),
            )
            db.execute("DELETE FROM kv WHERE exp <= ?", (self._clock(),))

    def get(self, key: str) -> bytes | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT v FROM kv WHERE k = ? AND exp > ?", (key, self._clock())
            ).fetchone()
        return bytes(row[0]) if row else None

    def take(self, key: str) -> bytes | None:
        with self._connect() as db:
            row = db.execute(
                "DELETE FROM kv WHERE k = ? RETURNING v, exp", (key,)
            ).fetchone()
        if row is None or row[1] <= self._clock():
            return None
        return bytes(row[0])

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        now = self._clock()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO kv (k, v, exp) VALUES (?, ?, ?) "
                "ON CONFLICT(k) DO UPDATE SET v = excluded.v, exp = excluded.exp "
                "WHERE kv.exp <= ?",
                (key, value, now + ttl, now),
            )
            return cur.rowcount == 1

    def incr(self, key: str, ttl: int) -> int:
        now = self._clock()
        with self._connect() as db:
            row = db.execute(
                "INSERT INTO kv (k, v, exp) VALUES (?, 1, ?) ON CONFLICT(k) DO UPDATE SET "
                "v = CASE WHEN kv.exp <= ? THEN 1 ELSE CAST(kv.v AS INTEGER) + 1 END, "
                "exp = CASE WHEN kv.exp <= ? THEN excluded.exp ELSE kv.exp END "
                "RETURNING v",
                (key, now + ttl, now, now),
            ).fetchone()
        return int(row[0])

    def delete(self, key: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM kv WHERE k = ?", (key,))

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT count(*) FROM kv WHERE 0").fetchone()


COMMAND_TIMEOUT = 1.0  # seconds per Redis command attempt (two attempts at most)
CONNECT_TIMEOUT = 0.5
PROBE_TIMEOUT = 0.5  # /readyz


class RedisKV:
    """Redis ≥ 6.2 (GETDEL); expiry is Redis's own.

    redis-py's errors become :class:`StoreUnavailable`, so the web layer can answer "try
    again shortly" (503) without knowing which backend is configured.
    """

    def __init__(self, url: str) -> None:
        import redis  # imported here: only deployments that use Redis need a server
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.retry import Retry

        # redis-py's default is ten retries (seconds of backoff) per command. A Redis that
        # hangs (stopped, swapping, a network partition) must cost a request a bounded moment,
        # not a worker thread for tens of seconds: every command answers within
        # COMMAND_TIMEOUT, retried once (a dropped pooled connection, a failover), so a page
        # that finds the store hung says so in about two seconds. Our records are a few KB:
        # a healthy Redis answers in milliseconds.
        self._redis: Any = redis.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.1), 1),
        )
        # /readyz asks once, with a shorter timeout, on its own connections: the load
        # balancer needs the answer within its probe timeout, and a probe must not queue
        # behind requests waiting on a hung server.
        self._probe: Any = redis.Redis.from_url(
            url,
            socket_timeout=PROBE_TIMEOUT,
            socket_connect_timeout=PROBE_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.1), 0),
        )
        self._errors: type[Exception] = redis.exceptions.RedisError
        self._prefix = "pml-risk:"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._redis, method)(*args, **kwargs)
        except self._errors as exc:
            raise StoreUnavailable(f"redis {method}: {type(exc).__name__}") from exc

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._call("set", self._prefix + key, value, ex=ttl)

    def get(self, key: str) -> bytes | None:
        value = self._call("get", self._prefix + key)
        return bytes(value) if value is not None else None

    def take(self, key: str) -> bytes | None:
        value = self._call("getdel", self._prefix + key)
        return bytes(value) if value is not None else None

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(self._call("set", self._prefix + key, value, ex=ttl, nx=True))

    def incr(self, key: str, ttl: int) -> int:
        def counted(pipe: Any) -> int:
            pipe.incr(self._prefix + key)
            pipe.expire(self._prefix + key, ttl, nx=True)  # only when just created
            return int(pipe.execute()[0])

        try:
            return counted(self._redis.pipeline(transaction=True))
        except self._errors as exc:
            raise StoreUnavailable(f"redis incr: {type(exc).__name__}") from exc

    def delete(self, key: str) -> None:
        self._call("delete", self._prefix + key)

    def ping(self) -> None:
        try:
            self._probe.ping()
        except self._errors as exc:
            raise StoreUnavailable(f"redis ping: {type(exc).__name__}") from exc


def open_kv(url: str) -> KeyValue:
    if url.startswith("memory://"):
        return MemoryKV()
    if url.startswith("sqlite:///"):
        return SQLiteKV(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://")):
        return RedisKV(url)
    raise ValueError(f"session_store: unsupported URL scheme in {url.split(':', 1)[0]!r}")


def derive_key(secret_key: str, purpose: str) -> bytes:
    """Independent 32-byte keys from one configured secret (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret_key.encode())


class SessionStore:
    """Encrypted JSON records under namespaced, HMAC-ed keys."""

    def __init__(self, kv: KeyValue, secret_key: str) -> None:
        self._kv = kv
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, "store-encrypt")))
        self._mac_key = derive_key(secret_key, "store-keys")

    def _key(self, kind: str, name: str) -> str:
        digest = hmac.new(self._mac_key, f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest}"

    def _seal(self, record: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(record, separators=(",", ":")).encode())

    def _open(self, blob: bytes | None) -> dict[str, Any] | None:
        if blob is None:
            return None
        try:
            data = json.loads(self._fernet.decrypt(blob))
        except (InvalidToken, ValueError):
            return None  # another secret_key wrote it, or it was tampered with: treat as absent
        return data if isinstance(data, dict) else None

    def put(self, kind: str, name: str, record: dict[str, Any], ttl: int) -> None:
        self._kv.set(self._key(kind, name), self._seal(record), ttl)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._open(self._kv.get(self._key(kind, name)))

    def take(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._open(self._kv.take(self._key(kind, name)))

    def delete(self, kind: str, name: str) -> None:
        self._kv.delete(self._key(kind, name))

    def count(self, kind: str, name: str, ttl: int) -> int:
        """Increment and return a counter (not encrypted: it holds a number only)."""
        return self._kv.incr(self._key(kind, name), ttl)

    def try_lock(self, name: str, ttl: int) -> bool:
        return self._kv.add(self._key("lock", name), b"1", ttl)

    def unlock(self, name: str) -> None:
        self._kv.delete(self._key("lock", name))

    def ping(self) -> None:
        self._kv.ping()


class Timed(Protocol):
    """Runs one store operation, timing it and counting its failure (ops/metrics.py)."""

    def __call__(self, operation: str, call: Callable[[], Any]) -> Any: ...


class TimedKV:
    """A backend whose every operation is timed: operators see a slow or failing Redis
    (or SQLite disk) in the metrics before clinicians see it in the page."""

    def __init__(self, kv: KeyValue, timed: Timed) -> None:
        self._kv = kv
        self._timed = timed

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._timed("set", lambda: self._kv.set(key, value, ttl))

    def get(self, key: str) -> bytes | None:
        result: bytes | None = self._timed("get", lambda: self._kv.get(key))
        return result

    def take(self, key: str) -> bytes | None:
        result: bytes | None = self._timed("take", lambda: self._kv.take(key))
        return result

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(self._timed("add", lambda: self._kv.add(key, value, ttl)))

    def incr(self, key: str, ttl: int) -> int:
        return int(self._timed("incr", lambda: self._kv.incr(key, ttl)))

    def delete(self, key: str) -> None:
        self._timed("delete", lambda: self._kv.delete(key))

    def ping(self) -> None:
        self._timed("ping", self._kv.ping)


def open_store(url: str, secret_key: str, timed: Timed | None = None) -> SessionStore:
    kv = open_kv(url)
    return SessionStore(kv if timed is None else TimedKV(kv, timed), secret_key)
