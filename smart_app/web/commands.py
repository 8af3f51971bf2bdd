"""``pml-risk serve``, ``check-config``, ``demo`` and ``keys generate|rotate|retire|show``.

The lead's ``cli.py`` builds the parser and calls :func:`register`; every subcommand's ``func``
takes the parsed arguments and returns an exit code (0 ok, 2 bad configuration).
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config, keys, logging_setup

log = logging.getLogger(__name__)

EXIT_OK, EXIT_CONFIG = 0, 2
DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"
DEMO_CLIENT_ID = "pml-risk-demo"


def _fail(message: str) -> int:
    print(f"pml-risk: {message}", file=sys.stderr)
    return EXIT_CONFIG


# -- serve ---------------------------------------------------------------------------------


def serve_command(args: argparse.Namespace) -> int:
    """Run the app under gunicorn (threads: most of a request is waiting on the EHR).

    ``[server]`` in the configuration gives workers, threads and timeouts; flags win. SIGTERM
    (what Docker, systemd and Kubernetes send) stops accepting connections and gives in-flight
    requests ``graceful_timeout`` seconds. The configuration is read once, here, so a worker
    never boots with a configuration nobody checked: changing it means a (rolling) restart.
    Rotated keys need none (``keys.KeyRing``).
    """
    from ..app import create_app

    try:
        settings = config.load(args.config)
        create_app(settings)  # fail here, with the key named, not in a worker
    except (config.ConfigError, keys.KeyFileError) as exc:
        return _fail(f"configuration: {exc}")
    server = settings.server
    options = GunicornOptions(
        bind=f"{args.host or server.host}:{args.port or server.port}",
        workers=args.workers or server.workers,
        threads=args.threads or server.threads,
        timeout=server.timeout,
        graceful_timeout=(args.graceful_timeout if args.graceful_timeout is not None
                          else server.graceful_timeout),
    )
    if settings.session_store.startswith("memory://"):
        options.workers = 1  # the store lives in the worker: a second one would not see it
    logging_setup.configure(settings.audit.path)
    log.info("serving on %s: %d worker(s) x %d threads", options.bind, options.workers,
             options.threads)
    run_gunicorn(lambda: create_app(settings), options)
    return EXIT_OK


@dataclass
class GunicornOptions:
    bind: str
    workers: int = 2
    threads: int = 8
    timeout: int = 60
    graceful_timeout: int = 20
    # Idle keep-alive seconds. Longer than a proxy's upstream idle timeout (nginx 60 s, AWS
    # ALB 60 s), so the proxy, not the app, closes idle connections: otherwise a request sent
    # on a connection the app is just closing fails with a reset.
    keepalive: int = 75


def run_gunicorn(factory: Any, options: GunicornOptions) -> None:
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    class _RedactingLogger(Logger):  # type: ignore[misc]
        """gunicorn's own lines (errors quoting a request line) go through the redactor."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.error_log.handlers:
                logging_setup.protect(handler)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", options.bind)
            self.cfg.set("workers", options.workers)
            self.cfg.set("threads", options.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", options.timeout)
            self.cfg.set("graceful_timeout", options.graceful_timeout)
            self.cfg.set("keepalive", options.keepalive)
            self.cfg.set("accesslog", None)  # URLs hold launch ids and codes: not logged
            self.cfg.set("logger_class", _RedactingLogger)
            # X-Forwarded-Proto is judged by the app ([proxy] in the configuration), not by
            # gunicorn's own default of trusting 127.0.0.1.
            self.cfg.set("secure_scheme_headers", {})
            # Heartbeat files in RAM, not on a possibly slow container disk (gunicorn docs).
            shm = "/dev/shm"  # noqa: S108 - gunicorn creates its own private files there
            if Path(shm).is_dir():
                self.cfg.set("worker_tmp_dir", shm)
            self.cfg.set("proc_name", "pml-risk")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # One fixed socket path per user: several instances on a host would fight
                # over it, and a container's non-root user may have no writable home.
                # Signals (TERM, HUP, TTIN/TTOU) remain the management interface.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return factory()

    _App().run()


# -- check-config --------------------------------------------------------------------------


def check_config_command(args: argparse.Namespace) -> int:
    from ..checkconfig import check

    report = check(args.file, offline=args.offline)
    sys.stdout.write(report.render())
    return EXIT_CONFIG if report.errors else EXIT_OK


# -- keys ----------------------------------------------------------------------------------


def _keys_path(args: argparse.Namespace) -> Path:
    if args.keys_file:
        return Path(args.keys_file)
    return Path(config.load(args.config).keys_file)


def keys_generate_command(args: argparse.Namespace) -> int:
    try:
        target = _keys_path(args)
    except config.ConfigError as exc:
        return _fail(f"configuration: {exc}")
    if target.exists() and not args.force:
        return _fail(f"keys_file: {target} exists; use `pml-risk keys rotate` to replace the "
                     "current keys while keeping them published (or --force to discard them)")
    generated = keys.generate()
    keys.save(generated, target)
    print(f"wrote {target} (RS384 kid {generated.rsa.kid}, ES384 kid {generated.ec.kid})")
    return EXIT_OK


def _load_for_change(args: argparse.Namespace) -> tuple[Path, keys.SigningKeys] | int:
    try:
        target = _keys_path(args)
        return target, keys.load(target)
    except (config.ConfigError, keys.KeyFileError) as exc:
        return _fail(str(exc))


def keys_rotate_command(args: argparse.Namespace) -> int:
    loaded = _load_for_change(args)
    if isinstance(loaded, int):
        return loaded
    target, old = loaded
    if args.stage:
        if old.next:
            return _fail(f"keys_file: {target} already has a staged pair "
                         f"({', '.join(str(k.kid) for k in old.next)}); `pml-risk keys rotate` "
                         "promotes it")
        staged = old.staged()
        keys.save(staged, target)
        print(f"staged in {target}: RS384 kid {staged.next[0].kid}, ES384 kid "
              f"{staged.next[1].kid} are published but do not sign yet; run `pml-risk keys "
              "rotate` once EHRs have fetched them")
        return EXIT_OK
    if old.previous and not args.force:
        return _fail(f"keys_file: {target} still publishes the previous keys "
                     f"({', '.join(str(k.kid) for k in old.previous)}); run `pml-risk keys "
                     "retire` once EHRs have fetched the current ones, or pass --force to "
                     "drop them now")
    new = old.rotated()
    keys.save(new, target)
    print(f"rotated {target}: now signing with RS384 kid {new.rsa.kid}, ES384 kid "
          f"{new.ec.kid}; previous kids {old.rsa.kid}, {old.ec.kid} stay published until "
          "`pml-risk keys retire`")
    return EXIT_OK


def keys_retire_command(args: argparse.Namespace) -> int:
    loaded = _load_for_change(args)
    if isinstance(loaded, int):
        return loaded
    target, old = loaded
    if not old.previous:
        print(f"{target}: no previous keys to retire")
        return EXIT_OK
    keys.save(old.retired(), target)
    print(f"retired {', '.join(str(k.kid) for k in old.previous)} from {target}")
    return EXIT_OK


def keys_show_command(args: argparse.Namespace) -> int:
    loaded = _load_for_change(args)
    if isinstance(loaded, int):
        return loaded
    target, found = loaded
    if args.jwks:
        print(json.dumps(found.public_jwks(), indent=2))
        return EXIT_OK
    print(f"{target}")
    for row in found.describe():
        print(f"  {row['alg']:<6} {row['kid']:<45} created {row['created']:<26} {row['status']}")
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
    logging_setup.configure()  # werkzeug's access log stays off: URLs carry codes and ids
    print(f"pml-risk demo: open http://127.0.0.1:{args.port}/sandbox/ (instance: {instance})",
          flush=True)
    run_simple("127.0.0.1", args.port, wsgi, threaded=True, use_reloader=False)
    return EXIT_OK


# -- registration --------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve the SMART app (gunicorn)",
        description="Workers, threads and timeouts come from [server] in the configuration; "
        "flags override them.")
    serve.add_argument("--config", default=None,
                       help="configuration TOML (default: $PML_RISK_CONFIG)")
    serve.add_argument("--host", default=None, help="[server] host (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="[server] port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="[server] workers")
    serve.add_argument("--threads", type=int, default=None, help="[server] threads per worker")
    serve.add_argument("--graceful-timeout", type=int, default=None,
                       help="[server] graceful_timeout: seconds in-flight requests get on "
                       "SIGTERM")
    serve.set_defaults(func=serve_command)

    check_cmd = subparsers.add_parser(
        "check-config", help="validate a configuration and show what each tenant will use",
        description="Exit 0 when the configuration is usable, 2 otherwise. Contacts the "
        "session store and each tenant's discovery URL unless --offline.")
    check_cmd.add_argument("file", help="configuration TOML")
    check_cmd.add_argument("--offline", action="store_true",
                           help="skip the session-store and discovery checks")
    check_cmd.set_defaults(func=check_config_command)

    demo = subparsers.add_parser(
        "demo", help="the app and the sandbox EHR in one process on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--fixtures", default=str(DEFAULT_FIXTURES),
                      help="folder of FHIR fixture bundles with index.json")
    demo.add_argument("--instance", default=None,
                      help="folder for the demo's keys and sessions (default: a temp dir)")
    demo.set_defaults(func=demo_command)

    key_cmd = subparsers.add_parser(
        "keys", help="manage the app's signing keys",
        description="Rotation: `keys rotate` makes a new pair current and keeps the old pair "
        "published (not signing); `keys retire` unpublishes it once EHRs have the new one. "
        "Running instances re-read the file by themselves.")
    key_sub = key_cmd.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    actions = (
        ("generate", "create the RS384 + ES384 key set", keys_generate_command),
        ("rotate", "make a new pair current; keep the old pair published", keys_rotate_command),
        ("retire", "stop publishing the previous pair", keys_retire_command),
        ("show", "list kids, algorithms, dates and which pair is current", keys_show_command),
    )
    for name, text, func in actions:
        sub = key_sub.add_parser(name, help=text)
        sub.add_argument("--config", default=None, help="configuration TOML naming keys_file")
        sub.add_argument("--keys-file", default=None,
                         help="the key file itself (overrides the configuration's keys_file)")
        if name in ("generate", "rotate"):
            sub.add_argument("--force", action="store_true",
                             help="replace existing keys (generate) or drop unretired previous "
                             "keys (rotate)")
        if name == "rotate":
            sub.add_argument("--stage", action="store_true",
                             help="only publish the next pair (it signs after the next rotate)")
        if name == "show":
            sub.add_argument("--jwks", action="store_true",
                             help="print the public JWK Set that is served")
        sub.set_defaults(func=func)
