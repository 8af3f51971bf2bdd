"""``/launch`` (EHR launch), ``/standalone`` (standalone launch) and ``/callback``.

The order of checks is the security argument:

* ``iss`` is matched against the configured tenants *before any outbound request*, so a
  forged launch cannot make the app fetch attacker metadata or post its credentials there;
* ``state`` (256 bits, CSPRNG) and the PKCE verifier stay server-side; ``state`` is taken from
  the store (single use, ten minutes) and must belong to this browser's session;
* the callback's own ``iss`` (RFC 9207) is compared with the discovered issuer, never used to
  choose a server; the FHIR server is always the one the flow started with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, g, redirect, render_template, request, session, url_for
from requests import RequestException
from werkzeug.wrappers import Response

from ...config import Tenant
from ...fhir.capability import offered_types
from ...ops import audit
from ...smart import context as launch_context
from ...smart.client_auth import oauth_session
from ...smart.id_token import IdTokenError, validate
from ...smart.launches import Launch, PendingAuth
from ...smart.scopes import GrantedScopes, requested_scopes, scope_profile
from ...smart.store import derive_key
from ...smart.tokens import TokenSet
from ..errors import AppError
from ..services import browser_sid, services

log = logging.getLogger(__name__)

bp = Blueprint("launch", __name__)

MAX_AUTHORIZE_URL = 2000  # longer URLs are truncated by some proxies and embedded browsers


def _tenant_or_reject(iss: str) -> Tenant:
    tenant = services().settings.tenant_for(iss)
    if tenant is None:
        log.warning("launch refused: unregistered iss")
        audit.event("launch.refused", iss=iss[:200], error="unknown-iss")
        raise AppError(
            400,
            "This EHR is not registered with the app",
            "The launch came from a FHIR server this app is not configured for, so nothing "
            "was contacted. Ask your administrator to register it.",
            "unknown-iss",
        )
    return tenant


MAX_LAUNCHES = 20  # launches one browser keeps open (tabs); the cookie stays small


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _start(tenant: Tenant, launch: str | None, profile: str | None = None) -> Response:
    svc = services()
    limits = svc.settings.limits
    if not svc.repo.admit_pending(request.remote_addr or "?", limits.pending_per_address,
                                  limits.pending_total):
        log.warning("launch refused: too many pending sign-ins")
        audit.event("launch.refused", error="too-many-pending")
        raise AppError(429, "Too many sign-ins at once",
                       "More sign-ins were started than the app accepts in ten minutes. Wait a "
                       "few minutes, then launch the app again from the EHR.", "too-many-pending")
    config = svc.smart_config(tenant)
    if "S256" not in config.code_challenge_methods_supported:
        # PKCE is sent anyway; servers that support it without saying so exist.
        log.info("the EHR does not advertise S256; sending PKCE regardless")
    sid = browser_sid(create=True)
    assert sid is not None
    state = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43–128
    if tenant.scopes in ("v1", "v2"):
        profile = profile or scope_profile(tenant, config.capabilities)
    scope = requested_scopes(tenant, ehr_launch=launch is not None, profile=profile,
                             offered=offered_types(tenant, svc.statement(tenant)))
    client = oauth_session(
        tenant,
        token_endpoint=config.token_endpoint,
        keys=svc.keys,
        redirect_uri=svc.redirect_uri,
        scope=scope,
    )
    extra = {"aud": tenant.iss}  # the FHIR base, after the allowlist check
    if "openid" in scope.split():
        extra["nonce"] = oidc_nonce(svc.settings.secret_key, state)
    if launch is not None:
        extra["launch"] = launch
    url, _ = client.create_authorization_url(
        config.authorization_endpoint, state=state, code_verifier=verifier, **extra
    )
    svc.repo.put_pending(
        state,
        PendingAuth(
            sid=sid,
            iss=tenant.iss,
            launch=launch,
            code_verifier=verifier,
            redirect_uri=svc.redirect_uri,
            scope=scope,
            created_at=time.time(),
            profile=profile or "",
        ),
    )
    log.info("authorize request (%s launch, tenant %s)", "EHR" if launch else "standalone",
             tenant.name)
    # a form POST where the server takes one, for EHR launches (embedded browsers, some
    # with an old engine, cut long URLs) and for any request too long for a URL.
    post = config.supports("authorize-post") and (launch is not None
                                                   or len(url) > MAX_AUTHORIZE_URL)
    audit.event("authorize.redirect", tenant=tenant.name, iss=tenant.iss,
                launch_type="ehr" if launch else "standalone", requested_scopes=scope,
                status="post-form" if post else "redirect")
    if post:
        return _post_form(url)  # long scope strings go in a form body
    return redirect(url, code=302)


def _post_form(url: str) -> Response:
    """An auto-submitting form to the authorize endpoint (same window, as Cerner requires)."""
    parts = urlsplit(url)
    action = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    g.form_action = f"{parts.scheme}://{parts.netloc}"
    g.script_nonce = secrets.token_urlsafe(16)
    html = render_template(
        "authorize_post.html", action=action, fields=parse_qsl(parts.query),
        nonce=g.script_nonce,
    )
    return Response(html, mimetype="text/html")


def oidc_nonce(secret_key: str, state: str) -> str:
    """The OpenID ``nonce`` for a sign-in: an HMAC of its ``state``, so nothing more needs
    storing (the state itself is single-use and bound to the browser session)."""
    mac = hmac.new(derive_key(secret_key, "oidc-nonce"), state.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _kid(tenant: Tenant) -> str | None:
    """Which key signs this tenant's client assertions (rotation shows up in the trail)."""
    keys = services().keys
    if tenant.auth != "private_key_jwt" or keys is None:
        return None
    return str(keys.for_alg(tenant.signing_alg).kid)


