"""Assessment → a CDS Hooks card (CDS Hooks 2.0 §CDS Service Response; HL7 REMS IG card advice).

* ``summary``: one line under 140 characters with the figure the app shows
  ("PML risk 8.8 per 1,000 (anti-JCV index 1.51, 25 infusions)"), or why there is none and what
  to order;
* ``indicator``: ``warning`` when any of ``WARNINGS`` holds (no estimate, the higher-risk
  group, an overdue retest), else ``info``; never ``critical`` (the REMS IG keeps it for
  life-or-death, and Oracle pops those up);
* ``source.label`` names the app and the table; ``detail`` (GitHub Markdown) the cell, the
  inputs with dates and sources, the monitoring advice and every warning;
* links: a ``smart`` link to the app's launch URL whose ``appContext`` is only the card's uuid
  (opaque, no PHI: Oracle drops appContext and the card still works), and one ``absolute`` link
  to the clinical basis;
* order hooks: at most one suggestion (``selectionBehavior`` ``at-most-one``) ordering what is
  due (anti-JCV test; brain MRI when the tenant configured its code and the patient is in the
  3–4-monthly MRI group), and ``overrideReasons`` from the published non-adherence reason
  code system (``http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes``, CDS Hooks
  3.0; AHRQ CDSiC override taxonomy).
  Nothing is written without the clinician: no ``systemActions``.

Everything shown is read off the engine's result through the same formatting as the app's page
(``fhir.present``), so the card and the app cannot disagree.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from ..fhir.present import assessment_json
from ..risk.monitoring import MRI_HIGHER_RISK
from ..risk.records import Antibody
from ..risk.result import Assessment, MriState

SUMMARY_MAX = 139  # the spec's "<140 characters"
OVERRIDE_SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
#: Categories of the published non-adherence reasons that fit a monitoring suggestion.
OVERRIDE_REASONS = (
    ("cds-not-applicable", "PC CDS does not apply to patient"),
    ("cds-suboptimal-context", "PC CDS delivered in suboptimal context"),
    ("recipient-disagrees-evidence",
     "Recipient disagrees with recommendation because of issues with the evidence"),
)
JCV_ORDER_TEXT = "Anti-JC virus antibody with index"
MRI_ORDER_TEXT = "Brain MRI with FLAIR and DWI (PML surveillance)"
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|#~])")


@dataclass(frozen=True)
class CardLinks:
    """Where the card points: the app's SMART launch URL and the clinical basis page."""

    launch_url: str
    basis_url: str


def _md(text: str) -> str:
    """Chart-derived text inside Markdown: its markup characters are shown, not obeyed."""
    return _MARKDOWN.sub(r"\\\1", text).replace("\n", " ")


def _infusions(n: int) -> str:
    return f"{n} infusion" + ("" if n == 1 else "s")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def index_shown(a: Assessment) -> str:
    """The index as the lab reported it: with its comparator (``>1.5``), in the app's digits."""
    data = assessment_json(a)
    return f"{a.antibody.comparator}{data['inputs']['antibody']['index']}"


def retest_due(a: Assessment) -> bool:
    due = a.monitoring.antibody_retest_due
    return due is not None and due <= a.assessed_on


def retest_overdue(a: Assessment) -> bool:
    due = a.monitoring.antibody_retest_due
    return due is not None and due < a.assessed_on


def mri_overdue(a: Assessment) -> bool:
    """The last brain MRI is older than the monitoring interval allows: actionable."""
    sched = a.monitoring.mri_schedule
    return sched is not None and sched.state is MriState.OVERDUE


