"""The FHIR HTTP client: bounded requests, the chart read, and writes.

``transport`` holds the one bounded request every call goes through; ``chart`` the searches and
paging that read one patient's chart in a bounded number of parallel round trips; ``write`` the
retry-safe create. ``FhirClient`` is all three for one launch.
"""

from __future__ import annotations

from .chart import ChartData, ChartReads, Freshness, in_compartment
from .plan import ReadPlan, plan_for
from .transport import FhirError, ForeignResource, TokenProvider
from .write import WriteResult, Writes

__all__ = [
    "ChartData",
    "FhirClient",
    "FhirError",
    "ForeignResource",
    "Freshness",
    "ReadPlan",
    "TokenProvider",
    "WriteResult",
    "in_compartment",
    "plan_for",
]


class FhirClient(ChartReads, Writes):
    """One launch's FHIR client: read the chart, write the result back."""
