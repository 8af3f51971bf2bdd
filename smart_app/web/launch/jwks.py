"""``/.well-known/jwks.json``: the public half of the app's keys (RS384 and ES384).

EHRs fetch it on every token request or cache it; ``Cache-Control`` lets them cache for an hour,
short enough that a rotation (publish new, then retire old) takes effect within a working day.
During a rotation it serves the current pair, a staged next pair and the previous pair
(``keys.SigningKeys.public_jwks``); the file is re-read when ``pml-risk keys`` changes it.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from ..services import services

bp = Blueprint("jwks", __name__)

MAX_AGE = 3600


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    keys = services().keys
    resp = jsonify(keys.public_jwks() if keys is not None else {"keys": []})
    resp.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return resp
