"""The two server-side records of a SMART launch and where they are kept.

``PendingAuth`` lives from ``/launch`` to ``/callback`` (state, PKCE verifier; single-use, ten
minutes, bound to the browser's session id, as SMART asks of ``state``). ``Launch`` lives from the
callback on (tokens, context, user); it is keyed by its own random id, which is in the URL
``/launches/<id>``, so two tabs with two patients never share anything, and it is bound to the
browser's session id, so a leaked URL alone opens nothing.

A launch ends ``session_ttl`` seconds after the sign-in, however often its token is refreshed
(the record is re-stored with what is left of that, never a fresh TTL), and after
``session_idle_timeout`` seconds without a request (an unattended workstation). Activity is kept
in its own small record, so noting it never rewrites the launch: a stale copy written back could
resurrect a refresh token that was already used.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from .context import LaunchContext
from .scopes import GrantedScopes
from .store import SessionStore
from .tokens import TokenSet

STATE_TTL = 600  # about ten minutes from /launch to /callback
TOUCH_EVERY = 60.0  # seconds: activity is written at most this often per launch
#: How long the app remembers what it wrote (identifier -> resource): relaunches, other tabs
#: and other clinicians saving the same result within this time never write a second copy.
LEDGER_TTL = 30 * 24 * 3600


@dataclass(frozen=True)
class PendingAuth:
    sid: str  # the browser session that started the flow
    iss: str
    launch: str | None  # None for a standalone launch (no launch handle)
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
    #: The signed-in user's name from a verified id_token (printed on the page), or None.
    user_name: str | None = None

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

    def __init__(self, store: SessionStore, session_ttl: int, idle_timeout: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._ttl = session_ttl
        self._idle = idle_timeout if idle_timeout is not None else session_ttl
        self._clock = clock

    def put_pending(self, state: str, pending: PendingAuth) -> None:
        self.store.put("state", state, asdict(pending), STATE_TTL)

    def admit_pending(self, address: str, per_address: int, total: int) -> bool:
        """Whether one more pending sign-in may be stored for ``address`` (``[limits]``).

        Counted per ten-minute window (a pending record's lifetime), per client address and
        across all of them, in the shared store so every worker and instance sees one count.
        """
        window = int(self._clock() // STATE_TTL)
        ttl = 2 * STATE_TTL
        if self.store.count("pending", f"{window}:{address}", ttl) > per_address:
            return False
        return self.store.count("pending", f"{window}:*", ttl) <= total

    def take_pending(self, state: str) -> PendingAuth | None:
        data = self.store.take("state", state)
        return PendingAuth(**data) if data is not None else None

    def _left(self, launch: Launch) -> float:
        """Seconds of the absolute lifetime left."""
        return launch.created_at + self._ttl - self._clock()

    def put(self, launch: Launch) -> None:
        """Store (or re-store, after a refresh) with what is left of the absolute lifetime."""
        left = self._left(launch)
        if left <= 0:
            self.delete(launch.id)
            return
        self.store.put("launch", launch.id, launch.to_json(), math.ceil(left))

    def get(self, launch_id: str) -> Launch | None:
        """The launch, unless it has ended: past its lifetime, idle too long, or logged out."""
        data = self.store.get("launch", launch_id)
        try:
            launch = Launch.from_json(data) if data is not None else None
        except (KeyError, TypeError):
            return None  # written by an older release: relaunch
        if launch is None:
            return None
        if self._left(launch) <= 0 or self.idle_for(launch_id) > self._idle:
            self.delete(launch_id)
            return None
        return launch

    def idle_for(self, launch_id: str) -> float:
        """Seconds since the launch's last request (infinite when none is recorded)."""
        seen = self.store.get("seen", launch_id)
        at = seen.get("at") if seen else None
        return self._clock() - at if isinstance(at, int | float) else math.inf

    def touch(self, launch: Launch) -> None:
        """Note a request of the launch (at most every ``TOUCH_EVERY`` seconds)."""
        if self.idle_for(launch.id) < min(TOUCH_EVERY, self._idle / 4):
            return
        ttl = min(self._idle, max(self._left(launch), 1))
        self.store.put("seen", launch.id, {"at": self._clock()}, math.ceil(ttl))

    def delete(self, launch_id: str) -> None:
        """Forget the launch and everything kept with it (its chart snapshot)."""
        self.store.delete("launch", launch_id)
        self.store.delete("seen", launch_id)
        self.drop_chart(launch_id)

    def put_chart(self, launch: Launch, snapshot: dict[str, Any]) -> str:
        """The chart as read when the page opened: one read per visit. What-if, the JSON,
        the summary and the save work from it; it is encrypted like the launch record and
        lives (for what is left of the launch's lifetime) and is deleted with it.

        Returns the snapshot's version, kept beside it in a small record so a process may
        keep the parsed snapshot and check it is current with one small read."""
        version = secrets.token_urlsafe(12)
        ttl = math.ceil(max(self._left(launch), 1))
        self.store.put("chart", launch.id, {**snapshot, "version": version}, ttl)
        self.store.put("chart-version", launch.id, {"version": version}, ttl)
        return version

    def get_chart(self, launch_id: str) -> dict[str, Any] | None:
        return self.store.get("chart", launch_id)

    def chart_version(self, launch_id: str) -> str | None:
        found = self.store.get("chart-version", launch_id)
        version = found.get("version") if found else None
        return version if isinstance(version, str) else None

    def drop_chart(self, launch_id: str) -> None:
        """The chart changed (or the launch ended): the next request reads it again."""
        self.store.delete("chart-version", launch_id)
        self.store.delete("chart", launch_id)

    def put_written(self, iss: str, identifier: str, record: dict[str, Any]) -> None:
        """The write ledger: this result (by its identifier) is in this EHR as ``record``
        (``{"resourceType", "id"}``). Keeps a save idempotent where the EHR cannot: no
        conditional create, a search that lags behind the create, a 201 without a body."""
        self.store.put("written", f"{iss}|{identifier}", record, LEDGER_TTL)

    def get_written(self, iss: str, identifier: str) -> dict[str, Any] | None:
        return self.store.get("written", f"{iss}|{identifier}")

    def put_shown(self, launch_id: str, identifier: str, record: dict[str, Any]) -> None:
        """What a launch page showed (the RiskAssessment and its text summary), so "Save to
        chart" writes exactly what the clinician reviewed, without reading the chart again.
        Kept as long as the launch can stay idle: a save comes after a look at the page."""
        self.store.put("shown", f"{launch_id}:{identifier}", record, min(self._ttl, self._idle))

    def get_shown(self, launch_id: str, identifier: str) -> dict[str, Any] | None:
        return self.store.get("shown", f"{launch_id}:{identifier}")
