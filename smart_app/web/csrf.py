"""CSRF protection for the one state-changing call (``POST /launches/<id>/assessment``).

The token is an HMAC of the launch id under a key derived from the app's secret, so it needs no
storage, differs per launch (a token from one patient's tab is useless for another) and cannot
be forged without the secret. The page puts it in ``<meta name="csrf-token">``, which the script
sends back in ``X-CSRF-Token``, and in the save form's ``csrf_token`` field, for browsers that
run no script. Cookies alone never authorise a write: inside an EHR iframe the session cookie is
``SameSite=None``.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-CSRF-Token"


def token(secret_key: str, launch_id: str) -> str:
    key = hashlib.sha256(b"pml-risk csrf|" + secret_key.encode()).digest()
    return hmac.new(key, f"launch:{launch_id}".encode(), hashlib.sha256).hexdigest()


def valid(secret_key: str, launch_id: str, presented: str | None) -> bool:
    """Constant-time comparison; a missing token is never valid."""
    if not presented:
        return False
    return hmac.compare_digest(token(secret_key, launch_id), presented.strip())
