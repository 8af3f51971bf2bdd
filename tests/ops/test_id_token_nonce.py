"""The OpenID nonce: an id_token minted for another sign-in is refused (security review §3.4
item 4). The token is signed with the sandbox EHR's own key and checked against its published
discovery and JWKS over HTTP, as in a launch."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from joserfc import jwt

from smart_app.smart.discovery import fetch
from smart_app.smart.id_token import IdTokenError, JwksCache, validate
from smart_app.web.launch.views import oidc_nonce

from .conftest import Deployment, DeploymentFactory
from .harness import CLIENT_ID, SECRET_KEY


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    return make_deployment(redis=False)


def _id_token(d: Deployment, **extra: Any) -> str:
    key = d.sandbox.extensions["sandbox"].signing_key
    now = int(time.time())
    claims = {"iss": d.iss, "sub": "dr-ada", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
              "fhirUser": f"{d.iss}/Practitioner/dr-ada", **extra}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])


def _check(d: Deployment, token: str, nonce: str) -> str | None:
    http = requests.Session()
    http.trust_env = False
    config = fetch(http, d.iss, 10)
    identity = validate(token, http=http, config=config, client_id=CLIENT_ID,
                        jwks=JwksCache(), timeout=10, nonce=nonce)
    return identity.fhir_user


def test_nonce_binds_the_id_token_to_its_sign_in(deployment: Deployment) -> None:
    mine = oidc_nonce(SECRET_KEY, "state-of-this-sign-in")
    other = oidc_nonce(SECRET_KEY, "state-of-another-sign-in")
    assert mine != other and oidc_nonce(SECRET_KEY, "state-of-this-sign-in") == mine
    assert _check(deployment, _id_token(deployment, nonce=mine), mine)
    with pytest.raises(IdTokenError, match="nonce"):
        _check(deployment, _id_token(deployment, nonce=other), mine)
    # An EHR that does not echo the nonce: tolerated (state and PKCE still bind the flow).
    assert _check(deployment, _id_token(deployment), mine)
