"""Loads risk tables: a bundled table by id, or a deployment's own file by path.

The one module under ``risk/`` that reads files: it lives with the table files it loads, and
the engine never imports it (``tests/test_architecture.py``), so the rules stay free of I/O.
"""

from __future__ import annotations

import json
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..table import RiskTable, TableError

DEFAULT_TABLE = "berger-fox-2016"


def bundled_tables() -> list[str]:
    folder = resources.files("smart_app.risk") / "tables"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


@lru_cache(maxsize=16)
def load_table(name_or_path: str = DEFAULT_TABLE) -> RiskTable:
    """Tables are immutable and read once per process; a bad file raises ``TableError``."""
    if name_or_path.endswith((".toml", ".json")) or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise TableError(f"risk table file not found: {name_or_path}")
        text = path.read_text(encoding="utf-8")
    else:
        file = resources.files("smart_app.risk") / "tables" / f"{name_or_path}.toml"
        if not file.is_file():
            known = ", ".join(bundled_tables())
            raise TableError(f"unknown risk table {name_or_path!r} (bundled: {known})")
        text = file.read_text(encoding="utf-8")
    if name_or_path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TableError(f"risk table {name_or_path}: not valid JSON: {exc}") from exc
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TableError(f"risk table {name_or_path}: not valid TOML: {exc}") from exc
    return RiskTable.from_mapping(data)