def summary(a: Assessment, *, ordered: bool = False) -> str:
    """The card's one line; the figure is the app's (``assessment_json``'s ``per1000``).
    ``ordered``: the count includes the infusion being ordered (the order card)."""
    data = assessment_json(a)
    ab = a.antibody
    if data["result"] is None:
        if ab.status is Antibody.INDETERMINATE:
            text = ("No PML estimate: anti-JCV result indeterminate — order the confirmatory "
                    "test")
        elif ab.status is Antibody.UNKNOWN:
            text = "No PML estimate: no usable anti-JCV antibody result — order the test"
        else:
            reasons = "; ".join(f.message for f in a.missing) or "inputs missing"
            text = f"No PML estimate: {reasons}"
        return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"
    if ab.status is Antibody.NEGATIVE:
        marker = "anti-JCV negative"
    elif a.prior_immunosuppressant.value:
        marker = "anti-JCV positive, prior immunosuppressant"
    elif ab.index is not None:
        marker = f"anti-JCV index {index_shown(a)}"
    else:
        marker = "anti-JCV positive, no index"
    n = a.exposure.infusions
    count = (f"{_ordinal(n)} infusion with this order" if ordered else _infusions(n))
    text = f"PML risk {data['result']['per1000']} per 1,000 ({marker}, {count})"
    extra = "; anti-JCV retest overdue"
    if retest_overdue(a) and len(text + extra) <= SUMMARY_MAX:
        text += extra
    extra = "; brain MRI overdue"
    if mri_overdue(a) and len(text + extra) <= SUMMARY_MAX:
        text += extra
    return text


#: What makes a card a ``warning``: one predicate per reason (a new one is one line).
WARNINGS: tuple[Callable[[Assessment], bool], ...] = (
    lambda a: not a.complete,
    lambda a: a.qualitative == "high",
    retest_overdue,
    mri_overdue,
)
#: What makes a card worth showing with ``patient_view = "actionable"``: something is due,
#: missing or overdue, or the patient is in a higher-risk group.
ACTIONABLE: tuple[Callable[[Assessment], bool], ...] = (*WARNINGS, retest_due)


def indicator(a: Assessment) -> str:
    return "warning" if any(rule(a) for rule in WARNINGS) else "info"


def actionable(a: Assessment) -> bool:
    return any(rule(a) for rule in ACTIONABLE)


def detail(a: Assessment, *, ordered: bool = False) -> str:
    """GitHub-flavoured Markdown: cell, inputs with dates and sources, monitoring, warnings."""
    data = assessment_json(a)
    ab, ex, pi = a.antibody, a.exposure, a.prior_immunosuppressant
    lines: list[str] = []
    if data["result"] is not None:
        r = data["result"]
        lines.append(f"**{r['per1000']} per 1,000** (about 1 in {r['oneIn']:,}) for the exposure "
                     f"period; risk category {r['qualitative']}.")
        lines.append(f"Table cell: {_md(r['cell']['words'])} (table {_md(a.table_id)}, "
                     f"version {_md(a.table_version)}).")
        if a.next_band is not None:
            lines.append(f"**{_md(a.next_band.text)}**")
    else:
        lines.append("**No estimate.** " + _md("; ".join(f.message for f in a.missing)))
    index = f", index {index_shown(a)}" if ab.index is not None else ""
    if ab.index_from:  # the index of an earlier test than the one dated below
        index += f" of {ab.index_from.isoformat()}"
    tested = ab.tested_on.isoformat() if ab.tested_on else "no date"
    first_last = (f"first {ex.first.isoformat()}, last {ex.last.isoformat()}"
                  if ex.first and ex.last else "no dated infusion")
    if pi.evidence:
        prior = "yes: " + ", ".join(
            f"{m.agent} {m.when.isoformat() if m.when else 'undated'}" for m in pi.evidence)
    else:
        prior = "yes" if pi.value else "no (none on record)"
    lines += [
        "",
        "| Input | Value | When | Source |",
        "|---|---|---|---|",
        f"| Anti-JCV antibody | {ab.status.value}{index} | {tested} | "
        f"{_md(', '.join(ab.sources)) or '—'} |",
        f"| Natalizumab infusions | {ex.infusions} | {first_last} | "
        + (f"{len(ex.counted) - 1} administration(s) + this order |" if ordered else
           f"{len(ex.counted)} administration(s) |"),
        f"| Prior immunosuppressant | {_md(prior)} | | "
        f"{_md(', '.join(m.source for m in pi.evidence)) or '—'} |",
        "",
        "**Monitoring**",
        "",
        f"- {_md(a.monitoring.mri)}",
        f"- {_md(a.monitoring.antibody_retest)}",
    ]
    mri = data["monitoring"]["mriLine"]
    if mri:
        lines.append(f"- {_md(mri)}")
    if a.advice:
        lines += ["", "**Higher-risk group: what the prescriber is asked to do**", ""]
        lines += [f"- {_md(x.text)} ({_md('; '.join(x.sources))})" for x in a.advice]
    if a.findings:  # every one, with its severity, in the words of the page and the CLI
        lines += ["", "**Warnings**", ""]
        lines += [f"- \\[{f.severity.value}\\] {_md(f.message)}" for f in a.findings]
    lines += ["", f"Assessed {a.assessed_on.isoformat()} with {_md(a.table_title)}."]
    return "\n".join(lines)


