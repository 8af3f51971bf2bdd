"""EHR profiles: how the sandbox behaves, so every write-back rung and every vendor habit the app
must cope with has a server to meet.

Production EHRs differ most in what they let an app write: some take a ``RiskAssessment`` with
conditional create, many take only clinical notes (``DocumentReference``), some ignore
``If-None-Exist``, and many launches are read-only. A profile bundles those behaviours, and the
CapabilityStatement (``/metadata``) tells the truth about them, because the app decides its
write-back rung from that statement and the granted scopes.

The vendor-like profiles (``epic-like``, ``oracle-like``) add how such a server reads and signs
in: the types it does not offer, ``_include`` and page caps, medications contained rather than
standalone, where the id_token's issuer and keys are, token lifetimes, refresh tokens that do
not rotate, grants written in the vendor's format, and the notes each vendor accepts (an
encounter required, ``identifier`` not kept, Oracle's create fields). Which published source
each behaviour comes from is listed in the sandbox README ("Vendor-like profiles").

A profile is chosen with ``SandboxConfig.ehr_profile`` (``pml-risk demo --ehr-profile NAME``)
and can be switched at runtime with ``POST /sandbox/_control {"ehr_profile": NAME}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: ``prefer``: the create answer honours ``Prefer`` (representation by default);
#: ``empty``: always an empty body with ``Location`` (as several production servers do).
CreateAnswer = Literal["prefer", "empty"]
#: Where id_tokens come from: ``fhir`` the FHIR base (issuer and jwks_uri in the SMART
#: configuration); ``oauth-server`` the OAuth server's own base on the same host, found by
#: OpenID discovery under it; ``tenant-issuer`` a per-tenant path on the authorization host
#: (``tenants/<t>/oidc/idsps/<t>/``), with ``jwks_uri`` but no ``issuer`` in the SMART
#: configuration.
Identity = Literal["fhir", "oauth-server", "tenant-issuer"]

RISK_ASSESSMENT = "RiskAssessment"
DOCUMENT_REFERENCE = "DocumentReference"
MEDICATION_STATEMENT = "MedicationStatement"
#: Types whose searches take ``_include=<type>:medication``.
MEDICATION_USERS = ("MedicationAdministration", "MedicationStatement", "MedicationRequest")


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
    # -- reading (the defaults are a fully capable server) ------------------------------------
    #: Types left out of the CapabilityStatement; every call on them is a 404 not-supported.
    not_offered: frozenset[str] = frozenset()
    #: Types whose ``<type>:medication`` is listed in ``searchInclude`` (and honoured; any
    #: other ``_include`` is a 400). None: the three medication users all list it.
    medication_includes: frozenset[str] | None = None
    #: Medications come contained in the resource that names them, never standalone.
    contained_medications: bool = False
    #: The largest page the server returns (a larger ``_count`` is cut to it).
    max_count: int | None = None
    #: Types whose ``identifier`` search is not offered (not listed; a 400 when used).
    no_identifier_search: frozenset[str] = frozenset()
    #: The medication list (MedicationStatement, not offered) comes as documented home
    #: medications among the MedicationRequests (``reportedBoolean``), as Oracle documents.
    statements_as_requests: bool = False
    #: Natalizumab administrations are not served (Epic's published catalog lists
    #: MedicationAdministration for lines, drains and airways only): a search finds none, and
    #: the infusions appear only as the natalizumab order that scheduled them.
    infusions_as_orders: bool = False
    # -- signing in (initial values of the controls of the same name) -------------------------
    identity: Identity = "fhir"
    token_lifetime: int | None = None  # None: the sandbox default (3600 s)
    rotate_refresh_tokens: bool = True
    grant_format: str = "smart"  # "smart" | "epic" (``Observation.read Observation.search``)
    v1_only: bool = False
    authorize_post: bool = True  # listed in the SMART capabilities (and accepted either way)
    # -- notes (DocumentReference create), as each vendor documents them ----------------------
    #: A note needs ``context.encounter``: an Encounter of the same patient (else 422).
    notes_need_encounter: bool = False
    #: A note's ``identifier`` is not stored (so no later search or read shows it).
    drops_note_identifier: bool = False
    #: Only the vendor's create fields (``identifier``, ``category``, ``date``, ``description``
    #: are a 422 "Body contained unsupported fields"), exactly one attachment with a listed
    #: contentType written exactly, and ``context.period.end``.
    strict_note_create: bool = False

    def can_create(self, resource_type: str) -> bool:
        return resource_type in self.creatable

    def offers(self, resource_type: str) -> bool:
        return resource_type not in self.not_offered

    def lists_include(self, resource_type: str) -> bool:
        """``<resource_type>:medication`` is in this server's ``searchInclude``."""
        if self.medication_includes is None:
            return resource_type in MEDICATION_USERS
        return resource_type in self.medication_includes


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
        EhrProfile(
            "epic-like",
            "Epic on FHIR as published: no MedicationStatement or RiskAssessment, no "
            "natalizumab MedicationAdministration (its orders only), notes "
            "without conditional create (201, empty body), _include only for "
            "MedicationRequest, id_tokens from the OAuth server, non-rotating refresh tokens, "
            "grants written as API names",
            frozenset({DOCUMENT_REFERENCE}),
            conditional_create=False,
            create_answer="empty",
            not_offered=frozenset({MEDICATION_STATEMENT, RISK_ASSESSMENT}),
            medication_includes=frozenset({"MedicationRequest"}),
            no_identifier_search=frozenset({DOCUMENT_REFERENCE}),
            statements_as_requests=True,
            infusions_as_orders=True,
            identity="oauth-server",
            token_lifetime=3600,
            rotate_refresh_tokens=False,
            grant_format="epic",
            authorize_post=False,
            notes_need_encounter=True,
            drops_note_identifier=True,
        ),
        EhrProfile(
            "oracle-like",
            "Oracle Health Millennium R4 as published: no MedicationStatement, standalone "
            "Medication, ImagingStudy or RiskAssessment, medications contained, no _include, "
            "pages of at most 200, notes without conditional create (201, empty body), "
            "id_tokens from a tenant path on the authorization host, 570 s tokens, "
            "non-rotating refresh tokens, SMART v1 scopes",
            frozenset({DOCUMENT_REFERENCE}),
            conditional_create=False,
            create_answer="empty",
            # Imaging is read as radiology reports (DiagnosticReport) and procedures; the R4
            # catalog lists no ImagingStudy.
            not_offered=frozenset({MEDICATION_STATEMENT, "Medication", RISK_ASSESSMENT,
                                   "ImagingStudy"}),
            medication_includes=frozenset(),
            contained_medications=True,
            max_count=200,
            no_identifier_search=frozenset({DOCUMENT_REFERENCE}),
            statements_as_requests=True,
            identity="tenant-issuer",
            token_lifetime=570,
            rotate_refresh_tokens=False,
            v1_only=True,
            authorize_post=True,
            notes_need_encounter=True,
            drops_note_identifier=True,
            strict_note_create=True,
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
