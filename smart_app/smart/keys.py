"""The app's signing keys for ``private_key_jwt`` (SMART client-confidential-asymmetric).

SMART App Launch 2.2 asymmetric client authentication makes a client support both RS384 and ES384,
so a key set always holds one *current* key of each. The private set lives in one JSON file
(``settings.keys_file``, mode 0600); only the public half is ever served, at
``/.well-known/jwks.json``.

Rotation is "publish the next key alongside the current one": ``keys rotate`` makes a new pair
current and keeps the old pair as *previous*. Previous keys are published, so an EHR that cached
the JWKS, or an assertion signed a moment before the rotation, still verifies, but they never sign
again. ``keys retire`` (or the next rotation) drops them. For EHRs that cache the JWKS and do not
refetch on an unknown ``kid``, ``keys rotate --stage`` first publishes the new pair as *next* (not
signing); the later ``keys rotate`` promotes it.

The file stays a valid JWK Set (RFC 7517 §5 lets a set carry extra members): ``current`` and
``next`` name kids and ``created`` dates each key. A file written before rotation existed
(one RS384 + one ES384, no ``current``) loads as that pair being current.

Running apps pick up a rotated file by themselves (:class:`KeyRing` re-reads it when its mtime
changes), so a rotation needs no restart and every instance sharing the file agrees.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ("RS384", "ES384")
#: Members of a public JWK we publish; everything else (private parts, our metadata) stays home.
PUBLIC_MEMBERS = ("kty", "kid", "alg", "use", "n", "e", "crv", "x", "y")

log = logging.getLogger(__name__)

Key = RSAKey | ECKey


class KeyFileError(RuntimeError):
    """The key file is missing or unusable; the message says what to run."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SigningKeys:
    """The current RS384 and ES384 private keys, plus the previous pair while it is retiring.

    ``kid`` is the RFC 7638 thumbprint, so the same key always has the same id.
    """

    rsa: RSAKey
    ec: ECKey
    previous: tuple[Key, ...] = ()
    created: dict[str, str] = field(default_factory=dict)  # kid -> ISO date
    next: tuple[Key, ...] = ()  # staged: published ahead of use, so EHR caches have it

    def for_alg(self, alg: str) -> Key:
        if alg == "RS384":
            return self.rsa
        if alg == "ES384":
            return self.ec
        raise KeyFileError(f"no signing key for algorithm {alg!r}; expected RS384 or ES384")

    @property
    def current(self) -> tuple[Key, Key]:
        return (self.rsa, self.ec)

    @property
    def all_keys(self) -> tuple[Key, ...]:
        return (*self.current, *self.next, *self.previous)

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to publish: current then previous keys, public members only."""
        out = []
        for key in self.all_keys:
            data = key.as_dict(private=False)
            out.append({m: data[m] for m in PUBLIC_MEMBERS if m in data})
        return {"keys": out}

    def private_jwks(self) -> dict[str, Any]:
        """The file's content: every private key, which are current, and when each was made."""
        return {
            "keys": [dict(KeySet([k]).as_dict(private=True)["keys"][0]) for k in self.all_keys],
            "current": [k.kid for k in self.current],
            "next": [k.kid for k in self.next],
            "created": {k.kid: self.created.get(str(k.kid), "") for k in self.all_keys},
        }

    def _dates(self, *groups: tuple[Key, ...]) -> dict[str, str]:
        return {str(k.kid): self.created.get(str(k.kid), "") for g in groups for k in g}

    def staged(self) -> SigningKeys:
        """A fresh pair is published as *next*; the current pair keeps signing."""
        fresh = generate()
        return SigningKeys(rsa=self.rsa, ec=self.ec, previous=self.previous,
                           next=fresh.current,
                           created={**self._dates(self.current, self.previous),
                                    **fresh.created})

    def rotated(self) -> SigningKeys:
        """The staged pair (or a fresh one) becomes current; this pair becomes previous.

        Keys that were already previous are dropped: one rotation of overlap at a time.
        """
        rsa = next((k for k in self.next if isinstance(k, RSAKey)), None)
        ec = next((k for k in self.next if isinstance(k, ECKey)), None)
        if rsa is None or ec is None:
            fresh = generate()
            rsa, ec = fresh.rsa, fresh.ec
            dates = fresh.created
        else:
            dates = self._dates(self.next)
        return SigningKeys(rsa=rsa, ec=ec, previous=self.current,
                           created={**self._dates(self.current), **dates})

    def retired(self) -> SigningKeys:
        """The previous pair is no longer published."""
        return SigningKeys(rsa=self.rsa, ec=self.ec, next=self.next,
                           created=self._dates(self.current, self.next))

    def describe(self) -> list[dict[str, str]]:
        """What ``keys show`` prints: never private material."""
        rows = []
        status = {
            **{id(k): "previous (published, no longer signing)" for k in self.previous},
            **{id(k): "next (published, not yet signing)" for k in self.next},
            **{id(k): "current (signing)" for k in self.current},
        }
        for key in self.all_keys:
            data = key.as_dict(private=False)
            rows.append({
                "kid": str(key.kid),
                "alg": str(data.get("alg", "")),
                "created": self.created.get(str(key.kid), "") or "unknown",
                "status": status[id(key)],
            })
        return rows


