"""The app's signing keys for ``private_key_jwt`` (SMART client-confidential-asymmetric).

SMART T4 makes a client support both RS384 and ES384, so the key set always holds one key of
each. The private set lives in one JSON file (``settings.keys_file``, mode 0600); only the public
half is ever served, at ``/.well-known/jwks.json``. Rotation is "generate a new file, publish it,
then retire the old one" and is an operator's job, so nothing here rotates silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ("RS384", "ES384")


class KeyFileError(RuntimeError):
    """The key file is missing or unusable; the message says what to run."""


@dataclass(frozen=True)
class SigningKeys:
    """One RS384 and one ES384 private key, each with a ``kid`` (RFC 7638 thumbprint)."""

    rsa: RSAKey
    ec: ECKey

    def for_alg(self, alg: str) -> RSAKey | ECKey:
        if alg == "RS384":
            return self.rsa
        if alg == "ES384":
            return self.ec
        raise KeyFileError(f"no signing key for algorithm {alg!r}; expected RS384 or ES384")

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set to publish: no private members (``d``, ``p``, ``q``...)."""
        return dict(KeySet([self.rsa, self.ec]).as_dict(private=False))

    def private_jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.rsa, self.ec]).as_dict(private=True))


def generate() -> SigningKeys:
    rsa = RSAKey.generate_key(
        2048, parameters={"alg": "RS384", "use": "sig"}, private=True, auto_kid=True
    )
    ec = ECKey.generate_key(
        "P-384", parameters={"alg": "ES384", "use": "sig"}, private=True, auto_kid=True
    )
    return SigningKeys(rsa=rsa, ec=ec)


def save(keys: SigningKeys, path: str | os.PathLike[str]) -> None:
    """Write the private JWKS readable by the owner only (it is a credential)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys.private_jwks(), fh, indent=2)
    os.replace(tmp, target)


def load(path: str | os.PathLike[str]) -> SigningKeys:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"keys_file: {path} not found; run `pml-risk keys generate --config FILE`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"keys_file: {path} is not a readable JWK Set: {exc}") from exc
    rsa: RSAKey | None = None
    ec: ECKey | None = None
    for jwk in data.get("keys", []) if isinstance(data, dict) else []:
        if not isinstance(jwk, dict) or "d" not in jwk:
            continue
        if jwk.get("kty") == "RSA" and jwk.get("alg") == "RS384":
            rsa = RSAKey.import_key(jwk)
        elif jwk.get("kty") == "EC" and jwk.get("alg") == "ES384":
            ec = ECKey.import_key(jwk)
    if rsa is None or ec is None:
        raise KeyFileError(f"keys_file: {path} must hold a private RS384 and a private ES384 key")
    if not rsa.kid or not ec.kid:
        raise KeyFileError(f"keys_file: {path}: every key needs a kid")
    return SigningKeys(rsa=rsa, ec=ec)


def load_or_create(path: str | os.PathLike[str]) -> SigningKeys:
    """For the demo and tests only: production keys are made on purpose with the CLI."""
    if Path(path).exists():
        return load(path)
    keys = generate()
    save(keys, path)
    return keys
