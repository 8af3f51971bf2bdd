"""``pml-risk assess``: the engine without the EHR.

A FHIR Bundle file (or ``-``, standard input) in, a RiskAssessment (or a reason why none) out,
with exit codes scripts can rely on: 0 estimate, 3 no estimate possible, 2 bad input. It never
prints a traceback for bad input; ``--format text`` applies to errors too (a plain line instead
of an OperationOutcome).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .. import config
from ..fhir.bundle import BundleError, read_bundle
from ..fhir.extract import ForeignResourceError
from ..fhir.outcome import operation_outcome
from ..fhir.present import text_summary
from ..fhir.shape import MalformedResource
from ..risk.table import TableError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_NO_ESTIMATE = 0, 1, 2, 3
MAX_INPUT = 64 * 1024 * 1024  # bytes of Bundle read; a chart is a few MB at most


def _emit(payload: dict[str, Any]) -> None:
    json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _fail(code: str, message: str, text: bool = False) -> int:
    if text:
        sys.stdout.write(f"No estimate: bad input. {message}\n")
    else:
        _emit(operation_outcome(code, [message]))
    print(f"pml-risk: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _read(source: str) -> bytes:
    """The Bundle's bytes from a file or, for ``-``, standard input (bounded either way)."""
    if source == "-":
        data: bytes = sys.stdin.buffer.read(MAX_INPUT + 1)
    else:
        with open(source, "rb") as fh:
            data = fh.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise ValueError(f"larger than {MAX_INPUT // (1024 * 1024)} MB")
    return data


SOURCE_TYPES = ("Observation", "MedicationAdministration", "MedicationStatement",
                "MedicationRequest")


def _types(option: str, value: str | None) -> tuple[str, ...]:
    """``--unread A,B``: resource types from SOURCE_TYPES; ValueError names a wrong one."""
    types = tuple(t.strip() for t in (value or "").split(",") if t.strip())
    wrong = [t for t in types if t not in SOURCE_TYPES]
    if wrong:
        raise ValueError(f"{option}: unknown resource type {wrong[0]!r} (one of "
                         f"{', '.join(SOURCE_TYPES)})")
    return types


def assess_command(args: argparse.Namespace) -> int:
    """The assessment, with every failure of the input turned into exit 2 and one message.

    A failure nobody anticipated (a bug) is exit 1 with the exception's type and no traceback:
    its text could quote chart data.
    """
    try:
        return _assess(args)
    except Exception as exc:  # the last resort; the fuzz suite asserts it is never reached
        print(f"pml-risk: internal error ({type(exc).__name__}) while assessing {args.bundle}; "
              "please report it", file=sys.stderr)
        return EXIT_INTERNAL


def _assess(args: argparse.Namespace) -> int:
    from ..service import assess_chart  # the FHIR model import is slow: only when assessing

    text = args.format == "text"
    name = "standard input" if args.bundle == "-" else args.bundle
    try:
        unread = _types("--unread", args.unread)
        not_offered = _types("--not-offered", args.not_offered)
    except ValueError as exc:
        return _fail("invalid", str(exc), text)
    try:
        raw = _read(args.bundle)
    except OSError as exc:
        return _fail("invalid", f"cannot read {name}: {exc.strerror}", text)
    except ValueError as exc:
        return _fail("too-costly", f"{name} is too large: {exc}", text)
    try:
        at = date.fromisoformat(args.at) if args.at else None
    except ValueError:
        return _fail("invalid", f"--at: expected a date YYYY-MM-DD, got {args.at!r}", text)
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _fail("structure", f"{name} is not JSON: {exc}", text)
    except RecursionError:
        return _fail("structure", f"{name} is not usable JSON: nested too deeply", text)
    except ValueError:  # CPython refuses integers of more than 4,300 digits
        return _fail("structure", f"{name} is not usable JSON: a number has too many digits",
                     text)
    try:
        settings = config.load(args.config)
        if at is None:  # the clinic's calendar day, as on the page: not the host's
            at = datetime.now(ZoneInfo(settings.timezone)).date()
        bundle = read_bundle(data)
        chart = assess_chart(
            bundle.resources,
            bundle.patient_id,
            at=at,
            settings=settings,
            full_urls=bundle.full_urls,
            unread=unread,
            not_offered=not_offered,
        )
    except BundleError as exc:
        return _fail(exc.code, f"{name}: {exc}", text)
    except (ForeignResourceError, MalformedResource) as exc:
        return _fail("invalid", f"{name}: {exc}", text)
    except RecursionError:
        return _fail("structure", f"{name}: nested too deeply", text)
    except (config.ConfigError, TableError) as exc:
        return _fail("invalid", f"configuration: {exc}", text)

    a = chart.assessment
    if chart.risk_assessment is None:
        missing = [f.message for f in a.missing]
        if args.format == "text":
            sys.stdout.write(text_summary(a))
        else:
            _emit(operation_outcome("incomplete", missing))
        print(f"pml-risk: no estimate for {a.patient}: {missing[0]}", file=sys.stderr)
        return EXIT_NO_ESTIMATE
    if args.format == "text":
        sys.stdout.write(text_summary(a))
    else:
        _emit(chart.risk_assessment)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    assess = subparsers.add_parser(
        "assess",
        help="assess one patient's FHIR Bundle and print a RiskAssessment",
        description="Exit codes: 0 estimate made, 3 no estimate possible (OperationOutcome "
        "'incomplete' names what is missing), 2 bad input.",
    )
    assess.add_argument("bundle", help="a FHIR R4 Bundle (JSON) of one patient's resources, "
                        "or - to read it from standard input")
    assess.add_argument("--at", help="assessment date YYYY-MM-DD (default: today in the "
                        "configured clinic time zone, timezone in --config)")
    assess.add_argument("--format", choices=("json", "text"), default="json")
    assess.add_argument("--config", help="configuration TOML (risk table, extra codes)")
    assess.add_argument(
        "--unread", metavar="TYPES",
        help="resource types the EHR offers but did not let you read, comma-separated (e.g. "
        "MedicationStatement): they are unknown, never 'none on record'",
    )
    assess.add_argument(
        "--not-offered", metavar="TYPES",
        help="resource types the EHR does not offer at all, comma-separated",
    )
    assess.set_defaults(func=assess_command)
