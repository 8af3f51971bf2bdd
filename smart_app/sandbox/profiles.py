"""EHR profiles: how the sandbox behaves on writes, so every write-back rung has a server to meet.

Production EHRs differ most in what they let an app write: some take a ``RiskAssessment`` with
conditional create, many take only clinical notes (``DocumentReference``), some ignore
``If-None-Exist``, and many launches are read-only. A profile bundles those behaviours, and the
CapabilityStatement (``/metadata``) tells the truth about them, because the app decides its
write-back rung from that statement and the granted scopes.

A profile is chosen with ``SandboxConfig.ehr_profile`` (``pml-risk demo --ehr-profile NAME``)
and can be switched at runtime with ``POST /sandbox/_control {"ehr_profile": NAME}``. New
profiles (vendor-like behaviours) are new entries in ``PROFILES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: ``prefer``: the create answer honours ``Prefer`` (representation by default);
#: ``empty``: always an empty body with ``Location`` (as several production servers do).
CreateAnswer = Literal["prefer", "empty"]

RISK_ASSESSMENT = "RiskAssessment"
DOCUMENT_REFERENCE = "DocumentReference"


@dataclass(frozen=True)
class EhrProfile:
    """The write behaviour of one kind of EHR.

    ``creatable``: the types whose ``create`` is accepted (any other create is a 405 with an
    OperationOutcome, and the CapabilityStatement lists no ``create`` for it).
    ``conditional_create``: ``If-None-Exist`` is honoured (and advertised); when False the
    header is ignored and every create makes a new resource, as on servers without the feature.
    ``create_answer``: the body of a successful create (see ``CreateAnswer``).
    """

    name: str
    description: str
    creatable: frozenset[str]
    conditional_create: bool = True
    create_answer: CreateAnswer = "prefer"

    def can_create(self, resource_type: str) -> bool:
        return resource_type in self.creatable


PROFILES: Mapping[str, EhrProfile] = {
    profile.name: profile
    for profile in (
        EhrProfile(
            "full",
            "RiskAssessment and DocumentReference create, with conditional create",
            frozenset({RISK_ASSESSMENT, DOCUMENT_REFERENCE}),
        ),
        EhrProfile(
            "notes-only",
            "RiskAssessment read/search only; clinical notes (DocumentReference) create",
            frozenset({DOCUMENT_REFERENCE}),
        ),
        EhrProfile(
            "no-conditional-create",
            "RiskAssessment and DocumentReference create; If-None-Exist is ignored",
            frozenset({RISK_ASSESSMENT, DOCUMENT_REFERENCE}),
            conditional_create=False,
        ),
        EhrProfile(
            "read-only",
            "no create of anything",
            frozenset(),
        ),
    )
}
DEFAULT_PROFILE = "full"


def find_profile(name: str) -> EhrProfile:
    """The profile called ``name``; ValueError naming the known ones otherwise."""
    found = PROFILES.get(name)
    if found is None:
        raise ValueError(f"unknown EHR profile {name!r} (known: {', '.join(PROFILES)})")
    return found
