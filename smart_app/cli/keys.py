"""``pml-risk keys generate|rotate|retire|show``: the app's signing keys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import config
from ..smart import keys
from .errors import EXIT_OK
from .errors import fail as _fail


def _keys_path(args: argparse.Namespace) -> Path:
    if args.keys_file:
        return Path(args.keys_file)
    return Path(config.load(args.config).keys_file)


def keys_generate_command(args: argparse.Namespace) -> int:
    try:
        target = _keys_path(args)
    except config.ConfigError as exc:
        return _fail(f"configuration: {exc}")
    try:
        if target.exists() and not args.force:
            return _fail(f"keys_file: {target} exists; use `pml-risk keys rotate` to replace "
                         "the current keys while keeping them published (or --force to discard "
                         "them)")
    except OSError as exc:  # a folder on the way the user may not enter
        return _unwritable(target, exc)
    generated = keys.generate()
    if (failed := _save(generated, target)) is not None:
        return failed
    print(f"wrote {target} (RS384 kid {generated.rsa.kid}, ES384 kid {generated.ec.kid})")
    return EXIT_OK


def _unwritable(target: Path, exc: OSError) -> int:
    return _fail(f"keys_file: {target} cannot be written: {exc.strerror}")


def _save(signing: keys.SigningKeys, target: Path) -> int | None:
    """Write the key file; on failure the one-line message's exit code (e.g. a keys folder
    owned by root while the app runs as its own user), never a traceback."""
    try:
        keys.save(signing, target)
    except OSError as exc:
        return _unwritable(target, exc)
    return None


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
        if (failed := _save(staged, target)) is not None:
            return failed
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
    if (failed := _save(new, target)) is not None:
        return failed
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
    if (failed := _save(old.retired(), target)) is not None:
        return failed
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


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
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
