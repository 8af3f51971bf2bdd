"""The ``pml-risk`` command line: one module per command, each with a ``register`` function.

Every command's ``func`` takes the parsed arguments and returns its exit code. The engine-only
``assess`` command imports nothing from the web layer, so it stays fast to start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..ops import build
from . import assess, check, demo, keys, serve, worklist

EXIT_OK = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pml-risk", description="PML risk for natalizumab-treated MS patients (SMART app)."
    )
    parser.add_argument("--version", action="version",
                        version=f"pml-risk {build.describe()}",
                        help="print the version (and the build's commit where known) and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (assess, serve, check, demo, keys, worklist):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # e.g. piped into `head`: not an error worth a traceback
        sys.stderr.close()
        return EXIT_OK
    return code
