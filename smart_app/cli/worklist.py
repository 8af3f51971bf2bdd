"""``pml-risk worklist``: the nightly natalizumab worklist, from a Bulk export or NDJSON files.

Exit codes: 0 the worklist was written and every patient whose chart could not be read has a
"no estimate" row with the reason; 1 no trustworthy list could be made (token, export, download,
errors naming no patient, a cap passed) and the previous ``worklist.*`` files are left as they
were, or (incremental runs) changed charts could not be re-read and are listed without a figure;
2 bad input or configuration; 130 interrupted. Messages go to standard error and never hold PHI
or tokens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import config
from ..ops import logs
from ..risk.table import TableError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"pml-risk worklist: {message}", file=sys.stderr)
    return code


#: Signals that end a run: a scheduler's kill (TERM), a closed terminal or SSH session (HUP),
#: Ctrl-\ (QUIT). Each unwinds like Ctrl-C, so the PHI folder is removed on the way out.
ENDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT")
                       if hasattr(signal, name))


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Ending signals raise ``SystemExit(128 + signum)`` so every ``finally`` runs."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    try:
        for sig in ENDING_SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (e.g. called from a test thread): nothing to do
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _tenant(settings: config.Settings, wanted: str) -> config.Tenant | None:
    return next((t for t in settings.tenants if wanted in (t.name, t.iss)), None) or \
        settings.tenant_for(wanted)


def worklist_command(args: argparse.Namespace) -> int:
    """The run, and its figures for the node_exporter textfile collector (``--metrics-file``)."""
    started = time.monotonic()
    outcome: dict[str, Any] = {}
    code = _worklist(args, outcome)
    if args.metrics_file:
        from ..ops.metrics import Metrics

        metrics = Metrics(multiprocess=False)  # this run's figures only, in this file
        metrics.observe_worklist(status="ok" if code == EXIT_OK else "failed",
                                 patients=outcome.get("patients"),
                                 estimates=outcome.get("estimates"),
                                 seconds=time.monotonic() - started)
        target = Path(args.metrics_file)
        try:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(metrics.render())
            tmp.chmod(0o644)  # counts only: node_exporter's user reads them
            os.replace(tmp, target)
        except OSError as exc:
            print(f"pml-risk worklist: --metrics-file: cannot write {target}: {exc.strerror}",
                  file=sys.stderr)
    return code


def _worklist(args: argparse.Namespace, outcome: dict[str, Any]) -> int:
    from ..worklist.errors import WorklistError
    from ..worklist.ndjson import NdjsonError
    from ..worklist.run import from_ndjson

    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        return _fail(f"configuration: {exc}")
    try:
        at = (date.fromisoformat(args.at) if args.at
              else datetime.now(ZoneInfo(settings.timezone)).date())
    except ValueError:
        return _fail(f"--at: expected a date YYYY-MM-DD, got {args.at!r}")
    tenant = None
    if args.tenant:
        tenant = _tenant(settings, args.tenant)
        if tenant is None:
            names = ", ".join(t.name for t in settings.tenants) or "none configured"
            return _fail(f"--tenant: no tenant named {args.tenant!r} ({names})")
    if args.from_ndjson and (args.group or args.since):
        return _fail("--from-ndjson excludes --group and --since")
    if not args.from_ndjson and not (tenant and args.group):
        return _fail("give --tenant and --group (a Bulk export), or --from-ndjson DIR")
    if args.workers is not None and not 1 <= args.workers <= 16:
        return _fail("--workers: expected 1 to 16")
    options = None
    if not args.from_ndjson:
        from ..worklist.export import ExportOptions

        try:
            options = ExportOptions.from_args(args)
        except ValueError as exc:
            return _fail(str(exc))
    try:
        limits = _limits(args)
    except ValueError as exc:
        return _fail(str(exc))
    logs.configure(settings.audit.path)
    out = Path(args.out)
    try:
        with _terminate_as_exit():
            if args.from_ndjson:
                result = from_ndjson(Path(args.from_ndjson), out=out, at=at, settings=settings,
                                     tenant=tenant, workers=args.workers, limits=limits)
            else:
                from ..worklist.run import from_ehr

                assert tenant is not None and options is not None
                result = from_ehr(tenant, args.group, out=out, at=at, settings=settings,
                                  options=options, workers=args.workers, limits=limits)
    except NdjsonError as exc:
        return _fail(str(exc))
    except (config.ConfigError, TableError) as exc:
        return _fail(f"configuration: {exc}")
    except WorklistError as exc:
        return _fail(f"{exc}; the previous worklist files are unchanged", EXIT_FAILED)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror}")
    except KeyboardInterrupt:
        return _fail("interrupted; the temporary files were removed and the previous worklist "
                     "files are unchanged", EXIT_INTERRUPTED)
    counts = result.summary["counts"]
    outcome.update(patients=counts["patients"], estimates=counts["estimates"])
    print(f"wrote {len(result.files)} files to {out}: {counts['patients']} patients, "
          f"{counts['estimates']} with an estimate, {counts['no_estimate']} without, "
          f"{counts['retest_due_this_month']} with a retest due this month or overdue")
    for note in result.summary["notes"]:
        print(f"note: {note}")
    if result.incomplete:
        return _fail("; ".join(result.incomplete), EXIT_FAILED)
    return EXIT_OK


def _limits(args: argparse.Namespace) -> Any:
    from ..worklist.ndjson import MB, Limits

    default = Limits()
    values = {
        "line_bytes": getattr(args, "max_line_mb", None),
        "file_bytes": getattr(args, "max_file_mb", None),
        "run_bytes": getattr(args, "max_run_mb", None),
    }
    fields: dict[str, int] = {}
    for name, value in values.items():
        if value is not None:
            if value <= 0:
                raise ValueError(f"--max-{name.split('_')[0]}-mb: expected a positive number")
            fields[name] = int(value * MB)
    resources = getattr(args, "max_patient_resources", None)
    if resources is not None:
        if resources < 1:
            raise ValueError("--max-patient-resources: expected a positive number")
        fields["patient_resources"] = resources
    return Limits(**{**default.__dict__, **fields})


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    cmd = subparsers.add_parser(
        "worklist",
        help="the natalizumab cohort's PML risk and what is due (Bulk export or NDJSON)",
        description="Writes worklist.csv, worklist.json and worklist.html to --out. Exit codes: "
        "0 written, 2 bad input or configuration, 1 the EHR side failed.",
    )
    cmd.add_argument("--config", default=None, help="configuration TOML (tenants, keys, codes)")
    cmd.add_argument("--metrics-file", default=None, metavar="FILE",
                     help="write the run's metrics (Prometheus text format) here, for "
                     "node_exporter's textfile collector")
    cmd.add_argument("--tenant", help="tenant name (or iss) to export from and to link to")
    cmd.add_argument("--group", help="Group id to export (the cohort registry)")
    cmd.add_argument("--from-ndjson", metavar="DIR",
                     help="read NDJSON files (.ndjson, .ndjson.gz; per type or mixed) instead")
    cmd.add_argument("--out", required=True, help="folder for the worklist files")
    cmd.add_argument("--at", help="assessment date YYYY-MM-DD (default: today, clinic time)")
    cmd.add_argument("--since", metavar="INSTANT|last",
                     help="incremental run: export only what changed since this FHIR instant "
                     "('last': the previous run's transactionTime in --out), read those charts "
                     "in full and keep the other rows")
    cmd.add_argument("--wait", type=float, default=6 * 3600, metavar="SECONDS",
                     help="longest wait for the export to complete (default 6 hours)")
    cmd.add_argument("--per-patient", default="", metavar="TYPES",
                     help="comma-separated types to read by per-patient search instead of the "
                     "export (e.g. MedicationAdministration, for servers that omit it)")
    cmd.add_argument("--concurrency", type=int, default=4,
                     help="parallel per-patient searches (default 4)")
    cmd.add_argument("--observations", choices=("category", "jcv-codes"), default="category",
                     help="_typeFilter for Observations: the app's own category narrowing "
                     "(default) or only the anti-JCV codes (smaller; local codes must be "
                     "configured under [codes])")
    cmd.add_argument("--workers", type=int, default=None,
                     help="processes assessing charts (default: every core, at most 4, from 500 "
                     "patients; 1 below)")
    cmd.add_argument("--max-line-mb", type=float, default=None, metavar="MB",
                     help="longest NDJSON line, one resource (default 16)")
    cmd.add_argument("--max-file-mb", type=float, default=None, metavar="MB",
                     help="largest export file once decompressed (default 4096)")
    cmd.add_argument("--max-run-mb", type=float, default=None, metavar="MB",
                     help="all export files of the run together, decompressed (default 32768)")
    cmd.add_argument("--max-patient-resources", type=int, default=None, metavar="N",
                     help="resources in one chart; a larger chart gets no estimate "
                     "(default 20000)")
    cmd.set_defaults(func=worklist_command)
