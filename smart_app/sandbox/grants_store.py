"""What the authorization server remembers: launch handles, codes, tokens and seen JWT ids.

Records are frozen; the dictionaries holding them are guarded by one lock. "Claim" operations
(take a code, take a refresh token, record a jti) are atomic so that a replay racing the original
request still loses.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .scopes import ResourceScope, resource_scopes


@dataclass(frozen=True)
class LaunchContext:
    """The clinical context an EHR (or the standalone picker) attaches to an authorization."""

    patient: str | None = None
    encounter: str | None = None
    practitioner: str | None = None
    need_patient_banner: bool = True
    intent: str | None = None
    fhir_context: tuple[dict[str, Any], ...] = ()
    app_context: str | None = None  # CDS Hooks: the card link's appContext
    #: Resource types whose scopes this launch does not grant even when the app asks for them
    #: (``/launch?withhold=``): real EHRs grant less than requested.
    withhold: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued code; the methods are the ones authlib's grants call."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    context: LaunchContext
    nonce: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class TokenRecord:
    """An issued access token (and maybe its refresh token); authlib's TokenMixin methods."""

    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    context: LaunchContext
    issued_at: float
    expires_at: float
    refresh_expires_at: float
    code: str | None = None

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - self.issued_at)

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return False

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def resource_scopes(self) -> list[ResourceScope]:
        return resource_scopes(self.scopes)


@dataclass
class GrantsStore:
    """Mutable authorization state of one sandbox."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    launches: dict[str, tuple[LaunchContext, float]] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    used_codes: dict[str, list[str]] = field(default_factory=dict)
    access: dict[str, TokenRecord] = field(default_factory=dict)
    refresh: dict[str, TokenRecord] = field(default_factory=dict)
    jtis: dict[tuple[str, str], float] = field(default_factory=dict)

    def clear(self) -> None:
        with self.lock:
            self.launches.clear()
            self.codes.clear()
            self.used_codes.clear()
            self.access.clear()
            self.refresh.clear()
            self.jtis.clear()

    def new_launch(self, context: LaunchContext, lifetime: int) -> str:
        handle = secrets.token_urlsafe(16)
        with self.lock:
            self.launches[handle] = (context, time.time() + lifetime)
        return handle

    def launch(self, handle: str) -> LaunchContext | None:
        """Launch handles may be used more than once (a reload of the app) until they expire."""
        with self.lock:
            found = self.launches.get(handle)
        if found is None or found[1] < time.time():
            return None
        return found[0]

    def save_code(self, code: AuthorizationCode) -> None:
        with self.lock:
            self.codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """A live code for this client. Presenting a used code revokes its tokens (RFC 6749)."""
        with self.lock:
            if code in self.used_codes:
                for token in self.used_codes[code]:
                    record = self.access.pop(token, None)
                    if record is not None and record.refresh_token:
                        self.refresh.pop(record.refresh_token, None)
                return None
            found = self.codes.get(code)
        if found is None or found.client_id != client_id or found.expires_at < time.time():
            return None
        return found

    def use_code(self, code: str) -> bool:
        """Mark a code used; ``False`` if someone else used it first."""
        with self.lock:
            if self.codes.pop(code, None) is None:
                return False
            self.used_codes.setdefault(code, [])
            return True

    def save_token(self, record: TokenRecord) -> None:
        with self.lock:
            self.access[record.access_token] = record
            if record.refresh_token:
                self.refresh[record.refresh_token] = record
            if record.code is not None and record.code in self.used_codes:
                self.used_codes[record.code].append(record.access_token)

    def token(self, access_token: str) -> TokenRecord | None:
        with self.lock:
            return self.access.get(access_token)

    def take_refresh(self, refresh_token: str) -> TokenRecord | None:
        """Claim a refresh token: rotation means it can never be presented again."""
        with self.lock:
            record = self.refresh.pop(refresh_token, None)
        if record is None or record.refresh_expires_at < time.time():
            return None
        return record

    def find_refresh(self, refresh_token: str) -> TokenRecord | None:
        """A refresh token that does not rotate: valid again until it expires."""
        with self.lock:
            record = self.refresh.get(refresh_token)
        if record is None or record.refresh_expires_at < time.time():
            return None
        return record

    def claim_jti(self, client_id: str, jti: str, until: float) -> bool:
        """Record a client-assertion ``jti``; ``False`` if it was seen before (a replay)."""
        now = time.time()
        with self.lock:
            for key in [k for k, exp in self.jtis.items() if exp < now - 3600]:
                del self.jtis[key]
            if (client_id, jti) in self.jtis:
                return False
            self.jtis[(client_id, jti)] = until
            return True
