"""Fixtures for the sandbox EHR tests: tiny bundles, client keys and a live server per test.

Every test gets a fresh sandbox served over real HTTP on loopback (``serve_in_thread``), mounted
at ``/sandbox`` as in the demo. ``Smart`` (sandbox_helpers.py) drives the flows with requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from joserfc.jwk import ECKey, KeySet, RSAKey
from sandbox_helpers import Smart, clients, write_fixtures

from smart_app.sandbox import SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fixtures")
    write_fixtures(directory)
    return directory


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS384", "kid": "rsa-1"})


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"alg": "ES384", "kid": "ec-1"})


@pytest.fixture(scope="session")
def signing_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    return key.as_dict(private=True)


@pytest.fixture(scope="session")
def jwks_url(ec_key: ECKey) -> Iterator[str]:
    """A separate server publishing the ES384 client's JWKS (the jwks_uri registration)."""
    app = Flask("client-jwks")

    @app.route("/jwks.json")
    def jwks() -> Any:
        return jsonify(KeySet([ec_key]).as_dict(private=False))

    with serve_in_thread(app) as base:
        yield f"{base}/jwks.json"


@pytest.fixture
def config(
    fixtures_dir: Path, rsa_key: RSAKey, jwks_url: str, signing_key: dict[str, Any]
) -> SandboxConfig:
    return SandboxConfig(
        fixtures_dir=fixtures_dir,
        clients=clients(rsa_key, jwks_url),
        launch_url="http://app.test/launch",
        allow_control=True,
        tenant="tenant-1",
        signing_key=signing_key,
    )


@pytest.fixture
def smart(config: SandboxConfig, rsa_key: RSAKey, ec_key: ECKey) -> Iterator[Smart]:
    app = create_sandbox(config)
    with serve_in_thread(mounted(app)) as root:
        yield Smart(root, rsa_key, ec_key)
