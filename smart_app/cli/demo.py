"""``pml-risk demo``: the app and the sandbox EHR in one process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import errno
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from .. import config
from ..ops import logs
from ..smart import keys
from .errors import EXIT_OK
from .errors import fail as _fail


def _default_fixtures() -> Path:
    """The checkout's ``fhir_fixtures/``, else the copy a built wheel carries (setup.py)."""
    checkout = Path(__file__).resolve().parents[2] / "fhir_fixtures"
    if (checkout / "index.json").exists():
        return checkout
    return Path(__file__).resolve().parents[1] / "sandbox" / "fixtures"


DEFAULT_FIXTURES = _default_fixtures()
DEMO_CLIENT_ID = "pml-risk-demo"

#: How the demo's tenant is configured for a vendor-like sandbox profile (as check-config
#: advises for that vendor).
VENDOR_TENANTS: dict[str, dict[str, Any]] = {
    "epic-like": {"vendor": "epic", "signing_alg": "RS384"},
    "oracle-like": {"vendor": "oracle", "signing_alg": "RS384", "page_size": 200},
}


def demo_settings(base_url: str, instance: Path, *, auth: str = "private_key_jwt",
                  ehr_profile: str = "full") -> Any:
    """Settings for the app half of the demo: one tenant, the mounted sandbox."""
    return config.from_mapping(
        {
            "base_url": base_url,
            "secret_key": secrets.token_urlsafe(48),
            "session_store": f"sqlite:///{instance / 'sessions.sqlite3'}",
            "keys_file": str(instance / "jwks-private.json"),
            "tenants": [
                {
                    "name": "Sandbox EHR (demo)",
                    "iss": f"{base_url}/sandbox/fhir",
                    "client_id": DEMO_CLIENT_ID,
                    "auth": auth,
                    "signing_alg": "ES384",
                    "clinic_phone": "(555) 010-0123",  # fictional (555-01xx)
                    # The sandbox is also the CDS Hooks client: opening a chart fires
                    # patient-view with JWTs signed by the sandbox's own published key.
                    "cds": {
                        "issuer": f"{base_url}/sandbox",
                        "jwks_url": f"{base_url}/sandbox/cds/jwks.json",
                        "slug": "sandbox",
                    },
                    **VENDOR_TENANTS.get(ehr_profile, {}),
                }
            ],
        }
    )


def build_demo(port: int, instance: Path, fixtures: Path, *, ehr_profile: str = "full") -> Any:
    """The app at ``/`` and the sandbox at ``/sandbox`` in one WSGI callable.

    ``ehr_profile`` picks how the sandbox EHR behaves (``sandbox/profiles.py``), so each
    write-back rung (RiskAssessment, clinical note, read-only) and each vendor-like EHR
    (``epic-like``, ``oracle-like``) can be tried by hand.
    """
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from ..app import create_app
    from ..sandbox import SandboxClient, SandboxConfig, create_sandbox

    base_url = f"http://127.0.0.1:{port}"
    settings = demo_settings(base_url, instance, ehr_profile=ehr_profile)
    signing = keys.load_or_create(settings.keys_file)
    app = create_app(settings, keys=signing)
    sandbox = create_sandbox(
        SandboxConfig(
            fixtures_dir=fixtures,
            clients=(
                SandboxClient(
                    client_id=DEMO_CLIENT_ID,
                    auth="private_key_jwt",
                    redirect_uris=(f"{base_url}/callback",),
                    jwks=signing.public_jwks(),
                ),
            ),
            launch_url=f"{base_url}/launch",
            allow_control=True,
            ehr_profile=ehr_profile,
            cds_services=f"{base_url}/cds-services",
        )
    )
    return DispatcherMiddleware(app, {"/sandbox": sandbox})


def demo_command(args: argparse.Namespace) -> int:
    """Bind the port first (a busy one is a one-line error before anything says "open"), then
    build the app for the port actually bound (``--port 0`` picks a free one), and serve until
    Ctrl-C or SIGTERM, removing the temporary instance folder on the way out."""
    from werkzeug.serving import make_server

    from ..sandbox.testing import LateApp

    fixtures = Path(args.fixtures)
    if not (fixtures / "index.json").exists():
        return _fail(f"--fixtures: {fixtures} has no index.json")
    from ..sandbox.profiles import find_profile

    try:
        find_profile(args.ehr_profile)
    except ValueError as exc:
        return _fail(f"--ehr-profile: {exc}")
    late = LateApp()
    # Bound here, not by werkzeug: on a busy port it prints its own paragraph and exits 1.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", args.port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            return _fail(f"--port: port {args.port} on 127.0.0.1 is already in use (another "
                         "demo?); choose another with --port, or --port 0 for any free one")
        return _fail(f"--port: cannot listen on 127.0.0.1:{args.port} ({exc.strerror})")
    server = make_server("127.0.0.1", listener.getsockname()[1], late, threaded=True,
                         fd=listener.fileno())
    temporary = args.instance is None
    instance = Path(args.instance) if args.instance else Path(
        tempfile.mkdtemp(prefix="pml-risk-demo-")
    )

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return: from another thread, not this handler.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        instance.mkdir(parents=True, exist_ok=True)
        port = listener.getsockname()[1]
        try:
            late.target = build_demo(port, instance, fixtures, ehr_profile=args.ehr_profile)
        except (config.ConfigError, keys.KeyFileError) as exc:
            return _fail(f"configuration: {exc}")
        logs.configure()  # werkzeug's access log stays off: URLs carry codes and ids
        print(f"pml-risk demo: open http://127.0.0.1:{port}/sandbox/ (instance: {instance}, "
              f"EHR profile: {args.ehr_profile})", flush=True)
        server.serve_forever()  # until Ctrl-C or SIGTERM
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        listener.close()
        if temporary:
            shutil.rmtree(instance, ignore_errors=True)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    demo = subparsers.add_parser(
        "demo", help="the app and the sandbox EHR in one process on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000,
                      help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    demo.add_argument("--fixtures", default=str(DEFAULT_FIXTURES),
                      help="folder of FHIR fixture bundles with index.json")
    demo.add_argument("--instance", default=None,
                      help="folder for the demo's keys and sessions (default: a temp dir)")
    # The names are checked when the demo starts: importing the sandbox here would slow down
    # every other command.
    demo.add_argument("--ehr-profile", default="full", metavar="NAME",
                      help="how the sandbox EHR behaves: full (RiskAssessment), notes-only "
                      "(clinical notes), no-conditional-create, read-only, epic-like, "
                      "oracle-like (see smart_app/sandbox/README.md; default: full)")
    demo.set_defaults(func=demo_command)
