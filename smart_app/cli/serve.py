"""``pml-risk serve``: the app under gunicorn.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


class StartupError(Exception):
    """Why the app will not start, as one-line messages (no traceback for a wrong layout)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def checked_settings(path: str | None) -> config.Settings:
    """The configuration ``serve`` (and ``smart_app.wsgi``) runs with, after the checks.

    ``check-config``'s storage, audit-trail, key and table checks run first, offline, so a
    container user who cannot write the state folder or read the key file reads the same
    one-line message ``check-config`` gives, never a worker's traceback. A missing
    configuration is said as such: the defaults are for ``assess`` and the demo, not a server.
    """
    from ..ops.checkconfig import startup_errors

    if not (path or os.environ.get("PML_RISK_CONFIG")):
        raise StartupError(["no configuration given: pass --config FILE or set "
                            "PML_RISK_CONFIG (deploy/pml-risk.example.toml is a start; "
                            "docs/deploy.md §2)"])
    try:
        settings = config.load(path)
        config.require_web(settings)
    except config.ConfigError as exc:
        raise StartupError([f"configuration: {exc}"]) from exc
    problems = startup_errors(settings)
    if problems:
        raise StartupError(problems)
    return settings


def serve_command(args: argparse.Namespace) -> int:
    """Run the app under gunicorn (threads: most of a request is waiting on the EHR).

    ``[server]`` in the configuration gives workers, threads and timeouts; flags win. SIGTERM
    (what Docker, systemd and Kubernetes send) stops accepting connections and gives in-flight
    requests ``graceful_timeout`` seconds. The configuration is read once, here, so a worker
    never boots with a configuration nobody checked: changing it means a (rolling) restart.
    Rotated keys need none (``keys.KeyRing``).
    """
    metrics_dir = _metrics_folder()
    master = os.getpid()
    try:
        return _serve(args)
    finally:
        # Made here: removed, and the environment as it was. Only by this process: a gunicorn
        # worker leaves through these frames too (it was forked inside them) while the master
        # and the other workers still write their samples there.
        if metrics_dir is not None and os.getpid() == master:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    from ..app import create_app

    try:
        settings = checked_settings(args.config)
        create_app(settings)  # fail here, with the key named, not in a worker
    except StartupError as exc:
        for line in exc.lines[:-1]:
            print(f"pml-risk: {line}", file=sys.stderr)
        return _fail(exc.lines[-1])
    except (config.ConfigError, keys.KeyFileError) as exc:
        return _fail(f"configuration: {exc}")
    except OSError as exc:  # a folder the checks could not foresee (e.g. made read-only since)
        return _fail(f"cannot start: {exc.strerror}: {exc.filename}")
    server = settings.server
    options = GunicornOptions(
        bind=f"{args.host or server.host}:{args.port or server.port}",
        workers=args.workers or server.workers,
        threads=args.threads or server.threads,
        timeout=server.timeout,
        graceful_timeout=(args.graceful_timeout if args.graceful_timeout is not None
                          else server.graceful_timeout),
    )
    if args.public_jwks:
        publisher = JwksPublisher(settings.keys_file, Path(args.public_jwks))
        try:
            publisher.publish()
        except (OSError, keys.KeyFileError) as exc:
            return _fail(f"--public-jwks: {args.public_jwks} cannot be written ({exc})")
        options.when_ready = publisher.watch
    if settings.session_store.startswith("memory://"):
        options.workers = 1  # the store lives in the worker: a second one would not see it
    logs.configure(settings.audit.path)
    log.info("serving on %s: %d worker(s) x %d threads", options.bind, options.workers,
             options.threads)
    run_gunicorn(lambda: create_app(settings), options)
    return EXIT_OK


def _metrics_folder() -> str | None:
    """Point prometheus_client's multi-process mode at a fresh private folder, so a scrape of
    any worker sums every worker's samples (docs/deploy.md §7). A folder the operator set in
    ``PROMETHEUS_MULTIPROC_DIR`` is used as it is (and left in place): its owner empties it
    before each start. Returns the folder to remove at exit, if this process made it."""
    if os.environ.get(MULTIPROC_ENV):
        os.makedirs(os.environ[MULTIPROC_ENV], mode=0o700, exist_ok=True)
        return None
    folder = tempfile.mkdtemp(prefix="pml-risk-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    return folder


class JwksPublisher:
    """The app's public JWKS as a static file the reverse proxy serves (docs/deploy.md §4).

    During a burst of launches every app thread can be waiting on an EHR's token endpoint, and
    that EHR, to check each client assertion, fetches the app's JWKS: served by the same
    threads, the fetch would queue behind the very exchanges waiting on it (measured: most of
    200 simultaneous launches ended in 502). A file served by the proxy never queues. It is
    written before the first worker starts and rewritten within ``interval`` seconds of
    ``pml-risk keys rotate`` changing the key file, by a thread in the gunicorn master.
    """

    def __init__(self, keys_file: str, target: Path, interval: float = 2.0) -> None:
        self.keys_file = Path(keys_file)
        self.target = target
        self.interval = interval
        self._seen: tuple[int, int] | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.keys_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def publish(self) -> None:
        """Write the file now (an empty key set when there is no key file), atomically."""
        stamp = self._stamp()
        public = keys.load(self.keys_file).public_jwks() if stamp else {"keys": []}
        self.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.target.with_name(f".{self.target.name}.tmp")
        tmp.write_text(json.dumps(public, indent=2), encoding="utf-8")
        tmp.chmod(0o644)  # public keys: the proxy's user reads them
        os.replace(tmp, self.target)
        self._seen = stamp

    def watch(self) -> None:
        """Start the thread that republishes after a rotation (a daemon: it dies with gunicorn)."""

        def loop() -> None:
            while True:
                time.sleep(self.interval)
                if self._stamp() != self._seen:
                    try:
                        self.publish()
                        log.info("public JWKS republished to %s", self.target)
                    except (OSError, keys.KeyFileError) as exc:  # keep the last good file
                        log.error("public JWKS not republished: %s", exc)

        threading.Thread(target=loop, name="jwks-publisher", daemon=True).start()


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
    when_ready: Callable[[], None] | None = None  # run in the master once it listens


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
            if options.when_ready is not None:
                ready = options.when_ready
                self.cfg.set("when_ready", lambda _server: ready())
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
    serve.add_argument("--public-jwks", metavar="FILE",
                       default=os.environ.get("PML_RISK_PUBLIC_JWKS") or None,
                       help="also write the public JWKS to FILE (kept current across key "
                       "rotations) for the reverse proxy to serve at /.well-known/jwks.json "
                       "(default: $PML_RISK_PUBLIC_JWKS)")
    serve.set_defaults(func=serve_command)
