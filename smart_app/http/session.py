"""The one pooled HTTP session the app shares across users, tenants and threads."""

from __future__ import annotations

from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import HTTPAdapter


def make_http(pool: int = 16) -> requests.Session:
    """One pooled HTTP session per app; environment proxies ignored (talk to EHRs directly)."""
    http = requests.Session()
    http.trust_env = False
    # One session serves every user and tenant: it must never keep an EHR's cookies, or one
    # clinician's EHR session cookie would ride along on another's requests.
    http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http
