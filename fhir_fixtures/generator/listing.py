"""One line per fixture patient in clinical words, for the sandbox EHR's patient list.

The scenario's technical note (``Fixture.summary``: what the fixture exercises) stays available
behind it; this is what a neurologist would read in an EHR's patient list.
"""

from __future__ import annotations

CLINICAL: dict[str, str] = {
    "ex01-negative-30": "30 natalizumab infusions · anti-JCV negative, index 0.11 · "
                        "interferon beta in the past",
    "ex02-positive-no-index": "20 natalizumab infusions · anti-JCV positive, index not reported",
    "ex03-index-0-90": "36 natalizumab infusions · anti-JCV positive, index 0.90",
    "ex04-index-1-50-24-infusions": "24 natalizumab infusions · anti-JCV positive, index 1.50",
    "ex05-index-1-51-25-infusions": "25 natalizumab infusions · anti-JCV positive, index 1.51 · "
                                    "dimethyl fumarate in the past",
    "ex06-index-3-0-12-infusions": "12 natalizumab infusions · anti-JCV positive, index 3.00",
    "ex07-prior-is-azathioprine-48": "48 natalizumab infusions · anti-JCV positive, index 0.50 · "
                                     "azathioprine before natalizumab",
    "ex08-prior-is-mitoxantrone-72": "72 natalizumab infusions · anti-JCV positive, index 2.50 · "
                                     "mitoxantrone before natalizumab",
    "ex09-index-1-2-72-infusions": "72 infusions (Tysabri, then Tyruko) · anti-JCV positive, "
                                   "index 1.20",
    "ex10-beyond-72-100-infusions": "100 natalizumab infusions · anti-JCV positive, index 2.00",
    "ex11-negative-prior-is-methotrexate": "10 natalizumab infusions · anti-JCV negative · "
                                           "methotrexate before natalizumab",
    "ex12-eid-40-over-60-months": "40 infusions every 6–7 weeks over 5 years (extended interval) · "
                                  "anti-JCV positive, index 1.80",
    "stale-result": "30 Tyruko infusions · anti-JCV positive, index 0.95, last tested 8 months ago",
    "indeterminate": "18 natalizumab infusions · anti-JCV indeterminate (index 0.30), "
                     "confirmation pending",
    "no-antibody-result": "6 natalizumab infusions · no anti-JCV antibody test on file "
                          "(JC virus PCR only)",
    "seroreversion": "40 natalizumab infusions · anti-JCV positive in 2024, now negative "
                     "(index 0.15)",
    "preliminary-latest": "30 natalizumab infusions · anti-JCV positive, index 1.20; a newer "
                          "result (1.90) is still preliminary",
    "entered-in-error-latest": "50 natalizumab infusions · anti-JCV positive, index 0.80; a newer "
                               "result was entered in error",
    "no-infusions": "Natalizumab planned, not started · anti-JCV positive, index 0.60 · "
                    "azathioprine in the past",
    "prior-is-after-first-infusion": "30 natalizumab infusions · anti-JCV positive, index 1.00 · "
                                     "methotrexate started during natalizumab",
    "medication-reference": "20 natalizumab infusions · anti-JCV positive, index 1.70",
    "local-lab-code": "30 natalizumab infusions · anti-JCV positive, index 0.70 (outside "
                      "laboratory, local test code)",
    "not-done-and-other-statuses": "24 natalizumab infusions given, others cancelled or not done · "
                                   "anti-JCV positive, index 2.20",
    "heavy": "130 natalizumab infusions over 10 years · anti-JCV positive, index rising "
             "0.45 → 2.35",
    "rising-index-near-cutoff": "36 natalizumab infusions · anti-JCV positive, index rising "
                                "1.10 → 1.45",
    "natalizumab-before-first-admin": "14 natalizumab infusions on record, first doses given "
                                      "elsewhere · anti-JCV negative",
    "discordant-negative-then-index": "30 natalizumab infusions · anti-JCV negative on "
                                      "2026-10-01, index 2.00 two days later (discordant)",
    "index-bound-above-cutoff": "30 natalizumab infusions · anti-JCV positive, index reported "
                                "as >1.5",
    "immunosuppressant-records-not-use": "30 natalizumab infusions · anti-JCV positive, index "
                                         "0.60 · azathioprine planned and mitoxantrone cancelled, "
                                         "neither given",
    "negative-beyond-follow-up": "80 natalizumab infusions · anti-JCV negative, index 0.12",
}
