"""Discovery documents: SMART configuration, OpenID configuration, JWKS and CapabilityStatement.

All URLs are built from the current request so the documents are right wherever the sandbox is
mounted and whatever port a test server got. These routes need no token (SMART requires that).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from . import scopes
from .profiles import MEDICATION_USERS, EhrProfile
from .state import DEFAULT_TENANT, fhir_base, id_token_issuer, issuer, root_url, sandbox_state
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


def _endpoints() -> dict[str, str]:
    return {
        "authorization_endpoint": f"{root_url()}auth/authorize",
        "token_endpoint": f"{root_url()}auth/token",
        "jwks_uri": _jwks_uri(),
    }


def _jwks_uri() -> str:
    """Oracle-style servers publish their keys at the authorization host's ``/jwk``."""
    if sandbox_state().controls.get().profile.identity == "tenant-issuer":
        return f"{root_url()}jwk"
    return f"{fhir_base()}/.well-known/jwks.json"


def _identity_fields() -> dict[str, str]:
    """``issuer`` and ``jwks_uri`` of the SMART configuration, as the profile publishes them:
    both (the FHIR base signs), neither (OpenID discovery under the OAuth server's base), or
    only ``jwks_uri`` (Oracle-style: the issuer is a tenant path on the authorization host)."""
    identity = sandbox_state().controls.get().profile.identity
    if identity == "oauth-server":
        return {}
    if identity == "tenant-issuer":
        return {"jwks_uri": _jwks_uri()}
    return {"issuer": issuer(), "jwks_uri": _jwks_uri()}


def smart_configuration() -> dict[str, Any]:
    controls = sandbox_state().controls.get()
    v1_only = controls.v1_only
    capabilities = list(CAPABILITIES_V1)
    if not v1_only:
        capabilities.insert(capabilities.index("permission-v1"), "permission-v2")
    if not controls.profile.authorize_post:
        capabilities.remove("authorize-post")
    endpoints = {k: v for k, v in _endpoints().items() if k != "jwks_uri"}
    return {
        **_identity_fields(),
        **endpoints,
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
    if sandbox_state().controls.get().profile.identity != "fhir":
        return _not_here()
    return _openid_configuration()


@blueprint.route("/auth/.well-known/openid-configuration")
def oauth_server_openid_config() -> Response:
    """The OpenID configuration under the OAuth server's base (``oauth-server`` identity)."""
    if sandbox_state().controls.get().profile.identity != "oauth-server":
        return _not_here()
    return _openid_configuration()


@blueprint.route("/tenants/<tenant>/oidc/idsps/<idsp>/.well-known/openid-configuration")
def tenant_openid_config(tenant: str, idsp: str) -> Response:
    """The OpenID configuration under an Oracle-style tenant issuer path."""
    state = sandbox_state()
    expected = state.config.tenant or DEFAULT_TENANT
    if state.controls.get().profile.identity != "tenant-issuer" or tenant != expected or (
            idsp != expected):
        return _not_here()
    return _openid_configuration()


@blueprint.route("/jwk")
def authorization_host_jwks() -> Response:
    """The keys at the authorization host (``tenant-issuer`` identity)."""
    if sandbox_state().controls.get().profile.identity != "tenant-issuer":
        return _not_here()
    return jwks_route()


def _not_here() -> Response:
    """This EHR profile publishes no such document."""
    response = jsonify({"error": "not published by this EHR profile"})
    response.status_code = 404
    return response


def _openid_configuration() -> Response:
    return jsonify(
        {
            "issuer": id_token_issuer(),
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
    """One type's entry; ``create``, ``conditionalCreate``, its search parameters and
    ``searchInclude`` as the EHR profile behaves."""
    interactions = ["read", "search-type"]
    entry: dict[str, Any] = {"type": resource_type}
    if profile.can_create(resource_type):
        interactions.append("create")
        entry["conditionalCreate"] = profile.conditional_create
    entry["interaction"] = [{"code": code} for code in interactions]
    params: tuple[str, ...] = (
        _SEARCH_PARAMS if resource_type in COMPARTMENT_TYPES else ("_id", "identifier"))
    if resource_type in profile.no_identifier_search:
        params = tuple(p for p in params if p != "identifier")
    entry["searchParam"] = [{"name": name, "type": _param_type(name)} for name in params]
    if resource_type in MEDICATION_USERS and profile.lists_include(resource_type):
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
    types = {t for t in types if controls.profile.offers(t)}
    types.difference_update(controls.not_offered)
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
