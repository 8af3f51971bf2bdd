"""authlib authorization server, tightened to SMART App Launch 2.2 rules.

authlib supplies the OAuth machinery; the subclasses here add what SMART needs and authlib does
not do by default: PKCE S256 for *every* client, ``aud``/``state``/
``launch`` checks, refresh tokens only with ``online_access``/``offline_access``, rotation, a
``private_key_jwt`` method that accepts RS384/ES384, caps ``exp`` at five minutes and rejects
replayed ``jti``s, and SMART launch context plus an OpenID ``id_token`` in the token response.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from . import scopes
from .config import TOKEN_AUTH_METHOD, SandboxClient
from .grants_store import AuthorizationCode, LaunchContext, TokenRecord
from .state import (
    SandboxState,
    fhir_base,
    id_token_issuer,
    resolve_origin_relative,
    root_url,
    sandbox_state,
)

ASSERTION_ALGORITHMS = ("RS384", "ES384")
TOKEN_AUTH_METHODS = ["client_secret_basic", "private_key_jwt", "none"]


class ClientModel(ClientMixin):  # type: ignore[misc]
    """authlib's view of a registered ``SandboxClient``."""

    def __init__(self, client: SandboxClient) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> None:
        """SMART clients must send ``redirect_uri``; no default is ever assumed."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in {resolve_origin_relative(u) for u in self.client.redirect_uris}

    def check_client_secret(self, client_secret: str) -> bool:
        import secrets

        expected = self.client.client_secret
        return expected is not None and secrets.compare_digest(expected, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return True
        return TOKEN_AUTH_METHOD[self.client.auth] == method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":  # Backend Services: asymmetric clients only
            return self.client.auth == "private_key_jwt"
        return grant_type in ("authorization_code", "refresh_token")


class SandboxAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """The flask integration, bound to one sandbox's state instead of globals."""

    def __init__(self, state: SandboxState) -> None:
        super().__init__()
        self.state = state
        self.register_token_generator("default", self._generate_token)

    def query_client(self, client_id: str) -> ClientModel | None:
        client = self.state.client(client_id)
        return ClientModel(client) if client else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        now = time.time()
        code = getattr(request, "authorization_code", None)
        record = TokenRecord(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=request.client.get_client_id(),
            scope=token.get("scope", ""),
            context=request.user or LaunchContext(),  # Backend Services: no user, no launch
            issued_at=now,
            expires_at=now + token["expires_in"],
            refresh_expires_at=now + self.state.config.refresh_token_lifetime,
            code=code.code if isinstance(code, AuthorizationCode) else None,
        )
        self.state.grants.save_token(record)

    def _generate_token(
        self,
        grant_type: str,
        client: ClientModel,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """Opaque bearer tokens; a refresh token only when online/offline access was granted."""
        granted = scope or ""
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": generate_token(42),
            "expires_in": expires_in or self.state.controls.get().token_lifetime,
            "scope": granted,
        }
        if include_refresh_token and scopes.REFRESH_SCOPES & set(granted.split()):
            token["refresh_token"] = generate_token(48)
        return token


