"""JSON from outside, parsed only when its nesting is bounded.

``json.loads`` recurses once per nested array or object: ``[`` × 3,000 raises
``RecursionError`` deep inside the parser (a 500 wherever it is not caught), and a deeper one
costs a thread's whole stack. FHIR and CDS Hooks bodies nest about a dozen levels; the depth is
checked first with one linear scan that knows JSON strings (brackets inside a string do not
count), so a hostile body is refused before the parser ever sees it.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


_KEEP = b'"[]{}'
_DROP = bytes(i for i in range(256) if i not in _KEEP)


def depth_of(data: str | bytes) -> int:
    """The deepest nesting of arrays and objects, strings skipped (a bracket inside a string
    does not count). Linear and mostly in C: escaped backslashes and quotes are removed, then
    every byte but quotes and brackets, then the strings (now bare quote pairs); only the
    brackets left are walked in Python. UTF-8 continuation bytes are never ASCII, so they
    cannot be taken for a quote or a bracket."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    deepest = depth = 0
    for ch in b"".join(raw.split(b'"')[::2]):  # outside strings: the even pieces
        if ch in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted input; raises ``ValueError`` with a clear message when the
    text is not JSON, not UTF-8, or nests more than ``max_depth`` levels."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError("the body is not UTF-8 text") from exc
    else:
        text = data
    if depth_of(data) > max_depth:
        raise ValueError(f"the JSON nests more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except RecursionError as exc:  # a lower recursion limit than the scan assumed
        raise ValueError("the JSON nests too deeply to read") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not valid JSON ({exc.msg})") from exc
