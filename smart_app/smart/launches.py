"""The two server-side records of a SMART launch and where they are kept.

``PendingAuth`` lives from ``/launch`` to ``/callback`` (state, PKCE verifier; single-use, ten
minutes, bound to the browser's session id: A2). ``Launch`` lives from the callback on (tokens,
context, user); it is keyed by its own random id, which is in the URL ``/launches/<id>``, so two
tabs with two patients never share anything, and it is bound to the browser's session id, so a
leaked URL alone opens nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .context import LaunchContext
from .scopes import GrantedScopes
from .store import SessionStore
from .tokens import TokenSet

STATE_TTL = 600  # A2: about ten minutes from /launch to /callback


@dataclass(frozen=True)
class PendingAuth:
    sid: str  # the browser session that started the flow
    iss: str
    launch: str | None  # None for a standalone launch (L5)
    code_verifier: str
    redirect_uri: str
    scope: str
    created_at: float
    profile: str = ""  # "v1" | "v2" when the app chose the scopes; "" for explicit ones


@dataclass(frozen=True)
class Launch:
    id: str
    sid: str
    iss: str
    tenant: str  # Tenant.name
    context: LaunchContext
    tokens: TokenSet
    requested_scope: str
    fhir_user: str | None
    created_at: float
    #: "verified" (a validated id_token), "unverified" (an id_token signed with a key the EHR
    #: does not publish: no user is trusted), "none" (no id_token).
    user_status: str = "none"

    def granted(self) -> GrantedScopes:
        """The scopes this launch acts on (``GrantedScopes.effective``)."""
        return GrantedScopes.effective(self.tokens.scope, self.requested_scope)

    def with_tokens(self, tokens: TokenSet) -> Launch:
        return replace(self, tokens=tokens)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["context"] = self.context.to_json()
        data["tokens"] = self.tokens.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Launch:
        return cls(
            **{
                **data,
                "context": LaunchContext.from_json(data["context"]),
                "tokens": TokenSet.from_json(data["tokens"]),
            }
        )


class LaunchRepository:
    """Typed access to the session store; each record is encrypted there."""

    def __init__(self, store: SessionStore, session_ttl: int) -> None:
        self.store = store
        self._ttl = session_ttl

    def put_pending(self, state: str, pending: PendingAuth) -> None:
        self.store.put("state", state, asdict(pending), STATE_TTL)

    def take_pending(self, state: str) -> PendingAuth | None:
        data = self.store.take("state", state)
        return PendingAuth(**data) if data is not None else None

    def put(self, launch: Launch) -> None:
        self.store.put("launch", launch.id, launch.to_json(), self._ttl)

    def get(self, launch_id: str) -> Launch | None:
        data = self.store.get("launch", launch_id)
        try:
            return Launch.from_json(data) if data is not None else None
        except (KeyError, TypeError):
            return None  # written by an older release: relaunch

    def delete(self, launch_id: str) -> None:
        self.store.delete("launch", launch_id)

    def put_shown(self, launch_id: str, identifier: str, record: dict[str, Any]) -> None:
        """What a launch page showed (the RiskAssessment and its text summary), so "Save to
        chart" writes exactly what the clinician reviewed, without reading the chart again."""
        self.store.put("shown", f"{launch_id}:{identifier}", record, self._ttl)

    def get_shown(self, launch_id: str, identifier: str) -> dict[str, Any] | None:
        return self.store.get("shown", f"{launch_id}:{identifier}")
