"""Which searches read one chart from one EHR: types, ``_include``, Observation narrowing.

Decided before the first request, from the tenant's configuration and the EHR's
CapabilityStatement, so the chart read itself stays a plain loop over jobs:

* a type the EHR does not offer (absent from its statement, or left out of the tenant's
  ``read_types``) is not searched and is reported as *not offered*, never as withheld
  (what the app could not see is unknown; what the EHR does not have is not a source);
* ``_include`` of the medication goes only to a search whose type lists it in
  ``searchInclude`` (elsewhere an unknown parameter can fail the whole search);
* anti-JCV results are searched by code (every mapped LOINC and local code, any date), plus one
  category search bounded by date for unmapped local codes recognised by their text: an
  unbounded laboratory search meets server page caps and the app's page and time limits on a
  long-term chart (Oracle Health returns at most 200 per page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ...config import CodeSets, Settings, Tenant
from ..capability import UNKNOWN, ServerCapabilities
from ..codes import BRAIN_MRI, JCV_ANTIBODY, JCV_INDEX

Params = tuple[tuple[str, str], ...]

#: ImagingStudy has no search by procedure code: its MR studies are read and matched by code.
MR_MODALITY = "http://dicom.nema.org/resources/ontology/DCM|MR"

#: Search parameters a 400-retry keeps: the ones that say *what* is searched. Paging, sorting,
#: ``_include`` and the date bound are dropped (a refused search is retried once with only
#: what it needs before the chart is reported unreadable).
REQUIRED_PARAMS = frozenset({"patient", "code", "category", "_id", "identifier"})


@dataclass(frozen=True)
class ReadPlan:
    """The searches of one chart read (the defaults reproduce a plain, fully capable EHR)."""

    #: One Observation search per entry (``patient`` is added); results are merged by id.
    observation_searches: tuple[Params, ...] = ((),)
    capabilities: ServerCapabilities = UNKNOWN
    #: Types the tenant's configuration limits the read to; empty: no limit.
    read_types: tuple[str, ...] = ()
    #: Brain-MRI codes (defaults + the tenant's ``[codes] mri``): reports and procedures are
    #: searched by them, so a long chart's other reports are never paged through.
    mri_codes: tuple[str, ...] = tuple(sorted(BRAIN_MRI))

    def searches(self, resource_type: str) -> tuple[Params, ...]:
        """The searches (besides ``patient``) that read one type."""
        if resource_type == "Observation":
            return self.observation_searches
        if resource_type in ("DiagnosticReport", "Procedure"):
            return ((("code", ",".join(self.mri_codes)),),)
        if resource_type == "ImagingStudy":
            return ((("modality", MR_MODALITY),),)
        return ((),)

    def offered(self, resource_type: str) -> bool:
        if self.read_types and resource_type not in self.read_types:
            return False
        return self.capabilities.searchable(resource_type)

    def include(self, resource_type: str, include: str) -> bool:
        return self.capabilities.includes(resource_type, include)


def jcv_codes(codes: CodeSets) -> tuple[str, ...]:
    """Every ``system|code`` that names an anti-JCV antibody or index result."""
    return tuple(sorted(JCV_ANTIBODY | JCV_INDEX | set(codes.jcv_antibody)
                        | set(codes.jcv_index)))


def observation_searches(settings: Settings, today: date) -> tuple[Params, ...]:
    """By code (any date), and by category within ``text_search_years`` (text matches)."""
    by_code: Params = (("code", ",".join(jcv_codes(settings.codes))),)
    since = today.replace(year=today.year - settings.text_search_years, day=min(today.day, 28))
    by_text: list[tuple[str, str]] = []
    if settings.observation_category:
        by_text.append(("category", settings.observation_category))
    by_text.append(("date", f"ge{since.isoformat()}"))
    return by_code, tuple(by_text)


def plan_for(settings: Settings, tenant: Tenant, capabilities: ServerCapabilities,
             today: date) -> ReadPlan:
    return ReadPlan(
        observation_searches=observation_searches(settings, today),
        capabilities=capabilities,
        read_types=tenant.read_types,
        mri_codes=tuple(sorted(BRAIN_MRI | set(settings.codes.mri))),
    )