def _service_request(system_code: str, text: str, patient: str, reason: str) -> dict[str, Any]:
    system, _, code = system_code.partition("|")
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": system, "code": code}], "text": text},
        "subject": {"reference": patient},
        "reasonCode": [{"text": reason}],
    }
    ServiceRequest.model_validate(resource)  # R4B: a malformed order never reaches the EHR
    return resource


def suggestion(a: Assessment, jcv_order: str, mri_order: str) -> dict[str, Any] | None:
    """One suggestion with an action per test that is due; None when nothing is."""
    actions = []
    labels = []
    if jcv_order and retest_due(a):
        actions.append({
            "type": "create",
            "description": f"Order: {JCV_ORDER_TEXT}",
            "resource": _service_request(jcv_order, JCV_ORDER_TEXT, a.patient,
                                         "PML risk stratification on natalizumab"),
        })
        labels.append("anti-JCV antibody test with index")
    if mri_order and a.antibody.status is Antibody.POSITIVE and a.monitoring.mri == (
            MRI_HIGHER_RISK):
        actions.append({
            "type": "create",
            "description": f"Order: {MRI_ORDER_TEXT}",
            "resource": _service_request(mri_order, MRI_ORDER_TEXT, a.patient,
                                         "PML surveillance, natalizumab higher-risk group "
                                         "(MRI every 3–4 months)"),
        })
        labels.append("brain MRI (check the date of the last one)")
    if not actions:
        return None
    return {
        "label": "Order " + " and ".join(labels),
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": actions,
    }


def card(
    a: Assessment,
    links: CardLinks,
    *,
    order: bool = False,
    jcv_order: str = "",
    mri_order: str = "",
    ordered: bool = False,
) -> dict[str, Any]:
    """The card for one assessment; ``order`` adds the suggestion and the override reasons;
    ``ordered``: the assessment counts the infusion being ordered (said so on the card)."""
    card_id = str(uuid.uuid4())
    result: dict[str, Any] = {
        "uuid": card_id,
        "summary": summary(a, ordered=ordered),
        "indicator": indicator(a),
        "detail": detail(a, ordered=ordered),
        "source": {"label": f"pml-risk (table {a.table_id})", "url": links.basis_url},
        "links": [
            {"label": "Open the PML risk app", "url": links.launch_url, "type": "smart",
             "appContext": card_id},
            {"label": "Clinical basis and table sources", "url": links.basis_url,
             "type": "absolute"},
        ],
    }
    if order:
        found = suggestion(a, jcv_order, mri_order)
        if found is not None:
            result["suggestions"] = [found]
            result["selectionBehavior"] = "at-most-one"
        result["overrideReasons"] = [
            {"code": code, "system": OVERRIDE_SYSTEM, "display": display}
            for code, display in OVERRIDE_REASONS
        ]
    return result
