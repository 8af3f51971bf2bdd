"""Generator of the synthetic fixture patients (standard library only, fully deterministic).

- :mod:`.fhir` — JSON output, FHIR datatypes, code systems and the coded concepts in use;
- :mod:`.chart` — :class:`Chart`, the builders of one patient's FHIR resources and its Bundle;
- :mod:`.expected` — the result each fixture must give and the table rows/bands it names;
- :mod:`.scenarios` — the fixture patients, one module per scenario group, in published order;
- :mod:`.synthetic` — one patient from a few parameters, for code that needs many charts;
- :mod:`.output` — every generated file as text (written by ``fhir_fixtures/build.py``).

Everything is reproducible: fixed dates, ids derived from the patient id, ``uuid5`` for
``urn:uuid`` full URLs, no randomness and no clock.
"""

from __future__ import annotations

from .chart import Chart
from .fhir import AT, LAST_INFUSION, RECENT_TEST, Json, dumps, dumps_line
from .synthetic import PRIOR_IMMUNOSUPPRESSANTS, patient_bundle, patient_chart, patient_resources

__all__ = [
    "AT",
    "LAST_INFUSION",
    "PRIOR_IMMUNOSUPPRESSANTS",
    "RECENT_TEST",
    "Chart",
    "Json",
    "dumps",
    "dumps_line",
    "patient_bundle",
    "patient_chart",
    "patient_resources",
]
