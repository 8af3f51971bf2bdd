"""Monitoring advice (docs/clinical-basis.md §6): MRI intervals of the MAGNIMS consensus
(Wattjes et al. 2015), six-monthly antibody retesting as reported in practice."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from .antibody import INDEX_CUTOFF, NEAR_CUTOFF, RETEST_MONTHS
from .dates import add_months
from .records import Antibody
from .result import AntibodySummary, Monitoring

HIGHER_RISK_FROM_INFUSIONS = 18
#: The schedule's reason, not a risk group: "higher risk" is what the headline calls the
#: EMA/PRAC higher-risk groups, so a "Moderate" result never reads "higher risk" beside its MRI.
MRI_HIGHER_RISK = ("Brain MRI every 3–4 months with FLAIR and DWI (antibody positive and 18 or "
                   "more infusions).")
MRI_NEGATIVE = "Brain MRI every 12 months (antibody negative)."
MRI_POSITIVE_EARLY = (
    "Brain MRI every 12 months; from 18 infusions, every 3–4 months with FLAIR and DWI."
)
#: (due, overdue) months after the last brain MRI: "every 3–4 months" is due at 3, overdue
#: after 4; "every 12 months" is due and overdue at 12 (docs/clinical-basis.md §6).
MONTHS_FREQUENT = (3, 4)
MONTHS_YEARLY = (12, 12)
UNTIL_ANTIBODY = "until the antibody result is resolved"
UNTIL_COUNT = "until the infusion count is known"


def mri_months(mri: str) -> tuple[int, int]:
    """The due/overdue months for a monitoring line: every 3–4 months, else every 12."""
    return MONTHS_FREQUENT if mri.startswith("Brain MRI every 3–4 months") else MONTHS_YEARLY


def _cautious(infusions: int, exposure_known: bool, until: str) -> str:
    """The MRI interval of the worst reading the evidence allows: an unresolved antibody could
    be positive, an unknown count could be 18 or more."""
    if infusions >= HIGHER_RISK_FROM_INFUSIONS or not exposure_known:
        why = ("the antibody could be positive" if until == UNTIL_ANTIBODY
               else "the count could be 18 or more")
        return (f"Brain MRI every 3–4 months with FLAIR and DWI {until} ({why}: the "
                "more frequent interval).")
    return (f"Brain MRI every 12 months {until}; every 3–4 months with FLAIR and DWI from 18 "
            "infusions if the antibody is positive.")


def _due(due: date, at: date) -> str:
    if due == at:
        return f"due today ({due.isoformat()})"
    return f"next due {due.isoformat()}" if due > at else (
        f"overdue since {due.isoformat()}: retest now"
    )


def advise(antibody: AntibodySummary, infusions: int, prior_is: bool, at: date,
           exposure_known: bool = True) -> Monitoring:
    """The monitoring advice; with no estimate, the most cautious interval the evidence allows,
    labelled as holding until the missing input is resolved."""
    base = _advise(antibody, infusions, prior_is, at, exposure_known)
    if antibody.status is Antibody.POSITIVE and not exposure_known:
        mri = _cautious(infusions, exposure_known, UNTIL_COUNT)
        return replace(base, mri=mri, provisional=UNTIL_COUNT, mri_months=MONTHS_FREQUENT)
    if base.provisional:
        return base
    return replace(base, mri_months=mri_months(base.mri))


def _advise(antibody: AntibodySummary, infusions: int, prior_is: bool, at: date,
            exposure_known: bool) -> Monitoring:
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
        index = antibody.index_range
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
        exact = index.exact
        if exact is None and not (index.above(INDEX_CUTOFF) or index.at_most(INDEX_CUTOFF)):
            return Monitoring(
                mri,
                f"Request the exact anti-JCV index now: the reported {antibody.index_text} does "
                "not say whether it is above 1.5, which decides the row.",
                at,
            )
        if index.above(INDEX_CUTOFF):
            if exact is not None and exact - INDEX_CUTOFF <= NEAR_CUTOFF:
                # Agrees with the near-cut-off warning: a retest can move the index below 1.5.
                return Monitoring(
                    mri,
                    f"Index {antibody.index_text} is near the 1.5 cut-off, where the band can "
                    f"change on retest: retest the index in {RETEST_MONTHS} months; "
                    f"{_due(due, at)}.",
                    due,
                )
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
    frequent = infusions >= HIGHER_RISK_FROM_INFUSIONS or not exposure_known
    months = MONTHS_FREQUENT if frequent else MONTHS_YEARLY
    if antibody.discordant:
        return Monitoring(
            _cautious(infusions, exposure_known, UNTIL_ANTIBODY),
            "The latest anti-JCV results disagree: confirm them with the laboratory, or retest "
            "the antibody with index, now.",
            at,
            provisional=UNTIL_ANTIBODY,
            mri_months=months,
        )
    what = "confirmatory test" if antibody.status is Antibody.INDETERMINATE else "test"
    return Monitoring(
        _cautious(infusions, exposure_known, UNTIL_ANTIBODY),
        f"Anti-JCV antibody {what} with index due now.",
        at,
        provisional=UNTIL_ANTIBODY,
        mri_months=months,
    )
