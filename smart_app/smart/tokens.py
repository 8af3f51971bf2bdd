"""Access and refresh tokens: what is kept, and the proactive, rotating refresh.

Refresh happens *before* expiry (no failed FHIR call first), under a lock that spans processes (the
session store's exclusive ``add``), so two requests of one launch never send the same refresh token
at once. The refresh token is dropped from the record before it is sent, so a failed refresh never
sends it again; a new one from the server replaces it, and when the server sends none (Epic, Oracle
Health: refresh tokens that do not rotate) the one just used is kept, since it is still valid
(RFC 6749 §6). How long a launch stays signed in is then the EHR's refresh-token policy, bounded by
``session_ttl``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60  # seconds before expiry when the app refreshes proactively


class TokenExpired(RuntimeError):
    """The access token is (nearly) expired and cannot be refreshed: relaunch from the EHR."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    token_type: str
    scope: str
    expires_at: float | None
    refresh_token: str | None = None
    id_token: str | None = None
    issued_at: float = 0.0

    @classmethod
    def from_response(
        cls, data: Mapping[str, Any], requested_scope: str, now: float | None = None
    ) -> TokenSet:
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        token_type = str(data.get("token_type", ""))
        if token_type.lower() != "bearer":
            raise ValueError("the token response is not a Bearer token")
        expires_in = data.get("expires_in")
        at = now if now is not None else time.time()
        scope = data.get("scope")
        refresh = data.get("refresh_token")
        id_token = data.get("id_token")
        return cls(
            access_token=access,
            token_type="Bearer",  # noqa: S106 - the scheme name, not a secret
            # RFC 6749 §5.1: an omitted scope means "as requested".
            scope=scope if isinstance(scope, str) else requested_scope,
            expires_at=at + float(expires_in) if isinstance(expires_in, int | float) else None,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            issued_at=at,
        )

    def expires_soon(self, now: float | None = None) -> bool:
        """Within a minute of expiry, or past half its life for tokens shorter than two."""
        if self.expires_at is None:
            return False
        margin = min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 2)
        return (now if now is not None else time.time()) >= self.expires_at - margin

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenSet:
        return cls(**data)


def _without_refresh(tokens: TokenSet) -> TokenSet:
    return replace(tokens, refresh_token=None)