def _oauth_error(exc: Exception) -> str:
    """The OAuth error code (``invalid_client``...) or the exception type; never its text."""
    code = getattr(exc, "error", None)
    return f"{type(exc).__name__}:{code}" if isinstance(code, str) else type(exc).__name__


@bp.get("/launch")
def ehr_launch() -> Response:
    """Both ``iss`` and ``launch`` are required; the check on ``iss`` comes first."""
    iss = request.args.get("iss", "")
    launch = request.args.get("launch", "")
    if not iss or not launch:
        raise AppError(
            400,
            "Incomplete launch",
            "An EHR launch needs both iss and launch parameters. Start the app from the EHR.",
            "bad-launch",
        )
    tenant = _tenant_or_reject(iss)
    _received(tenant, "ehr")
    return _start(tenant, launch)


def _received(tenant: Tenant, launch_type: str) -> None:
    audit.bind(tenant=tenant.name, iss=tenant.iss)
    audit.event("launch.received", launch_type=launch_type)


@bp.get("/standalone")
def standalone_launch() -> Response:
    """No launch handle; the EHR shows its own patient picker (``launch/patient``)."""
    iss = request.args.get("iss", "")
    if not iss:
        raise AppError(400, "No EHR chosen", "Choose an EHR to sign in to.", "bad-launch")
    tenant = _tenant_or_reject(iss)
    _received(tenant, "standalone")
    return _start(tenant, None)


def _pending() -> PendingAuth:
    state = request.args.get("state", "")
    pending = services().repo.take_pending(state) if state else None
    if pending is None:
        raise AppError(
            400,
            "This sign-in link is no longer valid",
            "The sign-in was already completed, has expired (10 minutes), or did not come "
            "from this app. Launch the app again from the EHR.",
            "bad-state",
        )
    if pending.sid != browser_sid():
        raise AppError(
            400,
            "This sign-in belongs to another browser session",
            "The sign-in was started in a different browser or the app's cookie was blocked. "
            "Launch the app again from the EHR.",
            "state-session-mismatch",
        )
    return pending


