"""Mutated FHIR Bundles: real fixtures with a few elements replaced, removed or wrapped.

Starting from the project's fixtures keeps most of each case meaningful (a real chart with one
bad value reaches deep into the extractor and the engine, where a random JSON document would stop
at "not a Bundle"). The replacement values are the ones an adversarial review tries: wrong JSON
types, numbers JSON allows but Python chokes on (``1e99999999``, 5,000 digits), Unicode digits,
path segments, control characters, long runs of spaces (the backtracking-regex case), huge
strings and deep nesting.

Values that ``json.dumps`` cannot produce (raw number literals) are carried as :func:`raw`
markers and substituted into the serialised text by :func:`dumps`.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fhir_fixtures"
_RAW = "\x00raw:"
_RAW_TEXT = re.compile(r'"\\u0000raw:([^"]*)"')

Path_ = tuple[str | int, ...]


def raw(text: str) -> str:
    """A JSON literal inserted as is (a number ``json.dumps`` would never write)."""
    return _RAW + text


def dumps(doc: Any) -> str:
    return _RAW_TEXT.sub(lambda m: m.group(1), json.dumps(doc))


def deep(levels: int) -> str:
    return raw("[" * levels + "]" * levels)


#: A ReDoS case found in review: a lab value of spaces ending in a letter.
SPACES = " " * 20_000 + "x"

NASTY: list[Any] = [
    None, True, False, 0, -1, 2**31, 1.5, -0.0, "", " ", "x", ".", "..", "/", "Patient/..",
    "%2e%2e", "../../metadata", [], {}, [None], [[]], {"": ""}, {"coding": True},
    {"value": "1.2"}, {"reference": ".."}, [{"coding": [{"code": None}]}],
    raw("1e99999999"), raw("-1e99999999"), raw("1e-99999999"), raw("1" * 4000),
    raw("1" * 5000), raw("0." + "0" * 5000 + "1"), raw("1E400"), raw("-0"),
    "1e99999999", "1" * 5000, "²", "١٢٣", "٣.٥", "1.51", "0.2", "NaN", "Infinity", "-1",
    "\u2028", "\x00", "\r\nCRITICAL smart_app.audit forged", "\x1b[31mred", "<script>x</script>",
    SPACES, "1" + " " * 5000 + "x", "a" * 100_000, "index 1." + "5" * 5000,
    "2026-02-30", "9999-12-31T23:59:59+14:00", "0001-01-01", "2026", "2026-13", "20261125",
    "2026-11-25T25:61:00Z", "-2026-01-01", "2026-11-25T10:00:00",
    deep(5000), deep(200),
    # Comparators in every notation a lab writes, readable and not (docs/clinical-basis.md §3).
    "≥1.51", "≤0.19", "＞1.5", "＜0.2", "＞＝1.5", "⩾1.5", "≦0.20", "greater than 1.5",
    "less than or equal to 0.20", "LESS  THAN 0.2", "≥≥1.5", "not less than 1.5", "≥",
    "less than " + " " * 5000 + "1", "≥" * 5000, {"value": 1.5, "comparator": "≥"},
]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
values = st.one_of(st.sampled_from(NASTY), json_value, st.text(max_size=200))


@cache
def fixture_names() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "index.json"))


@cache
def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@cache
def paths(name: str) -> tuple[Path_, ...]:
    out: list[Path_] = []

    def walk(node: Any, here: Path_) -> None:
        out.append(here)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*here, key))
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, (*here, n))

    walk(fixture(name), ())
    return tuple(out)


def _parent(doc: Any, path: Path_) -> tuple[Any, str | int] | None:
    node = doc
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    if not path:
        return None
    return node, path[-1]


def mutate(doc: Any, path: Path_, op: str, value: Any) -> None:
    """Apply one mutation in place; a path made stale by an earlier one is skipped."""
    found = _parent(doc, path)
    if found is None:
        return
    parent, key = found
    try:
        current = parent[key]
    except (KeyError, IndexError, TypeError):
        return
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif op == "wrap":  # a scalar where an array is expected, or the reverse
        parent[key] = current[0] if isinstance(current, list) and current else [current]
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(int(key), copy.deepcopy(current))
    elif op == "add" and isinstance(current, dict):
        current[str(value)[:20] if not isinstance(value, str) else value[:20] or "x"] = value


OPS = ("replace", "replace", "replace", "delete", "wrap", "duplicate", "add")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...<{len(text)} chars>"


class Case:
    """A fixture and the mutations applied to it; its repr is what a failure report shows."""

    def __init__(self, name: str, doc: Any) -> None:
        self.name = name
        self.doc = doc
        self.steps: list[tuple[Path_, str, Any]] = []

    def __repr__(self) -> str:
        steps = "; ".join(f"{op} {'/'.join(map(str, path))} = {_short(value)}"
                          for path, op, value in self.steps)
        return f"Case({self.name}: {steps})"


@st.composite
def bundles(draw: st.DrawFn, names: tuple[str, ...] | None = None,
            max_mutations: int = 4) -> Case:
    """A fixture Bundle with 1..``max_mutations`` mutations (a JSON-able ``doc``, raw markers
    included)."""
    name = draw(st.sampled_from(names or fixture_names()))
    case = Case(name, copy.deepcopy(fixture(name)))
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(paths(name)[1:]))  # not the root itself
        op, value = draw(st.sampled_from(OPS)), draw(values)
        mutate(case.doc, path, op, value)
        case.steps.append((path, op, value))
    return case