def generate() -> SigningKeys:
    rsa = RSAKey.generate_key(
        2048, parameters={"alg": "RS384", "use": "sig"}, private=True, auto_kid=True
    )
    ec = ECKey.generate_key(
        "P-384", parameters={"alg": "ES384", "use": "sig"}, private=True, auto_kid=True
    )
    stamp = _now()
    return SigningKeys(rsa=rsa, ec=ec, created={str(rsa.kid): stamp, str(ec.kid): stamp})


def save(keys: SigningKeys, path: str | os.PathLike[str]) -> None:
    """Write the private JWKS readable by the owner only (it is a credential), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.unlink(missing_ok=True)  # a left-over (or planted) tmp must not lend us its mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys.private_jwks(), fh, indent=2)
    os.replace(tmp, target)  # readers see the old file or the new one, never half of one


def _import(jwk: dict[str, Any]) -> Key | None:
    if jwk.get("kty") == "RSA" and jwk.get("alg") == "RS384":
        return RSAKey.import_key(jwk)
    if jwk.get("kty") == "EC" and jwk.get("alg") == "ES384":
        return ECKey.import_key(jwk)
    return None


def _pick(keys: Iterable[Key], kids: list[str], kind: type[Key]) -> Key | None:
    for key in keys:
        if isinstance(key, kind) and (not kids or key.kid in kids):
            return key
    return None


def load(path: str | os.PathLike[str]) -> SigningKeys:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"keys_file: {path} not found; run `pml-risk keys generate --config FILE`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"keys_file: {path} is not a readable JWK Set: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyFileError(f"keys_file: {path} is not a JWK Set (no \"keys\" array)")
    imported: list[Key] = []
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or "d" not in jwk:
            continue
        try:
            key = _import(jwk)
        except ValueError as exc:
            raise KeyFileError(f"keys_file: {path}: a key does not import: {exc}") from exc
        if key is not None:
            if not key.kid:
                raise KeyFileError(f"keys_file: {path}: every key needs a kid")
            imported.append(key)
    kids = _kids(data, "current")
    staged = _kids(data, "next")
    rsa = _pick(imported, kids, RSAKey) if kids else _pick(
        [k for k in imported if k.kid not in staged], [], RSAKey)
    ec = _pick(imported, kids, ECKey) if kids else _pick(
        [k for k in imported if k.kid not in staged], [], ECKey)
    if not isinstance(rsa, RSAKey) or not isinstance(ec, ECKey):
        raise KeyFileError(f"keys_file: {path} must hold a private RS384 and a private ES384 key")
    created = data.get("created", {})
    others = [k for k in imported if k is not rsa and k is not ec]
    return SigningKeys(
        rsa=rsa,
        ec=ec,
        previous=tuple(k for k in others if k.kid not in staged),
        next=tuple(k for k in others if k.kid in staged),
        created={str(k): str(v) for k, v in created.items()} if isinstance(created, dict) else {},
    )


def _kids(data: dict[str, Any], member: str) -> list[str]:
    value = data.get(member, [])
    return [k for k in value if isinstance(k, str)] if isinstance(value, list) else []


def load_or_create(path: str | os.PathLike[str]) -> SigningKeys:
    """For the demo and tests only: production keys are made on purpose with the CLI."""
    if Path(path).exists():
        return load(path)
    keys = generate()
    save(keys, path)
    return keys


class KeyRing:
    """The keys a running app signs and publishes with, re-read when the file changes.

    Checking the file's mtime costs one ``stat`` per use; a rotation by ``pml-risk keys
    rotate`` (an atomic replace) is therefore live on every instance within one request, with
    no restart. If the new file is unreadable the ring keeps the keys it has and logs why.
    """

    def __init__(self, path: str | None = None, fixed: SigningKeys | None = None) -> None:
        self._path = path
        self._keys = fixed
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        if fixed is None and path is not None:
            self._keys = load(path)
            self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path) if self._path else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino) if st else None

    def get(self) -> SigningKeys | None:
        if self._path is None or self._stamp is None:
            return self._keys  # fixed keys (tests, the demo) or no file at all
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._keys = load(self._path)
                        log.info("keys_file changed: reloaded (current kids %s)",
                                 ", ".join(str(k.kid) for k in self._keys.current))
                    except KeyFileError as exc:
                        log.error("keys_file changed but cannot be used; keeping the "
                                  "loaded keys: %s", exc)
                    self._stamp = stamp
        return self._keys