@bp.get("/callback")
def callback() -> Response:
    pending = _pending()  # consumes the state, whatever happens next
    svc = services()
    known = svc.settings.tenant_for(pending.iss)
    audit.bind(iss=pending.iss, tenant=known.name if known else None)
    if request.args.get("error") == "invalid_scope" and pending.profile == "v2":
        # some servers claim v2 and reject it; ask again, once, in v1.
        tenant = _tenant_or_reject(pending.iss)
        log.info("v2 scopes refused; retrying the authorization with v1 scopes")
        audit.event("authorize.retry", tenant=tenant.name, error="invalid_scope")
        return _start(tenant, pending.launch, profile="v1")
    if "error" in request.args:  # the EHR refused, or the user declined
        error = request.args.get("error", "")[:64]
        log.info("authorization refused by the EHR: %s", error)
        raise AppError(
            403,
            "Access was not granted",
            "The EHR did not authorize the app"
            + (" (access denied)." if error == "access_denied" else f" ({error}).")
            + " Nothing was read from the chart.",
            "authorization-denied",
        )
    tenant = _tenant_or_reject(pending.iss)
    config = svc.smart_config(tenant)
    callback_iss = request.args.get("iss")
    # RFC 9207: compare with the discovered issuer; without one, only this EHR will do.
    expected = (config.issuer,) if config.issuer else (tenant.iss, _origin(
        config.authorization_endpoint))
    if tenant.oidc_issuer:
        expected = (*expected, tenant.oidc_issuer)
    if callback_iss and callback_iss.rstrip("/") not in tuple(e.rstrip("/") for e in expected):
        raise AppError(400, "Sign-in came back from the wrong server",
                       "The authorization response names another issuer.", "issuer-mismatch")
    code = request.args.get("code", "")
    if not code:
        raise AppError(400, "Incomplete sign-in", "The EHR sent no authorization code.",
                       "bad-callback")
    client = oauth_session(
        tenant,
        token_endpoint=config.token_endpoint,
        keys=svc.keys,
        redirect_uri=pending.redirect_uri,
        outbound=svc.http,
    )
    try:
        response = dict(
            client.fetch_token(
                config.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.code_verifier,
                redirect_uri=pending.redirect_uri,
                timeout=svc.settings.fhir_timeout,
                allow_redirects=False,  # a redirect would replay the code and verifier elsewhere
            )
        )
        tokens = TokenSet.from_response(response, pending.scope)
    except (OAuthError, OAuth2Error, RequestException, ValueError, TypeError,
            RecursionError) as exc:
        log.warning("token exchange failed: %s", type(exc).__name__)
        audit.event("token.exchange", status="failed", client_auth=tenant.auth,
                    kid=_kid(tenant), error=_oauth_error(exc))
        raise AppError(502, "The EHR did not issue an access token",
                       "The sign-in could not be completed. Launch the app again.",
                       "token-exchange") from exc
    audit.event("token.exchange", status="ok", client_auth=tenant.auth, kid=_kid(tenant),
                scopes=tokens.scope)
    if GrantedScopes.effective(tokens.scope, pending.scope).assumed:
        # The grant, kept verbatim above, names no SMART resource scope: the app acts on the
        # requested set and lets the EHR's 403s say what is withheld.
        log.info("granted scopes are not SMART resource scopes; acting on the requested set")
        audit.event("scope.unparsed", scopes=tokens.scope, requested_scopes=pending.scope,
                    status="requested-set")
    try:
        ctx = launch_context.parse(response)
    except launch_context.MissingPatientContext as exc:
        raise AppError(400, "No patient selected",
                       "The EHR launched the app without a patient. Open a patient's chart "
                       "first, then launch the app.", "no-patient") from exc
    fhir_user = None
    user_name = None
    user_status = "none"  # no id_token: the EHR did not say who is signed in
    if tokens.id_token is not None:
        try:
            identity = validate(tokens.id_token, http=svc.http, config=config,
                                client_id=tenant.client_id, jwks=svc.jwks,
                                timeout=svc.settings.fhir_timeout,
                                nonce=oidc_nonce(svc.settings.secret_key,
                                                 request.args.get("state", "")),
                                oidc_issuer=tenant.oidc_issuer)
        except IdTokenError as exc:
            log.warning("id_token rejected: %s", exc)
            audit.event("id_token.rejected", error=type(exc).__name__)
            raise AppError(502, "The EHR's identity token is not valid",
                           "The app could not verify who is signed in.", "id-token") from exc
        if identity.verified:
            fhir_user = identity.fhir_user
            user_name = identity.name
            user_status = "verified"
            audit.event("id_token.validated", user=fhir_user)
        else:
            # A key the issuer does not publish (after one refetch): the launch goes on, but
            # nothing in the token is trusted, so no user is named anywhere.
            user_status = "unverified"
            log.warning("id_token signed with an unknown key; user not verified")
            audit.event("id_token.unverified", status="unverified", error="unknown-kid")
    elif "openid" in pending.scope.split():
        log.info("no id_token although openid was requested; user unknown")
    launch = Launch(
        id=secrets.token_urlsafe(18),
        sid=pending.sid,
        iss=tenant.iss,
        tenant=tenant.name,
        context=ctx,
        tokens=tokens,
        requested_scope=pending.scope,
        fhir_user=fhir_user,
        created_at=time.time(),
        user_status=user_status,
        user_name=user_name,
    )
    svc.repo.put(launch)
    svc.repo.touch(launch)  # the idle timeout counts from here
    # The launch is also written into this browser's signed cookie: a cookie planted from
    # elsewhere (session fixation) shares the sid but not this list, so it opens nothing.
    session["launches"] = [*session.get("launches", [])[-(MAX_LAUNCHES - 1):], launch.id]
    log.info("launch established (tenant %s, refresh token: %s)", tenant.name,
             tokens.refresh_token is not None)
    audit.bind(launch=launch.id, patient=ctx.patient, user=fhir_user)
    audit.event("launch.established", scopes=tokens.scope, card=ctx.app_context,
                status="refresh-token" if tokens.refresh_token else "no-refresh-token")
    return redirect(url_for("views.launch_page", launch_id=launch.id), code=303)