class SmartPKCE(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required for confidential clients too (SMART 2.x)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


def _patient_for_standalone(state: SandboxState, requested: str | None) -> str:
    if requested:
        if state.store.get("Patient", requested) is None:
            raise InvalidRequestError(f"Unknown patient '{requested}'")
        return requested
    listed = [p.id for p in state.store.patients if state.store.get("Patient", p.id)]
    candidates = listed or state.store.patient_ids()
    if not candidates:
        raise InvalidRequestError("The sandbox has no patients to choose from")
    return candidates[0]


def smart_authorize_checks(grant: Any) -> None:
    """Grant extension: SMART's extra authorize-request rules and launch-context resolution."""

    def check(grant: Any, redirect_uri: str) -> None:
        state = sandbox_state()
        data = grant.request.payload.data
        if not data.get("state"):
            raise InvalidRequestError("Missing 'state'")
        aud = (data.get("aud") or "").rstrip("/")
        if aud != fhir_base():
            raise InvalidRequestError(f"'aud' must be the FHIR base URL {fhir_base()}")
        requested = set((grant.request.payload.scope or "").split())
        handle = data.get("launch")
        if handle:
            if "launch" not in requested:
                raise InvalidScopeError("An EHR launch must request the 'launch' scope")
            context = state.grants.launch(handle)
            if context is None:
                raise InvalidRequestError("Unknown or expired 'launch'")
        else:
            if "launch" in requested:
                raise InvalidRequestError("Scope 'launch' needs the 'launch' parameter")
            wants_patient = "launch/patient" in requested or any(
                s.startswith("patient/") for s in requested
            )
            patient = _patient_for_standalone(state, data.get("patient")) if wants_patient else None
            context = LaunchContext(patient=patient, practitioner=state.config.default_practitioner)
        grant.request.smart_context = context

    grant.register_hook("after_validate_authorization_request_payload", check)


class SmartCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code grant with SMART context in the token response."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        state: SandboxState = self.server.state
        data = request.payload.data
        controls = state.controls.get()
        # Withheld for every launch (control) or for this launch only (``/launch?withhold=``).
        launch_held = request.user.withhold if isinstance(request.user, LaunchContext) else ()
        granted = scopes.grant(request.payload.scope, v1_only=controls.v1_only,
                               withhold=(*controls.withhold, *launch_held))
        state.grants.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=" ".join(granted),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                context=request.user,
                nonce=data.get("nonce"),
                expires_at=time.time() + state.config.code_lifetime,
            )
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> Any:
        return self.server.state.grants.find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: the code was claimed in ``validate_token_request``."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> LaunchContext:
        return authorization_code.context

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client auth, code, redirect_uri, PKCE hook
        code: AuthorizationCode = self.request.authorization_code
        if not self.server.state.grants.use_code(code.code):
            raise InvalidGrantError("Authorization code already used")

    def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
        status, token, headers = super().create_token_response()
        code: AuthorizationCode = self.request.authorization_code
        token.update(context_parameters(self.server.state, code.context))
        granted = set(token.get("scope", "").split())
        if {"openid", "fhirUser"} <= granted or {"openid", "profile"} <= granted:
            token["id_token"] = id_token(self.server.state, code)
        return status, shown_grant(self.server.state, token), headers


class SmartRefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Rotating refresh tokens: every use returns a new one and kills the old one.

    With ``rotate_refresh_tokens`` off, the answer carries no refresh token and the one used
    stays valid until it expires, as at Epic and Oracle Health.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _rotating(self) -> bool:
        state: SandboxState = self.server.state
        return state.controls.get().rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        grants_store = self.server.state.grants
        if self._rotating():
            return grants_store.take_refresh(refresh_token)  # type: ignore[no-any-return]
        return grants_store.find_refresh(refresh_token)  # type: ignore[no-any-return]

    def issue_token(self, user: Any, refresh_token: TokenRecord) -> dict[str, Any]:
        scope = refresh_token.get_scope()
        token: dict[str, Any] = self.generate_token(
            user=user, scope=scope, include_refresh_token=self._rotating())
        return token

    def authenticate_user(self, refresh_token: TokenRecord) -> LaunchContext:
        return refresh_token.context

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        """Already revoked when it was claimed in ``authenticate_refresh_token``."""

    def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
        status, token, headers = super().create_token_response()
        state: SandboxState = self.server.state
        if state.controls.get().refresh_includes_context:
            token.update(context_parameters(state, self.request.user))
        return status, shown_grant(state, token), headers


class SmartPrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` as SMART's client-confidential-asymmetric profile defines it."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, state: SandboxState) -> None:
        super().__init__(validate_jti=True, leeway=state.config.clock_skew)
        self.state = state

    def get_audiences(self) -> list[str]:
        return [f"{root_url()}auth/token"]

    def resolve_client_public_key(self, client: ClientModel) -> KeySet:
        registered = client.client
        if registered.auth != "private_key_jwt":
            raise InvalidClientError(description="The client is not registered for private_key_jwt")
        if registered.jwks is not None:
            data = registered.jwks
        else:
            try:
                response = requests.get(
                    str(registered.jwks_uri), timeout=self.state.config.jwks_fetch_timeout
                )
                response.raise_for_status()
                data = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise InvalidClientError(
                    description=_safe(f"Cannot fetch the client JWKS: {exc}")
                ) from exc
        try:
            return KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise InvalidClientError(description="The client JWKS is invalid") from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            header = jws.extract_compact(assertion.encode()).headers()
        except JoseError as exc:
            raise InvalidClientError(description="Malformed client assertion") from exc
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(description="Client assertion alg must be RS384 or ES384")
        if not header.get("kid"):
            raise InvalidClientError(description="Client assertion header needs 'kid'")
        if "jku" in header:
            client = self.state.client(str(_unverified_sub(assertion)))
            if client is None or header["jku"] != client.jwks_uri:
                raise InvalidClientError(description="'jku' differs from the registered JWKS URL")
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description=_safe(f"Bad client assertion: {exc}")) from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        limit = (
            time.time() + self.state.config.max_assertion_lifetime + self.state.config.clock_skew
        )
        if not isinstance(exp, int | float) or exp > limit:
            raise InvalidClientError(
                description="Client assertion 'exp' must be at most 5 minutes ahead"
            )
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return self.state.grants.claim_jti(str(claims["sub"]), str(jti), float(claims["exp"]))


def _safe(text: str) -> str:
    """OAuth error descriptions may only hold printable ASCII without ``"`` and ``\\``."""
    return "".join(ch if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\' else "'" for ch in text)


def _unverified_sub(assertion: str) -> Any:
    import json

    from joserfc.util import urlsafe_b64decode

    try:
        payload = assertion.split(".")[1]
        return json.loads(urlsafe_b64decode(payload.encode() + b"=" * (-len(payload) % 4)))["sub"]
    except (IndexError, ValueError, KeyError):
        return None


def context_parameters(state: SandboxState, context: LaunchContext) -> dict[str, Any]:
    """The SMART launch-context fields of a token response."""
    params: dict[str, Any] = {
        "need_patient_banner": context.need_patient_banner,
        "smart_style_url": f"{root_url()}smart-style.json",
    }
    if context.patient:
        params["patient"] = context.patient
    if context.encounter:
        params["encounter"] = context.encounter
    if context.intent:
        params["intent"] = context.intent
    if context.fhir_context:
        params["fhirContext"] = [dict(item) for item in context.fhir_context]
    if context.app_context:
        params["appContext"] = context.app_context
    if state.config.tenant:
        params["tenant"] = state.config.tenant
    return params


def shown_grant(state: SandboxState, token: dict[str, Any]) -> dict[str, Any]:
    """The token response as the client sees it: the grant (already saved, and enforced, in
    SMART syntax) rewritten in the vendor's format when ``grant_format`` asks for it."""
    if state.controls.get().grant_format == "epic" and isinstance(token.get("scope"), str):
        token["scope"] = scopes.api_style(token["scope"])
    return token


def id_token(state: SandboxState, code: AuthorizationCode) -> str:
    """An OpenID id_token (RS256) naming the practitioner as ``fhirUser``."""
    now = int(time.time())
    practitioner = code.context.practitioner or state.config.default_practitioner
    claims: dict[str, Any] = {
        "iss": id_token_issuer(),
        "sub": practitioner,
        "aud": code.client_id,
        "iat": now,
        "exp": now + 3600,
        "fhirUser": f"{fhir_base()}/Practitioner/{practitioner}",
        "name": "Dr. Ada Lovelace" if practitioner == "dr-ada" else practitioner,
    }
    if code.nonce:
        claims["nonce"] = code.nonce
    key = state.signing_key
    if state.controls.get().id_token_unpublished_key:
        key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=["RS256"])


def init_authorization(state: SandboxState) -> SandboxAuthorizationServer:
    """Build the authorization server of one sandbox and attach it to ``state``."""
    server = SandboxAuthorizationServer(state)
    server.register_client_auth_method("private_key_jwt", SmartPrivateKeyJWT(state))
    server.register_grant(SmartCodeGrant, [SmartPKCE(required=True), smart_authorize_checks])
    server.register_grant(SmartRefreshGrant)
    state.server = server
    return server
