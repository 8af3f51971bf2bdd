"""The patient handout: the clinician's result in plain words, with an icon array.

Every sentence comes from ``handout.toml`` (one table per language), so a translation is a new
table, not a code change. Nothing here computes risk: the figure, the band, the inputs and the
next retest date come from the assessment JSON the page shows; this module only rounds the
figure for people ("about 9 in 1,000") and draws that count.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ...risk.monitoring import HIGHER_RISK_FROM_INFUSIONS

STRINGS = Path(__file__).with_name("handout.toml")
LANGUAGE = "en"


@functools.cache
def strings(language: str = LANGUAGE) -> Mapping[str, Any]:
    with STRINGS.open("rb") as f:
        table: dict[str, Any] = tomllib.load(f)[language]
    return table


@dataclass(frozen=True)
class IconArray:
    """``count`` of ``total`` people coloured, drawn as a grid (row by row from the top left).

    People are "about N in 1,000" from 0.5 per 1,000 up; below that the grid is 10,000 dots
    ("about N in 10,000"); below 0.05 per 1,000 no dot would be coloured, and the words say so.
    """

    total: int
    count: int
    columns: int
    cell: int  # the grid step in SVG units
    kind: str  # "people" or "dots"

    @property
    def rows(self) -> int:
        return self.total // self.columns

    @property
    def width(self) -> int:
        return self.columns * self.cell

    @property
    def height(self) -> int:
        return self.rows * self.cell

    def positions(self) -> list[tuple[int, int]]:
        """The top-left corner of each coloured person: people fill from the top left; the few
        dots of 10,000 sit in a row in the middle of the grid, where their rings are drawn
        whole and the eye finds them at any width."""
        if self.kind == "dots":
            step = 6  # cells apart, so the rings do not overlap
            row, first = self.rows // 2, (self.columns - step * (self.count - 1)) // 2
            return [((first + step * i) * self.cell, row * self.cell) for i in range(self.count)]
        return [((i % self.columns) * self.cell, (i // self.columns) * self.cell)
                for i in range(self.count)]


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def icon_array(per_1000: Decimal) -> IconArray:
    if per_1000 >= Decimal("0.5"):
        return IconArray(1000, _round(per_1000), 50, 12, "people")
    return IconArray(10000, _round(per_1000 * 10), 100, 5, "dots")


def _date(day: str | None, s: Mapping[str, Any]) -> str:
    if not day:
        return ""
    d = date.fromisoformat(day)
    return str(s["date_format"]).format(month=s["months"][d.month - 1], day=d.day, year=d.year)


def _stage(band: str, infusions: int, s: Mapping[str, Any]) -> str:
    """"infusions 25 to 48" from the band label "25–48 infusions"."""
    span = band.removesuffix(" infusions")
    if span.endswith("+"):
        low = int(span[:-1])
        return str(s["stage_after"]).format(before=low - 1)
    low_text, _, high_text = span.partition("–")
    low, high = int(low_text), int(high_text)
    if infusions > high:
        return str(s["stage_past"]).format(before=high, min=low, max=high)
    if low <= 1:
        return str(s["stage_first"]).format(max=high)
    return str(s["stage_range"]).format(min=low, max=high)


def _risk(result: Mapping[str, Any] | None, infusions: int,
          s: Mapping[str, Any]) -> dict[str, Any]:
    if result is None:
        return {}
    per_1000 = Decimal(str(result["per1000"]))
    icons = icon_array(per_1000)
    if icons.total == 1000:
        headline = str(s["risk_per_1000"]).format(n=icons.count)
        caption = str(s["icons_people"]).format(n=icons.count)
    elif icons.count:
        headline = str(s["risk_per_10000"]).format(n=icons.count)
        caption = str(s["icons_dots"]).format(n=icons.count)
    else:
        headline, caption = str(s["risk_tiny"]), str(s["icons_none"])
    stage = str(s["stage"]).format(stage=_stage(str(result["cell"]["band"]), infusions, s))
    return {"headline": headline, "caption": caption, "stage": stage, "icons": icons}


def index_words(text: str, s: Mapping[str, Any]) -> str:
    """"above 1.5" for a result reported as ">1.5": a patient reads no comparison signs."""
    for sign, key in ((">", "index_above"), ("<", "index_below")):
        if text.startswith(sign):
            return str(s[key]).format(value=text.lstrip("<>=").strip())
    return text


def raises_extended_interval(payload: Mapping[str, Any]) -> bool:
    """Whether the handout tells the patient that infusions further apart may lower the risk:
    for everyone whose antibody is not known negative (the TOUCH analysis of extended-interval
    dosing concerns anti-JCV positive patients). The clinician's page says it whenever this is
    true, so no patient asks about something the page never mentioned."""
    return str(payload["inputs"]["antibody"]["status"]) != "negative"


def _about_you(inputs: Mapping[str, Any], s: Mapping[str, Any]) -> list[str]:
    ab, ex, pi = inputs["antibody"], inputs["exposure"], inputs["priorImmunosuppressant"]
    when = _date(ab.get("testedOn"), s)
    lines = []
    if ab["status"] == "positive" and ab.get("index"):
        lines.append(str(s["you_positive_index"]).format(
            date=when, index=index_words(str(ab.get("indexText") or ab["index"]), s)))
    elif ab["status"] == "positive":
        lines.append(str(s["you_positive"]).format(date=when))
    elif ab["status"] == "negative":
        lines.append(str(s["you_negative"]).format(date=when))
    elif ab["status"] == "indeterminate":
        lines.append(str(s["you_unclear"]))
    else:
        lines.append(str(s["you_missing"]))
    count = ex["infusions"]
    if not ex.get("unknown"):
        key = "you_infusions_none" if count == 0 else (
            "you_infusion_one" if count == 1 else "you_infusions")
        lines.append(str(s[key]).format(n=count))
    lines.append(str(s["you_prior_yes" if pi["value"] else "you_prior_no"]))
    return lines


def _plan(payload: Mapping[str, Any], s: Mapping[str, Any]) -> list[dict[str, str]]:
    """What is done and why: the MRI interval by the monitoring rule of
    docs/clinical-basis.md §6, the antibody retest as the page advises it (its due date, or now)."""
    status = payload["inputs"]["antibody"]["status"]
    infusions = payload["inputs"]["exposure"]["infusions"]
    if payload["result"] is None:
        mri = "plan_mri_later"
    elif status == "negative":
        mri = "plan_mri_yearly"
    elif infusions >= HIGHER_RISK_FROM_INFUSIONS:
        mri = "plan_mri_often"
    else:
        mri = "plan_mri_yearly_then_often"
    plan = [{"do": str(s[mri]), "why": str(s["plan_mri_why"])}]
    due = payload["monitoring"].get("antibodyRetestDue")
    if due:
        test = str(s["plan_test_now"]) if due <= payload["assessedOn"] else (
            str(s["plan_test_every"]).format(date=_date(due, s)))
        plan.append({"do": test, "why": str(s["plan_test_why"])})
    return plan


def context(payload: Mapping[str, Any], patient_name: str | None, birth_date: str | None,
            version: str, language: str = LANGUAGE, *, example: bool = False,
            phone: str = "") -> dict[str, Any]:
    """The handout template's variables: every text already in the reader's words.

    ``example``: the payload carries what-if values, not the chart's: the sheet says "Example,
    not your results" in its title and on every printed page, so it cannot pass for the
    patient's own result. ``phone``: the clinic's number (the tenant's ``clinic_phone``)."""
    s = strings(language)
    result = payload["result"]
    status = payload["inputs"]["antibody"]["status"]
    no_estimate = None
    if result is None:
        no_estimate = s["no_estimate_jcv"] if status in ("unknown", "indeterminate") else (
            s["no_estimate"])
    return {
        "s": s,
        "name": patient_name,
        "born": str(s["born"]).format(date=_date(birth_date, s)) if birth_date else None,
        "made_on": str(s["made_on"]).format(date=_date(payload["assessedOn"], s)),
        "risk": _risk(result, payload["inputs"]["exposure"]["infusions"], s),
        "no_estimate": no_estimate,
        "about_you": _about_you(payload["inputs"], s),
        "plan": _plan(payload, s),
        "made_by": str(s["made_by"]).format(version=version),
        "example": example,
        "title": f"{s['example_mark']}: {s['title']}" if example else str(s["title"]),
        "lowers": [*s["lowers"], *([s["lowers_eid"]] if raises_extended_interval(payload) else [])],
        "call": str(s["call_phone"]).format(phone=phone) if phone else str(s["call_no_phone"]),
    }
