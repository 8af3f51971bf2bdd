"""The one pooled HTTP session the app shares across users, tenants and threads.

Outbound traffic goes where the configuration says, never where the environment says: an
``HTTPS_PROXY`` inherited from a shell or a container image is ignored (``trust_env``), and a
hospital's mandated egress proxy and private CA are configured explicitly (``http_proxy``,
``no_proxy``, ``ca_bundle``), so what the app talks to is visible in one file and checked at start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from requests.sessions import _Settings


class _ProxiedSession(requests.Session):
    """A session whose proxy is chosen per URL from the configuration alone.

    requests applies ``no_proxy`` only from the environment (``trust_env``), which is off, so
    the choice is made here: the proxy for every URL except the hosts in ``no_proxy`` (a name
    matches itself and its subdomains).
    """

    def __init__(self, proxy: str, no_proxy: Iterable[str]) -> None:
        super().__init__()
        self._proxy = proxy
        self._direct = tuple(h.lower().lstrip(".") for h in no_proxy)

    def proxies_for(self, url: str) -> dict[str, str]:
        host = (urlsplit(url).hostname or "").lower()
        if not self._proxy or any(host == d or host.endswith("." + d) for d in self._direct):
            return {}
        return {"http": self._proxy, "https": self._proxy}

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> _Settings:
        settings = super().merge_environment_settings(
            url, proxies, stream, verify, cert)
        text = url.decode() if isinstance(url, bytes) else str(url or "")
        settings["proxies"] = {**self.proxies_for(text), **(proxies or {})}
        return settings


#: Told of every request sent: its URL, the status (None when no answer came) and the seconds
#: until the headers arrived (or the failure).
Observer = Callable[[str, "int | None", float], None]


class _TimedAdapter(HTTPAdapter):
    """The pool's adapter, telling an observer of every request (the app's metrics)."""

    def __init__(self, observe: Observer | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._observe = observe

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        if self._observe is None:
            return super().send(request, *args, **kwargs)
        start = time.perf_counter()
        status: int | None = None
        try:
            response = super().send(request, *args, **kwargs)
            status = response.status_code
            return response
        finally:
            self._observe(request.url or "", status, time.perf_counter() - start)


def make_http(pool: int = 16, *, proxy: str = "", no_proxy: Iterable[str] = (),
              ca_bundle: str = "", observe: Observer | None = None) -> requests.Session:
    """One pooled HTTP session per app: the configured proxy and CA bundle, else direct
    connections verified against the default CA store; environment proxies ignored."""
    http = _ProxiedSession(proxy, no_proxy)
    http.trust_env = False
    if ca_bundle:
        http.verify = ca_bundle
    # One session serves every user and tenant: it must never keep an EHR's cookies, or one
    # clinician's EHR session cookie would ride along on another's requests.
    http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = _TimedAdapter(observe, pool_connections=pool, pool_maxsize=pool, max_retries=0)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def route_like(session: requests.Session, outbound: requests.Session, url: str) -> None:
    """Give ``session`` (an OAuth client's own, talking to ``url``) the proxy and CA bundle of
    the app's ``outbound`` session, so the token endpoint is reached the way the EHR's FHIR
    server is."""
    session.trust_env = False
    session.verify = outbound.verify
    if isinstance(outbound, _ProxiedSession):
        session.proxies = outbound.proxies_for(url)
