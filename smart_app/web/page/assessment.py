"""From a stored launch to the assessment JSON: fresh token, chart read, engine, extras.

Kept apart from the views so the page, its what-if updates, ``/launches/<id>/assessment`` and
the save cannot disagree: all of them call ``assess_launch`` (with the clinician's overrides).

One chart read per visit: the page reads the chart and keeps it with the launch (the
snapshot, encrypted in the session store); what-if updates, the JSON, the summary and the save
assess that snapshot again without asking the EHR anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...config import Tenant
from ...fhir.client import ChartData, FhirClient, FhirError, ReadPlan, plan_for
from ...fhir.client.chart import PATIENT_TYPES as CHART_TYPES
from ...fhir.extract import ForeignResourceError
from ...fhir.present import text_summary
from ...fhir.riskassessment import IDENTIFIER_SYSTEM
from ...fhir.shape import MalformedResource
from ...ops import audit
from ...risk.records import Overrides
from ...risk.table import RiskTable
from ...risk.tables import load_table
from ...service import ChartAssessment, assess_chart
from ...smart.launches import Launch
from ...smart.refresh import fresh_launch
from ...smart.scopes import GrantedScopes
from ...smart.tokens import TokenExpired
from ..errors import AppError
from ..services import Services
from . import capability, charts, history
from . import overrides as override_params

log = logging.getLogger(__name__)

PERFORMER_TYPES = ("Practitioner/", "PractitionerRole/")


@dataclass(frozen=True)
class LaunchAssessment:
    chart: ChartAssessment
    data: ChartData
    granted: GrantedScopes
    launch: Launch
    overrides: Overrides
    table: RiskTable
    save: capability.SaveState

    @property
    def identifier(self) -> str | None:
        ra = self.chart.risk_assessment
        return str(ra["identifier"][0]["value"]) if ra else None

    @property
    def summary(self) -> str:
        return text_summary(self.chart.assessment)

    def history(self) -> list[dict[str, Any]]:
        return history.items(self.data.history, self.identifier)

    def charts(self) -> dict[str, Any]:
        a = self.chart.assessment
        return {"strata": charts.strata_chart(self.table, a), "index": charts.index_chart(a)}

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
                "unread": list(self.chart.assessment.unread),
                "notOffered": list(self.data.not_offered),
                "dataMayBeIncomplete": bool(self.data.withheld),
                "serverMessages": list(self.data.outcomes),
            },
            "launch": {
                "patient": f"Patient/{ctx.patient}",
                "encounter": f"Encounter/{ctx.encounter}" if ctx.encounter else None,
                "user": self.launch.fhir_user,
                "userStatus": self.launch.user_status,
                "needPatientBanner": ctx.need_patient_banner,
                "intent": ctx.intent,
                "smartStyleUrl": ctx.smart_style_url,
                "tenant": ctx.tenant,
                "appContext": ctx.app_context,  # the CDS card that launched the app, if any
                "fhirContext": [
                    {k: v for k, v in asdict(item).items() if v is not None}
                    for item in ctx.fhir_context
                ],
            },
            "fhir": {"roundTrips": self.data.round_trips, "requests": self.data.requests},
            "overrides": override_params.to_params(self.overrides),
            "save": {
                "enabled": self.save.enabled,
                "reason": self.save.code,
                "message": self.save.reason or None,
                "identifier": self.identifier,
                "identifierSystem": IDENTIFIER_SYSTEM,
                "resourceType": self.save.target,
                "destination": self.save.destination or None,
            },
            "history": {"status": self.data.history_status, "items": self.history()},
            "charts": self.charts(),
        }


@dataclass
class LaunchClient:
    """A FHIR client for one launch; ``launch`` follows token refreshes made while it works."""

    client: FhirClient
    current: list[Launch]

    @property
    def launch(self) -> Launch:
        return self.current[0]


def launch_tenant(svc: Services, launch: Launch) -> Tenant:
    tenant = svc.settings.tenant_for(launch.iss)
    if tenant is None:
        raise AppError(403, "This EHR is no longer registered",
                       "The app's configuration no longer includes this EHR.", "unknown-iss")
    return tenant


def launch_client(svc: Services, launch: Launch) -> LaunchClient:
    tenant = launch_tenant(svc, launch)
    refresh = svc.refresh_call(tenant)
    current = [launch]

    def token(rejected: str | None) -> str:
        now = current[0]
        if rejected is not None and now.tokens.access_token != rejected:
            return now.tokens.access_token  # another request already replaced it
        current[0] = fresh_launch(now, svc.repo, refresh, force=rejected is not None)
        return current[0].tokens.access_token

    client = FhirClient(
        svc.http,
        launch.iss,
        token,
        timeout=svc.settings.fhir_timeout,
        max_pages=svc.settings.fhir_max_pages,
        page_size=tenant.page_size or svc.settings.fhir_page_size,
    )
    return LaunchClient(client, current)


def session_ended() -> AppError:
    return AppError(401, "Your session with the EHR has ended",
                    "Launch the app again from the EHR.", "session-expired")


def read_chart(svc: Services, launch: Launch) -> tuple[ChartData, Launch]:
    """Read the chart (and the app's earlier results, same wave) and keep it as the snapshot."""
    lc = launch_client(svc, launch)
    granted = launch.granted()
    plan = read_plan(svc, launch)
    try:
        data = lc.client.read_chart(launch.context.patient, granted, plan,
                                    history_system=IDENTIFIER_SYSTEM)
    except TokenExpired as exc:
        raise session_ended() from exc
    except FhirError as exc:
        if exc.status == 401:
            raise session_ended() from exc
        raise AppError(502, "The chart could not be read", exc.message, "fhir") from exc
    done = lc.launch
    svc.repo.put_chart(done, data.to_json())
    audit.event("fhir.read", tenant=done.tenant, iss=done.iss, user=done.fhir_user,
                patient=done.context.patient, launch=done.id, round_trips=data.round_trips,
                resource_types=_type_counts(data))
    return data, done


def today(svc: Services) -> date:
    """The clinic's calendar day (``timezone``)."""
    return datetime.now(ZoneInfo(svc.settings.timezone)).date()


def read_plan(svc: Services, launch: Launch) -> ReadPlan:
    """Which searches read this launch's chart (the same for the read and the freshness check)."""
    tenant = launch_tenant(svc, launch)
    return plan_for(svc.settings, tenant, svc.statement(tenant), today(svc))


def snapshot(svc: Services, launch: Launch) -> ChartData | None:
    """The chart as read when the page opened, if it is still kept."""
    stored = svc.repo.get_chart(launch.id)
    if stored is None:
        return None
    try:
        return ChartData.from_json(stored)
    except (KeyError, TypeError, ValueError):
        return None  # written by an older release: read again


def assess_launch(
    svc: Services, launch: Launch, overrides: Overrides | None = None, *, fresh: bool = False
) -> LaunchAssessment:
    """Assess the visit's chart snapshot; read the chart first when ``fresh`` or none is kept.

    Only opening (or reloading) the page asks for ``fresh``; what-if updates, the JSON, the
    summary and the save make no EHR request for the chart.
    """
    data = None if fresh else snapshot(svc, launch)
    if data is None:
        data, launch = read_chart(svc, launch)
    return assess_data(svc, launch, data, overrides)


def assess_data(svc: Services, launch: Launch, data: ChartData,
                overrides: Overrides | None = None) -> LaunchAssessment:
    """Assess chart data already read (the snapshot, or the snapshot with changes merged)."""
    granted = launch.granted()
    overrides = overrides or Overrides()
    performer = launch.fhir_user if (launch.fhir_user or "").startswith(PERFORMER_TYPES) else None
    encounter = f"Encounter/{launch.context.encounter}" if launch.context.encounter else None
    table = load_table(svc.settings.risk_table)
    try:
        chart = assess_chart(
            data.resources,
            launch.context.patient,
            at=today(svc),
            settings=svc.settings,
            overrides=overrides if overrides.any() else None,
            table=table,
            encounter=encounter,
            performer=performer,
            # Withheld (scope, 403) is unknown; not offered by this EHR is not a source here.
            unread=[t for t in data.withheld if t in CHART_TYPES],
            not_offered=[t for t in data.not_offered if t in CHART_TYPES],
        )
    except ForeignResourceError as exc:
        raise AppError(502, "The chart could not be read",
                       "The EHR returned data of another patient; nothing is shown for safety.",
                       "foreign-resource") from exc
    except MalformedResource as exc:
        log.warning("chart not readable: a malformed resource")
        raise AppError(502, "The chart could not be read",
                       f"The EHR sent data that is not valid FHIR ({exc}); no estimate is made "
                       "from a chart the app cannot read. Tell your EHR support team.",
                       "malformed-resource") from exc
    save = save_state(svc, launch, granted, chart.assessment.complete)
    audit.event("assessment.computed", tenant=launch.tenant, iss=launch.iss,
                user=launch.fhir_user, patient=launch.context.patient, launch=launch.id,
                table=chart.assessment.table_id, status=chart.status)
    return LaunchAssessment(chart=chart, data=data, granted=granted, launch=launch,
                            overrides=overrides, table=table, save=save)


def save_state(svc: Services, launch: Launch, granted: GrantedScopes,
               complete: bool) -> capability.SaveState:
    """The write-back rung of this launch: tenant setting, granted scopes, EHR capabilities."""
    tenant = launch_tenant(svc, launch)
    support = capability.capabilities(svc.statement(tenant))
    return capability.save_state(granted, support, complete, writeback=tenant.writeback,
                                 note_label=tenant.note_type_display)


def _type_counts(data: ChartData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in data.resources:
        rtype = str(resource.get("resourceType"))
        counts[rtype] = counts.get(rtype, 0) + 1
    return counts
