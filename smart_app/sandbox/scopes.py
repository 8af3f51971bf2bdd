"""SMART scope grammar (v1 and v2) and the access decisions the FHIR API derives from it.

authlib only compares scope strings for equality; SMART needs ``patient/*.rs`` to cover
``patient/Observation.r`` and ``.read`` to mean ``.rs``, so the semantics live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["patient", "user", "system"]

#: Scopes that are not about resources and are granted when asked for.
CONTEXT_SCOPES = frozenset(
    {
        "launch",
        "launch/patient",
        "launch/encounter",
        "openid",
        "fhirUser",
        "profile",
        "online_access",
        "offline_access",
    }
)
REFRESH_SCOPES = frozenset({"online_access", "offline_access"})

_RESOURCE_SCOPE = re.compile(
    r"^(?P<level>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>[a-z*]+)(?P<query>\?\S*)?$"
)
_V1_PERMS = {"read": "rs", "write": "cud", "*": "cruds"}
_ORDER = "cruds"


@dataclass(frozen=True)
class ResourceScope:
    """One parsed resource scope. ``perms`` uses the v2 letters even for v1 scopes."""

    level: Level
    resource: str
    perms: frozenset[str]
    v1: bool

    def covers(self, resource_type: str, perm: str) -> bool:
        return self.resource in ("*", resource_type) and perm in self.perms


def _is_v2_perm(perm: str) -> bool:
    """v2 permissions are a non-empty subset of ``cruds`` written in that order."""
    positions = [_ORDER.find(ch) for ch in perm]
    return bool(perm) and -1 not in positions and positions == sorted(set(positions))


def parse_resource_scope(scope: str) -> ResourceScope | None:
    """Parse ``patient/Observation.rs`` (v2) or ``user/*.read`` (v1); ``None`` if neither.

    v2 search-parameter constraints (``?category=...``) are accepted but not enforced: the scope
    is treated as if unconstrained. This sandbox documents that as a known simplification.
    """
    match = _RESOURCE_SCOPE.match(scope)
    if not match:
        return None
    perm = match["perm"]
    level: Level = match["level"]  # type: ignore[assignment]
    if perm in _V1_PERMS:
        if match["query"]:
            return None
        return ResourceScope(level, match["type"], frozenset(_V1_PERMS[perm]), v1=True)
    if not _is_v2_perm(perm):
        return None
    return ResourceScope(level, match["type"], frozenset(perm), v1=False)


def to_v1(scope: ResourceScope) -> list[str]:
    """The v1 scopes a v1-only server grants for a (possibly v2) request."""
    base = f"{scope.level}/{scope.resource}"
    if scope.perms == frozenset(_ORDER):
        return [f"{base}.*"]
    out = []
    if scope.perms & {"r", "s"}:
        out.append(f"{base}.read")
    if scope.perms & {"c", "u", "d"}:
        out.append(f"{base}.write")
    return out


def grant(requested: str | None, *, v1_only: bool, withhold: Iterable[str] = ()) -> list[str]:
    """Decide which of the requested scopes are granted (the sandbox auto-approves).

    Unknown scopes are silently dropped, as real EHRs do; the app must read the granted ``scope``
    of the token response. In v1-only mode v2 resource scopes are converted to v1 ones. Scopes
    for the ``withhold`` types are not granted (a user whose rights are narrower).
    """
    held = set(withhold)
    granted: list[str] = []
    for item in (requested or "").split():
        if item in CONTEXT_SCOPES:
            candidates = [item]
        else:
            parsed = parse_resource_scope(item)
            if parsed is None or parsed.resource in held:
                continue
            candidates = to_v1(parsed) if (v1_only and not parsed.v1) else [item]
        granted.extend(c for c in candidates if c not in granted)
    return granted


def resource_scopes(granted: Iterable[str]) -> list[ResourceScope]:
    return [p for p in (parse_resource_scope(s) for s in granted) if p is not None]


def access_level(
    scopes: Iterable[ResourceScope], resource_type: str, perm: str
) -> Literal["none", "patient", "all"]:
    """How far the scopes let a token perform ``perm`` on ``resource_type``.

    ``all`` (a ``user/`` or ``system/`` scope) means any patient's data; ``patient`` means only
    the token's patient compartment; ``none`` means a 403.
    """
    best: Literal["none", "patient", "all"] = "none"
    for scope in scopes:
        if scope.covers(resource_type, perm):
            if scope.level != "patient":
                return "all"
            best = "patient"
    return best


def supported_scopes(*, v1_only: bool) -> list[str]:
    """Examples for ``scopes_supported`` in discovery (SMART lists a representative set)."""
    resource = (
        ["patient/*.read", "patient/*.write", "user/*.read", "user/*.write", "patient/*.*"]
        if v1_only
        else [
            "patient/*.cruds",
            "patient/*.rs",
            "patient/*.c",
            "user/*.cruds",
            "user/*.rs",
            "patient/*.read",
            "patient/*.write",
            "user/*.read",
        ]
    )
    return sorted(CONTEXT_SCOPES) + resource


_API_VERBS = (("r", "read"), ("s", "search"), ("c", "create"), ("u", "update"), ("d", "delete"))


def api_style(scope: str) -> str:
    """A grant written the way Epic's documentation shows it: ``Observation.read
    Observation.search`` instead of ``patient/Observation.rs``; other scopes are kept."""
    out: list[str] = []
    for token in scope.split():
        parsed = parse_resource_scope(token)
        if parsed is None:
            out.append(token)
            continue
        out.extend(f"{parsed.resource}.{verb}" for letter, verb in _API_VERBS
                   if letter in parsed.perms)
    return " ".join(dict.fromkeys(out))
