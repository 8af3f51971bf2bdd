"""From a stored launch to the assessment JSON: fresh token, chart read, engine, extras.

Kept apart from the views so the page and ``/launches/<id>/assessment`` cannot disagree: both
call ``assess_launch``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ..fhir.extract import ForeignResourceError
from ..fhir_client import ChartData, FhirClient, FhirError
from ..launches import Launch
from ..service import ChartAssessment, assess_chart
from ..smart.scopes import GrantedScopes
from ..smart.tokens import TokenExpired, fresh_launch
from .errors import AppError
from .services import Services

log = logging.getLogger(__name__)

PERFORMER_TYPES = ("Practitioner/", "PractitionerRole/")


@dataclass(frozen=True)
class LaunchAssessment:
    chart: ChartAssessment
    data: ChartData
    granted: GrantedScopes
    launch: Launch

    @property
    def patient(self) -> Mapping[str, Any] | None:
        return next(
            (r for r in self.data.resources if r.get("resourceType") == "Patient"), None
        )

    def api_json(self) -> dict[str, Any]:
        """The engine's JSON plus what the app knows about the launch and its access."""
        ctx = self.launch.context
        return {
            **self.chart.api_json(),
            "access": {
                "readOnly": self.granted.read_only,
                "withheld": list(self.data.withheld),
                "dataMayBeIncomplete": bool(self.data.withheld),
                "serverMessages": list(self.data.outcomes),
            },
            "launch": {
                "patient": f"Patient/{ctx.patient}",
                "encounter": f"Encounter/{ctx.encounter}" if ctx.encounter else None,
                "user": self.launch.fhir_user,
                "needPatientBanner": ctx.need_patient_banner,
                "intent": ctx.intent,
                "smartStyleUrl": ctx.smart_style_url,
                "tenant": ctx.tenant,
                "fhirContext": [
                    {k: v for k, v in asdict(item).items() if v is not None}
                    for item in ctx.fhir_context
                ],
            },
            "fhir": {"roundTrips": self.data.round_trips, "requests": self.data.requests},
        }


def observation_params(svc: Services) -> list[tuple[str, str]]:
    """By category, not by code: risk-model.md §3 also matches unmapped local codes by text."""
    category = svc.settings.observation_category
    return [("category", category)] if category else []


def assess_launch(svc: Services, launch: Launch) -> LaunchAssessment:
    tenant = svc.settings.tenant_for(launch.iss)
    if tenant is None:
        raise AppError(403, "This EHR is no longer registered",
                       "The app's configuration no longer includes this EHR.", "unknown-iss")
    refresh = svc.refresh_call(tenant)
    current = [launch]

    def token(rejected: str | None) -> str:
        now = current[0]
        if rejected is not None and now.tokens.access_token != rejected:
            return now.tokens.access_token  # another request already replaced it
        current[0] = fresh_launch(now, svc.repo, refresh, force=rejected is not None)
        return current[0].tokens.access_token

    granted = GrantedScopes.parse(launch.tokens.scope)
    client = FhirClient(
        svc.http,
        launch.iss,
        token,
        timeout=svc.settings.fhir_timeout,
        max_pages=svc.settings.fhir_max_pages,
        page_size=svc.settings.fhir_page_size,
    )
    try:
        data = client.read_chart(launch.context.patient, granted, observation_params(svc))
    except TokenExpired as exc:
        raise AppError(401, "Your session with the EHR has ended",
                       "Launch the app again from the EHR.", "session-expired") from exc
    except FhirError as exc:
        if exc.status == 401:
            raise AppError(401, "Your session with the EHR has ended",
                           "Launch the app again from the EHR.", "session-expired") from exc
        raise AppError(502, "The chart could not be read", exc.message, "fhir") from exc
    performer = launch.fhir_user if (launch.fhir_user or "").startswith(PERFORMER_TYPES) else None
    encounter = f"Encounter/{launch.context.encounter}" if launch.context.encounter else None
    try:
        chart = assess_chart(
            data.resources,
            launch.context.patient,
            at=datetime.now(UTC).date(),
            settings=svc.settings,
            encounter=encounter,
            performer=performer,
        )
    except ForeignResourceError as exc:
        raise AppError(502, "The chart could not be read",
                       "The EHR returned data of another patient; nothing is shown for safety.",
                       "foreign-resource") from exc
    return LaunchAssessment(chart=chart, data=data, granted=granted, launch=current[0])
