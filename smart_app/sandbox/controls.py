"""Runtime misbehaviour switches and the request log (set via ``/sandbox/_control``).

Tests use these to make the sandbox slow, failing, rate-limited, v1-only, or refusing, and to
assert how many round trips the app made. The settings are one frozen ``Controls`` value that is
swapped atomically, so a request always sees a consistent set.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import SandboxConfig
from .profiles import DEFAULT_PROFILE, PROFILES, EhrProfile, find_profile

#: Keys of ``POST /sandbox/_control`` that are actions rather than settings.
ACTIONS = frozenset({"reset", "reset_data", "clear_requests", "register_client", "put_resources"})
MAX_LOG = 10_000
GRANT_FORMATS = ("smart", "epic")
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


@dataclass(frozen=True)
class Controls:
    """The current misbehaviour settings (all off by default)."""

    latency_ms: int = 0
    fail_next: tuple[int, ...] = ()
    fail_next_write: tuple[int, ...] = ()  # the same, for creates (POST) only
    rate_limit_next: int = 0
    token_lifetime: int = 3600  # DEFAULT_TOKEN_LIFETIME
    v1_only: bool = False
    no_risk_assessment: bool = False
    deny_authorization: bool = False
    refresh_includes_context: bool = False
    #: False: a refresh answers without a new refresh token and the old one stays valid
    #: (Epic, Oracle Health).
    rotate_refresh_tokens: bool = True
    #: True: id_tokens are signed with a key the JWKS does not publish (a key rollover the
    #: app has not seen, or a misconfigured issuer).
    id_token_unpublished_key: bool = False
    #: "smart": the token response's ``scope`` in SMART syntax; "epic": the same grant written
    #: in API-name style (``Observation.read Observation.search``), as Epic's examples show.
    grant_format: str = "smart"
    #: Resource types whose scopes are not granted even when asked for.
    withhold: tuple[str, ...] = ()
    ehr_profile: str = DEFAULT_PROFILE
    #: Resource types this EHR does not offer at all: left out of the CapabilityStatement, and
    #: every call on them is a 404 ``not-supported`` (as MedicationStatement on several EHRs).
    not_offered: tuple[str, ...] = ()
    #: Per resource type, fields to overwrite in a second copy of every search match of that
    #: type (same type/id, no newer version): an EHR that sends conflicting copies, e.g.
    #: ``{"MedicationAdministration": {"status": "entered-in-error"}}``.
    conflicting_copies: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def conflict_fields(self, resource_type: str) -> dict[str, Any] | None:
        for rtype, fields in self.conflicting_copies:
            if rtype == resource_type:
                return dict(fields)
        return None

    @property
    def profile(self) -> EhrProfile:
        return find_profile(self.ehr_profile)

    @classmethod
    def initial(cls, config: SandboxConfig) -> Controls:
        profile = find_profile(config.ehr_profile)
        signed_in = _sign_in_defaults(profile)
        if config.token_lifetime is not None:  # the short-token knob wins over the profile
            signed_in["token_lifetime"] = config.token_lifetime
        signed_in["v1_only"] = config.v1_only or profile.v1_only
        return cls(
            latency_ms=config.latency_ms,
            no_risk_assessment=config.no_risk_assessment,
            ehr_profile=config.ehr_profile,
            **signed_in,
            not_offered=tuple(config.not_offered),
        )

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fail_next"] = list(self.fail_next)
        data["withhold"] = list(self.withhold)
        data["not_offered"] = list(self.not_offered)
        data["conflicting_copies"] = {t: dict(f) for t, f in self.conflicting_copies}
        data["fail_next_write"] = list(self.fail_next_write)
        return data


DEFAULT_TOKEN_LIFETIME = 3600


def _sign_in_defaults(profile: EhrProfile) -> dict[str, Any]:
    """The controls an EHR profile sets: how its tokens and grants behave."""
    return {
        "token_lifetime": profile.token_lifetime or DEFAULT_TOKEN_LIFETIME,
        "rotate_refresh_tokens": profile.rotate_refresh_tokens,
        "grant_format": profile.grant_format,
        "v1_only": profile.v1_only,
    }


def _validated(current: Controls, changes: Mapping[str, Any]) -> Controls:
    """Apply JSON changes to ``current``; ValueError names the offending key.

    Switching ``ehr_profile`` also switches the controls the profile sets (token lifetime,
    refresh rotation, grant format, v1-only), unless the same change sets them explicitly.
    """
    if isinstance(changes.get("ehr_profile"), str) and changes["ehr_profile"] in PROFILES:
        current = dataclasses.replace(
            current, **_sign_in_defaults(find_profile(changes["ehr_profile"])))
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ACTIONS:
            continue
        if key in ("latency_ms", "rate_limit_next", "token_lifetime"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key}: expected a non-negative integer")
            updates[key] = value
        elif key in ("fail_next", "fail_next_write"):
            if not isinstance(value, list) or not all(
                isinstance(v, int) and 400 <= v <= 599 for v in value
            ):
                raise ValueError(f"{key}: expected a list of HTTP status codes 400-599")
            updates[key] = tuple(value)
        elif key in (
            "v1_only",
            "no_risk_assessment",
            "deny_authorization",
            "refresh_includes_context",
            "rotate_refresh_tokens",
            "id_token_unpublished_key",
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false")
            updates[key] = value
        elif key == "not_offered":
            if not isinstance(value, list) or not all(
                isinstance(v, str) and RESOURCE_TYPE.match(v) for v in value
            ):
                raise ValueError("not_offered: expected a list of resource type names")
            updates[key] = tuple(value)
        elif key == "conflicting_copies":
            if not isinstance(value, dict) or not all(
                isinstance(t, str) and RESOURCE_TYPE.match(t) and isinstance(f, dict)
                and all(isinstance(k, str) and k not in ("resourceType", "id") for k in f)
                for t, f in value.items()
            ):
                raise ValueError("conflicting_copies: expected {ResourceType: {field: value}}")
            updates[key] = tuple((t, tuple(sorted(f.items()))) for t, f in sorted(value.items()))
        elif key == "ehr_profile":
            if not isinstance(value, str):
                raise ValueError("ehr_profile: expected a profile name")
            find_profile(value)
            updates[key] = value
        elif key == "withhold":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("withhold: expected a list of resource types")
            updates[key] = tuple(value)
        elif key == "grant_format":
            if value not in GRANT_FORMATS:
                raise ValueError(f"grant_format: expected one of {', '.join(GRANT_FORMATS)}")
            updates[key] = value
        else:
            raise ValueError(f"unknown control key '{key}'")
    return dataclasses.replace(current, **updates)


@dataclass
class ControlState:
    """Holder of the current ``Controls`` and of the request log."""

    initial: Controls
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[str, Any]] = field(default_factory=list)
    current: Controls = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def get(self) -> Controls:
        return self.current

    def update(self, changes: Mapping[str, Any]) -> Controls:
        with self.lock:
            self.current = _validated(self.current, changes)
            return self.current

    def reset(self) -> None:
        with self.lock:
            self.current = self.initial
            self.requests.clear()

    def take_failure(self, *, write: bool = False) -> int | None:
        """Consume one queued failure: a pending 429 first, then the next ``fail_next`` code
        (for a create, first the next ``fail_next_write`` code)."""
        with self.lock:
            now = self.current
            if now.rate_limit_next > 0:
                self.current = dataclasses.replace(now, rate_limit_next=now.rate_limit_next - 1)
                return 429
            if write and now.fail_next_write:
                self.current = dataclasses.replace(now, fail_next_write=now.fail_next_write[1:])
                return now.fail_next_write[0]
            if now.fail_next:
                self.current = dataclasses.replace(now, fail_next=now.fail_next[1:])
                return now.fail_next[0]
            return None

    def log(
        self, method: str, path: str, query: str, args: dict[str, list[str]], status: int,
        client_header: str | None = None,
    ) -> None:
        """Append one request: raw ``query`` string, decoded ``args``, response ``status``, and
        the ``Epic-Client-ID`` header when the client sent one."""
        with self.lock:
            if len(self.requests) >= MAX_LOG:
                del self.requests[: MAX_LOG // 10]
            entry: dict[str, Any] = {"method": method, "path": path, "query": query,
                                     "args": args, "status": status}
            if client_header is not None:
                entry["epic_client_id"] = client_header
            self.requests.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.requests]
