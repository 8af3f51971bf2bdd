"""``pml-risk serve``, ``pml-risk demo`` and ``pml-risk keys generate``.

The lead's ``cli.py`` builds the parser and calls :func:`register`; every subcommand's ``func``
takes the parsed arguments and returns an exit code (0 ok, 2 bad configuration).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import config, keys

EXIT_OK, EXIT_CONFIG = 0, 2
DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"
DEMO_CLIENT_ID = "pml-risk-demo"


def _fail(message: str) -> int:
    print(f"pml-risk: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _logging() -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    # The development server's access log would print callback URLs (code, state) and
    # launch ids; the app logs what matters itself.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


# -- serve ---------------------------------------------------------------------------------


def serve_command(args: argparse.Namespace) -> int:
    """Run the app under gunicorn (threads: most of a request is waiting on the EHR)."""
    from ..app import create_app

    try:
        settings = config.load(args.config)
        create_app(settings)  # fail here, with the key named, not in a worker
    except (config.ConfigError, keys.KeyFileError) as exc:
        return _fail(f"configuration: {exc}")
    workers = 1 if settings.session_store.startswith("memory://") else args.workers
    _logging()
    run_gunicorn(lambda: create_app(settings), f"{args.host}:{args.port}", workers, args.threads)
    return EXIT_OK


def run_gunicorn(factory: Any, bind: str, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)  # URLs hold launch ids and codes: not logged

        def load(self) -> Any:
            return factory()

    _App().run()


# -- keys ----------------------------------------------------------------------------------


def keys_generate_command(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        return _fail(f"configuration: {exc}")
    target = Path(settings.keys_file)
    if target.exists() and not args.force:
        return _fail(f"keys_file: {target} exists; pass --force to replace it (rotation: "
                     "publish the new set before retiring the old one)")
    generated = keys.generate()
    keys.save(generated, target)
    print(f"wrote {target} (RS384 kid {generated.rsa.kid}, ES384 kid {generated.ec.kid})")
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------------


def demo_settings(base_url: str, instance: Path, *, auth: str = "private_key_jwt") -> Any:
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
                }
            ],
        }
    )


def build_demo(port: int, instance: Path, fixtures: Path) -> Any:
    """The app at ``/`` and the sandbox at ``/sandbox`` in one WSGI callable."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from ..app import create_app
    from ..sandbox import SandboxClient, SandboxConfig, create_sandbox

    base_url = f"http://127.0.0.1:{port}"
    settings = demo_settings(base_url, instance)
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
        )
    )
    return DispatcherMiddleware(app, {"/sandbox": sandbox})


def demo_command(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    fixtures = Path(args.fixtures)
    if not (fixtures / "index.json").exists():
        return _fail(f"--fixtures: {fixtures} has no index.json")
    instance = Path(args.instance) if args.instance else Path(
        tempfile.mkdtemp(prefix="pml-risk-demo-")
    )
    instance.mkdir(parents=True, exist_ok=True)
    try:
        wsgi = build_demo(args.port, instance, fixtures)
    except (config.ConfigError, keys.KeyFileError) as exc:
        return _fail(f"configuration: {exc}")
    _logging()
    print(f"pml-risk demo: open http://127.0.0.1:{args.port}/sandbox/ (instance: {instance})",
          flush=True)
    run_simple("127.0.0.1", args.port, wsgi, threaded=True, use_reloader=False)
    return EXIT_OK


# -- registration --------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    serve = subparsers.add_parser("serve", help="serve the SMART app (gunicorn)")
    serve.add_argument("--config", default=None,
                       help="configuration TOML (default: $PML_RISK_CONFIG)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--threads", type=int, default=8)
    serve.set_defaults(func=serve_command)

    demo = subparsers.add_parser(
        "demo", help="the app and the sandbox EHR in one process on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--fixtures", default=str(DEFAULT_FIXTURES),
                      help="folder of FHIR fixture bundles with index.json")
    demo.add_argument("--instance", default=None,
                      help="folder for the demo's keys and sessions (default: a temp dir)")
    demo.set_defaults(func=demo_command)

    key_cmd = subparsers.add_parser("keys", help="manage the app's signing keys")
    key_sub = key_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = key_sub.add_parser("generate", help="create the RS384 + ES384 key set")
    generate.add_argument("--config", default=None,
                          help="configuration TOML naming keys_file")
    generate.add_argument("--force", action="store_true", help="replace an existing key file")
    generate.set_defaults(func=keys_generate_command)
