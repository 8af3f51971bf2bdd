"""``pml-risk assess``: the engine without the EHR.

A FHIR Bundle file in, a RiskAssessment (or a reason why none) out, with exit codes scripts can
rely on: 0 estimate, 3 no estimate possible, 2 bad input. It never prints a traceback for bad
input.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from decimal import Decimal
from typing import Any

from .. import config
from ..fhir.bundle import BundleError, read_bundle
from ..fhir.extract import ForeignResourceError
from ..fhir.outcome import operation_outcome
from ..fhir.present import text_summary
from ..risk.table import TableError

EXIT_OK, EXIT_BAD_INPUT, EXIT_NO_ESTIMATE = 0, 2, 3


def _emit(payload: dict[str, Any]) -> None:
    json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _fail(code: str, message: str) -> int:
    _emit(operation_outcome(code, [message]))
    print(f"pml-risk: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def assess_command(args: argparse.Namespace) -> int:
    from ..service import assess_chart  # the FHIR model import is slow: only when assessing

    try:
        with open(args.bundle, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return _fail("invalid", f"cannot read {args.bundle}: {exc.strerror}")
    try:
        at = date.fromisoformat(args.at) if args.at else date.today()
    except ValueError:
        return _fail("invalid", f"--at: expected a date YYYY-MM-DD, got {args.at!r}")
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _fail("structure", f"{args.bundle} is not JSON: {exc}")
    except RecursionError:
        return _fail("structure", f"{args.bundle} is not usable JSON: nested too deeply")
    try:
        settings = config.load(args.config)
        bundle = read_bundle(data)
        chart = assess_chart(
            bundle.resources,
            bundle.patient_id,
            at=at,
            settings=settings,
            full_urls=bundle.full_urls,
        )
    except BundleError as exc:
        return _fail(exc.code, f"{args.bundle}: {exc}")
    except ForeignResourceError as exc:
        return _fail("invalid", f"{args.bundle}: {exc}")
    except (config.ConfigError, TableError) as exc:
        return _fail("invalid", f"configuration: {exc}")

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
    assess.add_argument("bundle", help="a FHIR R4 Bundle (JSON) of one patient's resources")
    assess.add_argument("--at", help="assessment date YYYY-MM-DD (default: today)")
    assess.add_argument("--format", choices=("json", "text"), default="json")
    assess.add_argument("--config", help="configuration TOML (risk table, extra codes)")
    assess.set_defaults(func=assess_command)
