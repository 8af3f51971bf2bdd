"""``pml-risk check-config``: validate a configuration and show what each tenant will use.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import EXIT_CONFIG, EXIT_OK


def check_config_command(args: argparse.Namespace) -> int:
    from ..ops.checkconfig import check

    report = check(args.file, offline=args.offline)
    sys.stdout.write(report.render())
    return EXIT_CONFIG if report.errors else EXIT_OK


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    check_cmd = subparsers.add_parser(
        "check-config", help="validate a configuration and show what each tenant will use",
        description="Exit 0 when the configuration is usable, 2 otherwise. Contacts the "
        "session store and each tenant's discovery URL unless --offline.")
    check_cmd.add_argument("file", help="configuration TOML")
    check_cmd.add_argument("--offline", action="store_true",
                           help="skip the session-store and discovery checks")
    check_cmd.set_defaults(func=check_config_command)
