"""The clinician's "what if": overrides read from a query string or a JSON body, strictly.

The same parameters drive the page (``/launches/<id>?prior_is=yes``), its update fragment, the
assessment JSON and the save request, so what is saved is what was on screen. A bad value is a
clear 400, never silently ignored: an override the clinician believes applied but did not would
show a wrong number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from ...risk.records import Antibody, Overrides
from ..errors import AppError

#: The accepted parameters, in the order they appear in URLs.
PARAMS = ("prior_is", "antibody", "index", "infusions", "reason")
MAX_INDEX = Decimal("20")
MAX_INFUSIONS = 500
MAX_REASON = 200
# ASCII digits only: ``\d`` and ``str.isdigit`` also accept "²" and Arabic-Indic digits, which
# ``int()`` then rejects (a 500) or reads as a number nobody typed.
_INDEX = re.compile(r"[0-9]{1,2}(\.[0-9]{1,3})?")
_COUNT = re.compile(r"[0-9]{1,4}")


def _bad(detail: str) -> AppError:
    return AppError(400, "The what-if value is not valid", detail, "bad-override")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(f"{name}: expected a text value.")
    return str(value).strip()


def _prior(value: str) -> bool | None:
    if value == "":
        return None
    if value in ("yes", "no"):
        return value == "yes"
    raise _bad("prior_is: expected yes or no (or empty for the chart's value).")


def _antibody(value: str) -> Antibody | None:
    if value == "":
        return None
    if value in ("positive", "negative"):
        return Antibody(value)
    raise _bad("antibody: expected positive or negative (or empty for the chart's value).")


def _index(value: str) -> tuple[Decimal | None, bool]:
    """(index, clear_index); "none" means "positive, index not available"."""
    if value == "":
        return None, False
    if value.lower() == "none":
        return None, True
    if not _INDEX.fullmatch(value):
        raise _bad("index: expected a number between 0 and 20 with up to 3 decimals (e.g. 1.2),"
                   " or none.")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guarantees it
        raise _bad("index: expected a number.") from exc
    if number > MAX_INDEX:
        raise _bad("index: expected a number between 0 and 20.")
    return number, False


def _infusions(value: str) -> int | None:
    if value == "":
        return None
    if not _COUNT.fullmatch(value) or int(value) > MAX_INFUSIONS:
        raise _bad(f"infusions: expected a whole number from 0 to {MAX_INFUSIONS}.")
    return int(value)


def _reason(value: str) -> str:
    text = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C")
    if len(text) > MAX_REASON:
        raise _bad(f"reason: at most {MAX_REASON} characters.")
    return " ".join(text.split())


#: Why Save is off, and what a save without it answers: a what-if changes the figure the
#: chart will hold, so the note must say why (docs/clinical-basis.md §9).
REASON_REQUIRED = ("Give the reason for the what-if values (the Reason field) before saving: "
                   "an override is saved only with its reason, which goes into the note.")


def repeated(values: Mapping[str, Any]) -> list[str]:
    """The parameters given more than once (``?index=2.0&index=x``). Taking the first and
    ignoring the rest would apply a value the clinician may not see, so such a request is
    refused, never read."""
    getlist = getattr(values, "getlist", None)
    if getlist is None:
        return []
    return [name for name in PARAMS if len(getlist(name)) > 1]


def _once(values: Mapping[str, Any]) -> None:
    twice = repeated(values)
    if twice:
        raise _bad(f"{', '.join(twice)}: given more than once; give each what-if value once.")


def parse(values: Mapping[str, Any]) -> Overrides:
    """Overrides from request args or a JSON object; empty values mean "the chart's value"."""
    _once(values)
    raw = {name: _text(values.get(name), name) for name in PARAMS}
    index, clear = _index(raw["index"])
    overrides = Overrides(
        prior_immunosuppressant=_prior(raw["prior_is"]),
        antibody=_antibody(raw["antibody"]),
        index=index,
        clear_index=clear,
        infusion_count=_infusions(raw["infusions"]),
        reason=_reason(raw["reason"]),
    )
    if overrides.reason and not overrides.any():
        return Overrides()  # a reason alone changes nothing; do not mark the result overridden
    return overrides


#: What each field's error says beside the field on the page (the JSON API keeps ``parse``).
FIELD_ERRORS = {
    "prior_is": "Choose yes, no or “From the chart”.",
    "antibody": "Choose positive, negative or “From the chart”.",
    "index": "Enter a number from 0 to 20 with up to 3 decimals (for example 1.2), or “none”.",
    "infusions": f"Enter a whole number from 0 to {MAX_INFUSIONS}.",
    "reason": f"Use at most {MAX_REASON} characters.",
}
#: Beside a field whose parameter the address gives more than once.
REPEATED = "Given more than once in the address: enter this value once and apply again."


def check(values: Mapping[str, Any]) -> tuple[Overrides, dict[str, str]]:
    """Every field checked on its own, for the page: the overrides of the valid fields, and an
    error per invalid field (shown beside it; the page then marks its result stale)."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    twice = repeated(values)
    for name in PARAMS:
        if name in twice:
            errors[name] = REPEATED
            continue
        try:
            parse({name: values.get(name)})
        except AppError:
            errors[name] = FIELD_ERRORS[name]
            continue
        value = values.get(name)
        if value is not None:
            clean[name] = str(value)
    return parse(clean), errors


def to_params(o: Overrides) -> dict[str, str]:
    """The canonical parameters of ``o`` (only the ones set), for URLs and the save body."""
    params: dict[str, str] = {}
    if o.prior_immunosuppressant is not None:
        params["prior_is"] = "yes" if o.prior_immunosuppressant else "no"
    if o.antibody is not None:
        params["antibody"] = o.antibody.value
    if o.index is not None:
        params["index"] = f"{o.index.normalize():f}"
    elif o.clear_index:
        params["index"] = "none"
    if o.infusion_count is not None:
        params["infusions"] = str(o.infusion_count)
    if o.reason and o.any():
        params["reason"] = o.reason
    return params


def query(o: Overrides) -> str:
    """``?prior_is=yes&...`` or ``""``."""
    params = to_params(o)
    return "?" + urlencode(params) if params else ""
