"""What the prescriber is asked to do for the EMA/PRAC higher-risk groups
(docs/clinical-basis.md §6).

The figure alone does not tell a prescriber what follows from it. For the higher-risk groups
(antibody positive, more than 24 infusions, and prior immunosuppressant use or an index above
1.5) the product information and the 2016 EMA review ask for a renewed benefit–risk discussion;
the text and its sources are data here so every output shows the same words.
"""

from __future__ import annotations

from .result import Advice

SMPC = "Tysabri (natalizumab) EU Summary of Product Characteristics, section 4.4"
EMA_2016 = ("European Medicines Agency, review of Tysabri under Article 20 (PRAC/CHMP, "
            "2016): updated recommendations to minimise the risk of PML")
US_LABEL = "TYSABRI (natalizumab) US prescribing information, boxed warning and §5.1"
TOUCH_EID = ("Ryerson LZ, et al. Extended interval dosing of natalizumab and PML risk (TOUCH "
             "analysis). Neurology 2019;93:e1452–e1462")

HIGHER_RISK = (
    Advice(
        "Re-assess the benefit and risk of continuing natalizumab with the patient, and consider "
        "alternative treatments.",
        (SMPC, EMA_2016),
    ),
    Advice(
        "Extended-interval dosing (every 6 weeks) may be discussed with the patient: in the "
        "TOUCH analysis it was associated with a lower PML risk (hazard ratio 0.06, 95 % CI "
        "0.01–0.22). It is not the labelled dose, and the figure shown is not lowered for it.",
        (TOUCH_EID,),
    ),
    Advice(
        "Stop natalizumab at the first sign suggestive of PML, and evaluate with "
        "gadolinium-enhanced brain MRI and CSF testing for JC virus DNA.",
        (US_LABEL, SMPC),
    ),
)


def for_category(qualitative: str | None) -> tuple[Advice, ...]:
    """The prescriber advice for a qualitative category; none outside the higher-risk groups."""
    return HIGHER_RISK if qualitative == "high" else ()
