"""The per-app state container, kept at ``app.extensions["sandbox"]``.

Nothing the sandbox changes at runtime lives at module level, so several sandboxes (or a sandbox
per test) can share one process without leaking tokens, switches or data into each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request
from joserfc.jwk import RSAKey

from .config import SandboxClient, SandboxConfig
from .controls import ControlState
from .grants_store import GrantsStore
from .store import FhirStore

EXTENSION_KEY = "sandbox"


@dataclass
class SandboxState:
    """Everything one sandbox instance knows."""

    config: SandboxConfig
    store: FhirStore
    controls: ControlState
    signing_key: RSAKey
    grants: GrantsStore = field(default_factory=GrantsStore)
    clients: dict[str, SandboxClient] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The authlib AuthorizationServer, set by ``authorization.init_authorization``.
    server: Any = None
    #: Per-instance state of optional features (e.g. ``"bulk"``: Bulk Data jobs and knobs).
    extensions: dict[str, Any] = field(default_factory=dict)

    def register_client(self, client: SandboxClient) -> None:
        with self.lock:
            self.clients[client.client_id] = client

    def client(self, client_id: str) -> SandboxClient | None:
        with self.lock:
            return self.clients.get(client_id)

    def reset(self, *, data: bool) -> None:
        """Forget tokens, codes, launches, seen jtis, switches and the log; data only if asked."""
        self.controls.reset()
        self.grants.clear()
        if data:
            self.store.reload()


def sandbox_state() -> SandboxState:
    state: SandboxState = current_app.extensions[EXTENSION_KEY]
    return state


def root_url() -> str:
    """The sandbox's own base URL for the current request (mount-aware), with a final ``/``."""
    return request.url_root


def fhir_base() -> str:
    return f"{request.url_root}fhir"


def origin() -> str:
    """Scheme, host and port of the serving origin, without any mount prefix."""
    return request.host_url.rstrip("/")


def resolve_origin_relative(url: str) -> str:
    """``/path`` -> ``{origin}/path``; absolute URLs unchanged."""
    return origin() + url if url.startswith("/") else url


def issuer() -> str:
    configured = sandbox_state().config.issuer
    return configured.rstrip("/") if configured else fhir_base()


#: The tenant in an Oracle-style issuer path when the sandbox has no ``tenant`` configured.
DEFAULT_TENANT = "sandbox-tenant"


def id_token_issuer() -> str:
    """Who signs id_tokens, as the EHR profile says (``profiles.Identity``)."""
    state = sandbox_state()
    identity = state.controls.get().profile.identity
    if identity == "oauth-server":
        return f"{request.url_root}auth"
    if identity == "tenant-issuer":
        tenant = state.config.tenant or DEFAULT_TENANT
        return f"{request.url_root}tenants/{tenant}/oidc/idsps/{tenant}/"
    return issuer()
