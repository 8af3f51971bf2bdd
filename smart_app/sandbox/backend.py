"""SMART Backend Services (``client_credentials`` + ``private_key_jwt``) for the sandbox.

A nightly batch such as the worklist has no user and no launch: it authenticates with a signed
assertion (the same ``private_key_jwt`` checks as the app's code exchange: RS384/ES384, ``kid``,
``exp`` at most five minutes ahead, ``jti`` never reused) and gets a short-lived token carrying
``system/`` scopes only. No refresh token is ever issued: SMART says to re-authenticate.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidScopeError, grants

from . import scopes
from .state import SandboxState

#: SMART backend services: access tokens SHOULD NOT live longer than five minutes.
MAX_BACKEND_TOKEN_LIFETIME = 300


def granted_system_scopes(requested: str | None, *, v1_only: bool) -> list[str]:
    """The ``system/`` resource scopes of a request (others are dropped, as EHRs do)."""
    return [s for s in scopes.grant(requested, v1_only=v1_only) if s.startswith("system/")]


class BackendServicesGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """``grant_type=client_credentials`` for ``private_key_jwt`` clients, system scopes only."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]

    def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
        state: SandboxState = self.server.state
        granted = granted_system_scopes(self.request.payload.scope,
                                        v1_only=state.controls.get().v1_only)
        if not granted:
            raise InvalidScopeError("client_credentials needs system/ resource scopes")
        lifetime = min(backend_token_lifetime(state), MAX_BACKEND_TOKEN_LIFETIME)
        token = self.generate_token(scope=" ".join(granted), include_refresh_token=False,
                                    expires_in=lifetime)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def backend_token_lifetime(state: SandboxState) -> int:
    """Seconds a backend token lives; the bulk knobs may shorten it (re-authentication tests)."""
    from .bulk import bulk_state

    return bulk_state(state).knobs.backend_token_lifetime


def init_backend(state: SandboxState) -> None:
    state.server.register_grant(BackendServicesGrant)
