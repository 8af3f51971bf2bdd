"""``pml-risk serve``: the app under gunicorn.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..ops import logs
from ..smart import keys
from .errors import EXIT_OK
from .errors import fail as _fail

log = logging.getLogger(__name__)
#: prometheus_client reads it when first imported (ops/metrics.py), so it is named here too.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

def serve_command(args: argparse.Namespace) -> int:
    """Run the app under gunicorn (threads: most of a request is waiting on the EHR).

    ``[server]`` in the configuration gives workers, threads and timeouts; flags win. SIGTERM
    (what Docker, systemd and Kubernetes send) stops accepting connections and gives in-flight
    requests ``graceful_timeout`` seconds. The configuration is read once, here, so a worker
    never boots with a configuration nobody checked: changing it means a (rolling) restart.
    Rotated keys need none (``keys.KeyRing``).
    """
    metrics_dir = _metrics_folder()  # before prometheus_client is first imported
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
    logs.configure(settings.audit.path)
    log.info("serving on %s: %d worker(s) x %d threads", options.bind, options.workers,
             options.threads)
    try:
        run_gunicorn(lambda: create_app(settings), options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return EXIT_OK


def _metrics_folder() -> str | None:
    """Point prometheus_client's multi-process mode at a fresh private folder, so a scrape of
    any worker sums every worker's samples (docs/deploy.md §7). A folder the operator set in
    ``PROMETHEUS_MULTIPROC_DIR`` is used as it is (and left in place): its owner empties it
    before each start. Returns the folder to remove at exit, if this process made it."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    folder = tempfile.mkdtemp(prefix="pml-risk-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


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


def _worker_exited(_server: Any, worker: Any) -> None:
    from ..ops.metrics import worker_exited

    worker_exited(worker.pid)


def run_gunicorn(factory: Any, options: GunicornOptions) -> None:
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    class _RedactingLogger(Logger):  # type: ignore[misc]
        """gunicorn's own lines (errors quoting a request line) go through the redactor."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.error_log.handlers:
                logs.protect(handler)

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
            self.cfg.set("child_exit", _worker_exited)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # One fixed socket path per user: several instances on a host would fight
                # over it, and a container's non-root user may have no writable home.
                # Signals (TERM, HUP, TTIN/TTOU) remain the management interface.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return factory()

    _App().run()


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
