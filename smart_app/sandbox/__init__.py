"""An embedded sandbox EHR: SMART App Launch 2.2 authorization server plus a FHIR R4 API.

It exists so the app can be developed, demonstrated and tested end to end without a real EHR,
and it is deliberately strict (PKCE for everyone, scope and compartment enforcement, rotating
refresh tokens, jti replay checks) so that app bugs show up here rather than at a hospital.

The Flask app returned by :func:`create_sandbox` uses relative routes; mount it at ``/sandbox``
(see :func:`smart_app.sandbox.testing.mounted`). URL layout under that mount:

* ``/``                          patient list with "Launch" links
* ``/launch?patient=..``         EHR launch: redirect to the app's launch URL with iss + launch
* ``/auth/authorize``, ``/auth/token``
* ``/fhir/.well-known/smart-configuration``, ``/fhir/.well-known/openid-configuration``,
  ``/fhir/.well-known/jwks.json``, ``/fhir/metadata``
* ``/fhir/{Type}``, ``/fhir/{Type}/{id}``
* ``/smart-style.json``
* ``/fhir/Group/{id}/$export``, ``/bulk/status/{job}``, ``/bulk/files/..``, ``/bulk/storage/..``
  (Bulk Data, ``bulk.py``; tokens from Backend Services, ``backend.py``)
* ``/_control``, ``/_control/bulk`` (only with ``allow_control``)
* ``/chart/<patient>``, ``/cds/jwks.json``, ``/cds/launch``, ``/_cds``: the CDS Hooks client
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, Response, request
from joserfc.jwk import RSAKey

from . import auth_views, bulk, cds_client, control, discovery, fhir_api, views
from .authorization import init_authorization
from .backend import init_backend
from .config import SandboxClient, SandboxConfig
from .controls import Controls, ControlState
from .state import EXTENSION_KEY, SandboxState, sandbox_state
from .store import FhirStore

__all__ = ["SandboxClient", "SandboxConfig", "create_sandbox"]


def _signing_key(config: SandboxConfig) -> RSAKey:
    if config.signing_key is not None:
        return RSAKey.import_key(config.signing_key)
    return RSAKey.generate_key(
        2048, parameters={"alg": "RS256", "use": "sig"}, private=True, auto_kid=True
    )


def _log_request(response: Response) -> Response:
    """Record every request except the control endpoint itself, for round-trip assertions."""
    if request.path != "/_control":
        state = sandbox_state()
        query, args = request.query_string.decode("latin-1"), request.args.to_dict(flat=False)
        if request.method == "POST" and request.path == "/auth/authorize":
            # An authorize POST carries in its body what a GET carries in its query: logged
            # the same way, so a test reads the request's parameters either way.
            query = urlencode(list(request.form.items(multi=True)))
            args = request.form.to_dict(flat=False)
        state.controls.log(
            request.method,
            request.script_root + request.path,
            query,
            args,
            response.status_code,
            request.headers.get("Epic-Client-ID"),
        )
    return response


def create_sandbox(config: SandboxConfig) -> Flask:
    """Build an independent sandbox app: its own data, keys, tokens and switches."""
    app = Flask(__name__)
    app.config["JSON_SORT_KEYS"] = False
    state = SandboxState(
        config=config,
        store=FhirStore(config.fixtures_dir),
        controls=ControlState(Controls.initial(config)),
        signing_key=_signing_key(config),
    )
    for client in config.clients:
        state.register_client(client)
    init_authorization(state)
    init_backend(state)
    bulk.init_bulk(state)
    app.extensions[EXTENSION_KEY] = state
    for module in (views, auth_views, discovery, fhir_api, control, bulk):
        app.register_blueprint(module.blueprint)
    cds_client.init(app, config.cds_signing_key)  # /chart/<patient>, /cds/..., /_cds
    app.after_request(_log_request)
    return app
