"""Discovery documents: SMART configuration, OpenID configuration, JWKS and CapabilityStatement.

All URLs are built from the current request so the documents are right wherever the sandbox is
mounted and whatever port a test server got. These routes need no token (SMART requires that).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from . import scopes
from .profiles import EhrProfile
from .state import fhir_base, issuer, root_url, sandbox_state
from .store import COMPARTMENT_TYPES

blueprint = Blueprint("sandbox_discovery", __name__)

CAPABILITIES_V1 = (
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-v1",
    "permission-patient",
    "permission-user",
    "permission-offline",
    "permission-online",
)
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
#: Search parameters advertised per type in the CapabilityStatement.
_SEARCH_PARAMS = ("_id", "patient", "code", "category", "status", "date", "identifier",
                  "_count", "_sort")
#: Types whose searches take ``_include=<type>:medication`` (listed in ``searchInclude``).
MEDICATION_USERS = ("MedicationAdministration", "MedicationStatement", "MedicationRequest")


def _endpoints() -> dict[str, str]:
    return {
        "authorization_endpoint": f"{root_url()}auth/authorize",
        "token_endpoint": f"{root_url()}auth/token",
        "jwks_uri": f"{fhir_base()}/.well-known/jwks.json",
    }


def smart_configuration() -> dict[str, Any]:
    v1_only = sandbox_state().controls.get().v1_only
    capabilities = list(CAPABILITIES_V1)
    if not v1_only:
        capabilities.insert(capabilities.index("permission-v1"), "permission-v2")
    return {
        "issuer": issuer(),
        **_endpoints(),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes.supported_scopes(v1_only=v1_only),
        "capabilities": capabilities,
    }


@blueprint.route("/fhir/.well-known/smart-configuration")
def smart_config_route() -> Response:
    return jsonify(smart_configuration())


@blueprint.route("/fhir/.well-known/openid-configuration")
def openid_config_route() -> Response:
    return jsonify(
        {
            "issuer": issuer(),
            **_endpoints(),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "fhirUser", "profile"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "fhirUser", "name", "nonce"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "private_key_jwt",
            ],
            "code_challenge_methods_supported": ["S256"],
        }
    )


@blueprint.route("/fhir/.well-known/jwks.json")
def jwks_route() -> Response:
    key = sandbox_state().signing_key
    response = jsonify({"keys": [key.as_dict(private=False)]})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _resource_entry(resource_type: str, profile: EhrProfile) -> dict[str, Any]:
    """One type's entry; ``create`` and ``conditionalCreate`` as the EHR profile behaves."""
    interactions = ["read", "search-type"]
    entry: dict[str, Any] = {"type": resource_type}
    if profile.can_create(resource_type):
        interactions.append("create")
        entry["conditionalCreate"] = profile.conditional_create
    entry["interaction"] = [{"code": code} for code in interactions]
    params = _SEARCH_PARAMS if resource_type in COMPARTMENT_TYPES else ("_id", "identifier")
    entry["searchParam"] = [{"name": name, "type": _param_type(name)} for name in params]
    if resource_type in MEDICATION_USERS:
        entry["searchInclude"] = [f"{resource_type}:medication"]
    return entry


def _param_type(name: str) -> str:
    return {
        "patient": "reference",
        "date": "date",
        "_count": "number",
        "_sort": "string",
    }.get(name, "token")


@blueprint.route("/fhir/metadata")
def metadata() -> Response:
    """An R4 CapabilityStatement, with the (deprecated) oauth-uris security extension."""
    state = sandbox_state()
    controls = state.controls.get()
    types = set(state.store.types()) | {"Patient", "Observation", "MedicationAdministration"}
    types.update(("RiskAssessment", "DocumentReference"))
    if controls.no_risk_assessment:
        types.discard("RiskAssessment")
    endpoints = _endpoints()
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "pml-risk sandbox EHR", "version": "1"},
        "implementation": {"description": "pml-risk sandbox EHR", "url": fhir_base()},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": OAUTH_URIS,
                            "extension": [
                                {
                                    "url": "authorize",
                                    "valueUri": endpoints["authorization_endpoint"],
                                },
                                {"url": "token", "valueUri": endpoints["token_endpoint"]},
                            ],
                        }
                    ],
                },
                "resource": [_resource_entry(t, controls.profile) for t in sorted(types)],
            }
        ],
    }
    response = jsonify(body)
    response.mimetype = "application/fhir+json"
    return response
