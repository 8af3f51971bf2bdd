"""Monitoring advice (risk-model.md §6, MAGNIMS consensus S17; retest practice S18, S21)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from .antibody import INDEX_CUTOFF, RETEST_MONTHS
from .dates import add_months
from .records import Antibody
from .result import AntibodySummary, Monitoring

HIGHER_RISK_FROM_INFUSIONS = 18
MRI_HIGHER_RISK = "Brain MRI every 3–4 months with FLAIR and DWI (higher risk: antibody positive " \
    "and 18 or more infusions)."
MRI_NEGATIVE = "Brain MRI every 12 months (antibody negative)."
MRI_POSITIVE_EARLY = (
    "Brain MRI every 12 months; from 18 infusions, every 3–4 months with FLAIR and DWI."
)


def _due(due: date, at: date) -> str:
    return f"next due {due.isoformat()}" if due >= at else (
        f"overdue since {due.isoformat()}: retest now"
    )


def advise(antibody: AntibodySummary, infusions: int, prior_is: bool, at: date) -> Monitoring:
    tested = antibody.tested_on
    due = add_months(tested, RETEST_MONTHS) if tested else at
    if antibody.status is Antibody.NEGATIVE:
        return Monitoring(
            MRI_NEGATIVE,
            f"Anti-JCV antibody retest every {RETEST_MONTHS} months; {_due(due, at)}.",
            due,
        )
    if antibody.status is Antibody.POSITIVE:
        mri = MRI_HIGHER_RISK if infusions >= HIGHER_RISK_FROM_INFUSIONS else MRI_POSITIVE_EARLY
        index: Decimal | None = antibody.index
        if prior_is:
            return Monitoring(
                mri,
                "Index retesting does not change the stratum (prior immunosuppressant use).",
                None,
            )
        if index is None:
            return Monitoring(
                mri,
                "Request the numeric anti-JCV index for the latest result now: it decides the "
                "row; then retest the index every 6 months while it is 1.5 or below.",
                at,
            )
        if index > INDEX_CUTOFF:
            return Monitoring(
                mri,
                "Index retesting does not change the stratum (index above 1.5).",
                None,
            )
        return Monitoring(
            mri,
            f"Anti-JCV index retest every {RETEST_MONTHS} months while the index is 1.5 or "
            f"below; {_due(due, at)}.",
            due,
        )
    what = "confirmatory test" if antibody.status is Antibody.INDETERMINATE else "test"
    return Monitoring(
        "No estimate: MRI interval depends on the antibody result.",
        f"Anti-JCV antibody {what} with index due now.",
        at,
    )
