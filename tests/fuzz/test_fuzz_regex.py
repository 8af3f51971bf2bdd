"""Every regular expression the app runs on outside input, fed strings built to make a
backtracking engine take quadratic or exponential time: each call must stay within its deadline.

The inputs are long runs of what a pattern's repetitions accept, separated by what makes the
match fail at the last moment (the shape of the lab-value ReDoS found in review). The lab-value
parser itself is covered by ``test_fuzz_cli`` (a chart's values go through ``pml-risk assess``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from smart_app.fhir import codes
from smart_app.ops.logs import escape_controls, redact
from smart_app.smart.context import is_fhir_id
from smart_app.smart.scopes import GrantedScopes
from smart_app.web.errors import AppError
from smart_app.web.page import overrides
from smart_app.web.page.style import _clean

from .budget import count, fuzz

VOCAB = codes.Vocabulary.from_config()
DEADLINE = 0.5  # seconds for one call on up to ~400 KB of text, on a loaded CI machine

PIECES = [" ", "\t", "\n", "a", "0", "1.", ".", "-", "_", "=", "&", ":", "@", "/", "eyJ", "eyJ-",
          "jc", "jc ", "virus", "index", "Bearer ", "code=", "\"code\":", "rgb(", "1px",
          "patient/", "Observation.", "rs?", "/launches/", "http://", "a:b@", "%", "\x00", "é"]

texts = st.builds(
    lambda parts, times, tail: "".join(parts) * times + tail,
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=4),
    st.integers(1, 100_000),
    st.sampled_from(["", "x", "!", "\n", "\"", ")", "."]),
).filter(lambda s: len(s) <= 400_000)


def _within(call: Callable[[str], Any], text: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(AppError):  # a refusal is an answer
        call(text)
    took = time.perf_counter() - started
    assert took < DEADLINE, f"{getattr(call, '__name__', call)} took {took:.2f} s on " \
                            f"{len(text)} characters starting {text[:40]!r}"


def _override(name: str) -> Callable[[str], Any]:
    return lambda text: overrides.parse({name: text})


CALLS: list[Callable[[str], Any]] = [
    redact, escape_controls, is_fhir_id, _clean,
    lambda text: GrantedScopes.parse(text),
    lambda text: codes.jcv_kind({"text": text, "coding": [{"display": text}]}, VOCAB),
    _override("index"), _override("infusions"), _override("reason"),
]


@fuzz(ci=25)
@given(text=texts)
def test_regexes_stay_linear(text: str) -> None:
    count("regex: crafted strings")
    for call in CALLS:
        _within(call, text)
