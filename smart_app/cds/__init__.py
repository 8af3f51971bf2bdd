"""A CDS Hooks 2.0 service: the PML risk reaches the clinician when a chart opens
(``patient-view``) and when natalizumab is ordered (``order-select``/``order-sign``).

* ``views.py``: the routes (discovery, calls, feedback, the clinical basis page);
* ``trust.py`` and ``jwks.py``: which EHRs may call (signed JWT, allowlisted issuer and keys,
  replay store);
* ``prefetch.py`` and ``fallback.py``: where the chart comes from (prefetch, else FHIR with the
  EHR's token on the tenant's own server only, else 412);
* ``relevance.py``: whether natalizumab is in the patient's care (else ``patient-view`` answers
  no card); ``orders.py``: whether an order is natalizumab; ``cards.py``: the card.

The estimate itself comes from ``smart_app.service`` (``chart_inputs``/``assess_inputs``), the
seam the app's page uses, so a card's figure is the app's (the order card adds the infusion
being ordered to the chart's records, and says so).
"""

from __future__ import annotations

from .views import bp, init_app

__all__ = ["bp", "init_app"]
