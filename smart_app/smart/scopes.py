"""What the app asks for (the fewest scopes it needs) and what it may do with what it got.

The granted ``scope`` may differ from the request, so the app never assumes: it parses the grant
(v1 ``.read``/``.write``/``.*`` and v2 ``.cruds`` alike) and degrades, e.g. to read-only when
RiskAssessment create was not granted, or to "data may be incomplete" when a read was withheld.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from ..config import Tenant

#: The resource types the risk engine reads, in the order the FHIR client searches them.
READ_TYPES = (
    "Patient",
    "Observation",
    "MedicationAdministration",
    "MedicationStatement",
    "MedicationRequest",
    "Medication",
    "DiagnosticReport",  # brain MRIs (reports, studies, procedures): the MRI due date
    "ImagingStudy",
    "Procedure",
)

_V2_READS = {"Patient": "r"}  # everything else is searched, so it needs "rs"
_IDENTITY = ("openid", "fhirUser", "online_access")

_V1_PERMS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(
    r"^(?P<ctx>patient|user|system)/(?P<type>[A-Za-z]+|\*)\.(?P<perm>[a-z*]+)(?:\?(?P<q>.*))?$"
)


#: What the app writes back (and searches, to find its earlier results): the result as a
#: RiskAssessment, or as a clinical note where the EHR takes no RiskAssessment.
WRITE_TYPES = ("RiskAssessment", "DocumentReference")


def _resource_scopes(profile: str, tenant: Tenant, offered: Collection[str] | None) -> list[str]:
    """Reads, then the write-back scopes the tenant's ``writeback`` may use.

    RiskAssessment is always searched (the app's earlier results); it is created only on the
    RiskAssessment rung. The clinical-note rung adds DocumentReference create (v2 ``.cs``: the
    search finds the app's earlier notes and avoids duplicates where conditional create is
    missing; v1 ``.write``). A type the EHR does not offer gets no scope (SMART asks for the
    fewest scopes needed).
    """
    def has(t: str) -> bool:
        return offered is None or t in offered

    reads = [t for t in READ_TYPES if has(t) or t == "Patient"]
    ra = "RiskAssessment"
    note = "DocumentReference"
    if profile == "v1":
        out = [f"patient/{t}.read" for t in reads]
        if has(ra):
            out += [f"patient/{ra}.read"] + (
                [f"patient/{ra}.write"] if tenant.writes_risk_assessment else [])
        if has(note) and tenant.writes_note:  # read: the app's notes are found by search
            out += [f"patient/{note}.read", f"patient/{note}.write"]
        return out
    out = [f"patient/{t}.{_V2_READS.get(t, 'rs')}" for t in reads]
    if has(ra):
        out.append(f"patient/{ra}.cs" if tenant.writes_risk_assessment else f"patient/{ra}.s")
    if has(note) and tenant.writes_note:
        out.append(f"patient/{note}.cs")
    return out


def scope_profile(tenant: Tenant, capabilities: tuple[str, ...]) -> str:
    """v2 unless the tenant says v1, or the server advertises v1 permissions and not v2."""
    v1_only = "permission-v1" in capabilities and "permission-v2" not in capabilities
    return "v1" if tenant.scopes == "v2" and v1_only else tenant.scopes


def requested_scopes(tenant: Tenant, *, ehr_launch: bool, profile: str | None = None,
                     offered: Collection[str] | None = None) -> str:
    """``launch`` (EHR) or ``launch/patient`` (standalone), identity, and reads.

    ``profile`` ("v1"/"v2") overrides the tenant's profile; explicit scope strings are kept.
    ``offered`` (the types the EHR offers, None: unknown) leaves out scopes for types the EHR
    does not have (the minimum; Oracle's app review asks for exactly that).
    """
    if tenant.scopes in ("v1", "v2"):
        profile = profile or tenant.scopes
        context = ["launch", "launch/patient"] if ehr_launch else ["launch/patient"]
        return " ".join([*context, *_IDENTITY, *_resource_scopes(profile, tenant, offered)])
    scopes = tenant.scopes.split()
    if ehr_launch and "launch" not in scopes:
        scopes.insert(0, "launch")  # SMART requires it: the launch handle is useless without it
    if not ehr_launch:
        scopes = [s for s in scopes if s != "launch"]  # no launch handle to go with it
    return " ".join(scopes)


@dataclass(frozen=True)
class ResourceGrant:
    context: str  # patient | user | system
    resource: str  # a type or "*"
    perms: str  # a subset of "cruds"
    restricted: bool  # a v2 "?param=value" constraint narrows it


def _parse_one(token: str) -> ResourceGrant | None:
    match = _SCOPE.match(token)
    if match is None:
        return None
    perm = match["perm"]
    if perm in _V1_PERMS:
        perms = _V1_PERMS[perm]
    elif re.fullmatch(r"c?r?u?d?s?", perm) and perm:
        perms = perm
    else:
        return None  # out-of-order or unknown suffix: grants nothing
    return ResourceGrant(match["ctx"], match["type"], perms, match["q"] is not None)


@dataclass(frozen=True)
class GrantedScopes:
    raw: tuple[str, ...]
    resources: tuple[ResourceGrant, ...]
    #: True: the grant named no resource scope the app could parse, so these are the
    #: *requested* scopes, and the EHR's 403s say what is withheld (see ``effective``).
    assumed: bool = False

    @classmethod
    def parse(cls, scope: str) -> GrantedScopes:
        tokens = tuple(scope.split())
        grants = tuple(g for g in (_parse_one(t) for t in tokens) if g is not None)
        return cls(tokens, grants)

    @classmethod
    def effective(cls, granted: str, requested: str) -> GrantedScopes:
        """What the app acts on: the grant, or the request when the grant is unreadable.

        Some EHRs answer with scopes in their own format (Epic's documentation shows grants
        such as ``Patient.read Patient.search``). Read as SMART, such a grant allows nothing
        and every read would be skipped as withheld; taken as "what was requested", each read
        is tried and the EHR's own 403 marks what it really withholds.
        """
        parsed = cls.parse(granted)
        if parsed.resources or not requested:
            return parsed
        fallback = cls.parse(requested)
        return cls(parsed.raw, fallback.resources, assumed=bool(fallback.resources))

    def has(self, scope: str) -> bool:
        return scope in self.raw

    def allows(self, resource: str, perm: str) -> bool:
        """True when some patient- or user-level grant covers ``perm`` on ``resource``."""
        return any(
            g.context in ("patient", "user")
            and g.resource in (resource, "*")
            and all(p in g.perms for p in perm)
            for g in self.resources
        )

    def can_search(self, resource: str) -> bool:
        return self.allows(resource, "s") or (resource == "Patient" and self.allows(resource, "r"))

    def can_create(self, resource: str) -> bool:
        return self.allows(resource, "c")

    def missing_reads(self) -> tuple[str, ...]:
        return tuple(t for t in READ_TYPES if not self.can_search(t))

    @property
    def read_only(self) -> bool:
        """No write-back rung is granted: neither a RiskAssessment nor a clinical note."""
        return not (self.can_create("RiskAssessment") or self.can_create("DocumentReference"))
