"""The pure risk core: plain records in, an ``Assessment`` out; no I/O, no FHIR."""

from .engine import assess
from .records import Antibody, Inputs, Overrides
from .result import Assessment, Code, Severity
from .table import RiskTable

__all__ = [
    "Antibody", "Assessment", "Code", "Inputs", "Overrides", "RiskTable", "Severity", "assess",
]
