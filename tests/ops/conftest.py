"""A small production-like deployment per test module: Redis, instances, the sandbox EHR.

``deployment`` builds the configuration file an operator would write (Redis session store,
keys file, audit file, one private_key_jwt tenant: the sandbox), starts the sandbox in a thread
and lets a test start ``pml-risk serve`` instances on chosen ports. The sandbox fetches the
app's JWKS from instance A on every token request, so key rotation is checked end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from smart_app.sandbox import SandboxClient, SandboxConfig, create_sandbox
from smart_app.sandbox.testing import mounted, serve_in_thread
from smart_app.smart import keys

from .harness import (
    CLIENT_ID,
    FIXTURES,
    REDIS,
    SECRET_KEY,
    AppProcess,
    RedisServer,
    free_port,
    write_config,
)

pytestmark = pytest.mark.integration


@dataclass
class Deployment:
    tmp: Path
    ehr: str  # the sandbox's root URL; the FHIR base is {ehr}/sandbox/fhir
    sandbox: Flask
    port_a: int
    port_b: int
    redis: RedisServer | None
    config: Path
    keys_file: Path
    audit: Path
    instances: list[AppProcess] = field(default_factory=list)

    @property
    def iss(self) -> str:
        return f"{self.ehr}/sandbox/fhir"

    @property
    def base(self) -> str:
        """The address EHRs are given (the load balancer's): instance A's here."""
        return f"http://127.0.0.1:{self.port_a}"

    def start(self, port: int, name: str = "", **kwargs: Any) -> AppProcess:
        app = AppProcess(self.config, port, self.tmp / f"app-{name or port}.log", **kwargs)
        self.instances.append(app)
        app.start()
        return app

    def running(self, port: int, name: str = "") -> AppProcess:
        """The instance serving ``port``, started if no live one is: a test that needs
        instance A (the address the sandbox fetches the app's JWKS from) must not rely on an
        earlier test having started it."""
        for app in self.instances:
            if app.port == port and app.proc is not None and app.proc.poll() is None:
                return app
        return self.start(port, name)

    def app_logs(self) -> str:
        return "".join(p.log.read_text(encoding="utf-8", errors="replace")
                       for p in self.instances if p.log.exists())

    def audit_lines(self) -> list[str]:
        if not self.audit.exists():
            return []
        return [line for line in self.audit.read_text(encoding="utf-8").splitlines() if line]

    def issued_secrets(self) -> list[str]:
        """Every access token, refresh token and code the sandbox has issued."""
        grants = self.sandbox.extensions["sandbox"].grants
        with grants.lock:
            found = [*grants.access, *grants.refresh, *grants.codes, *grants.used_codes]
        return [s for s in found if s]


DeploymentFactory = Callable[..., Deployment]


@pytest.fixture(scope="module")
def make_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeploymentFactory]:
    with ExitStack() as stack:

        def build(*, redis: bool = True, signing_alg: str = "ES384",
                  extra: dict[str, Any] | None = None, cds: bool = False) -> Deployment:
            tmp = tmp_path_factory.mktemp("deploy")
            port_a, port_b = free_port(), free_port()
            server: RedisServer | None = None
            if redis:
                if not Path(REDIS).exists():
                    pytest.skip("redis-server is not installed (apt-get install redis-server)")
                server = RedisServer(tmp)
                server.start()
                stack.callback(server.stop)
            base = f"http://127.0.0.1:{port_a}"
            sandbox = create_sandbox(
                SandboxConfig(
                    fixtures_dir=FIXTURES,
                    clients=(
                        SandboxClient(
                            client_id=CLIENT_ID,
                            auth="private_key_jwt",
                            redirect_uris=(f"{base}/callback",),
                            jwks_uri=f"{base}/.well-known/jwks.json",
                        ),
                    ),
                    launch_url=f"{base}/launch",
                    allow_control=True,
                    # The sandbox's CDS client calls instance A's services when asked to.
                    cds_services=f"{base}/cds-services" if cds else None,
                )
            )
            ehr = stack.enter_context(serve_in_thread(mounted(sandbox)))
            cds_tenant = {"cds": {"issuer": f"{ehr}/sandbox",
                                  "jwks_url": f"{ehr}/sandbox/cds/jwks.json"}} if cds else {}
            keys_file = tmp / "keys" / "jwks-private.json"
            keys.save(keys.generate(), keys_file)
            audit = tmp / "audit.jsonl"
            config = write_config(
                tmp / "pml-risk.toml",
                base_url=base,
                secret_key=SECRET_KEY,
                session_store=server.url if server else f"sqlite:///{tmp / 's.sqlite3'}",
                keys_file=str(keys_file),
                **(extra or {}),
                audit={"path": str(audit)},
                tenants=[{"name": "Sandbox EHR", "iss": f"{ehr}/sandbox/fhir",
                          "client_id": CLIENT_ID, "auth": "private_key_jwt",
                          "signing_alg": signing_alg, **cds_tenant}],
            )
            deployment = Deployment(tmp=tmp, ehr=ehr, sandbox=sandbox, port_a=port_a,
                                    port_b=port_b, redis=server, config=config,
                                    keys_file=keys_file, audit=audit)

            def stop_all() -> None:
                for app in deployment.instances:
                    app.terminate()

            stack.callback(stop_all)
            return deployment

        yield build
