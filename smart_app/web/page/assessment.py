"""From a stored launch to the assessment JSON: fresh token, chart read, engine, extras.

Kept apart from the views so the page, its what-if updates, ``/launches/<id>/assessment`` and
the save cannot disagree: all of them call ``assess_launch`` (with the clinician's overrides).

One chart read per visit: the page reads the chart and keeps it with the launch (the
snapshot, encrypted in the session store); what-if updates, the JSON, the summary and the save
assess that snapshot again without asking the EHR anything.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from ...config import Tenant
from ...fhir.client import ChartData, FhirClient, FhirError, ReadPlan, plan_for
from ...fhir.client.chart import PATIENT_TYPES as CHART_TYPES
from ...fhir.extract import ForeignResourceError
from ...fhir.note import author_reference, note_profile
from ...fhir.present import text_summary
from ...fhir.riskassessment import IDENTIFIER_SYSTEM
from ...fhir.shape import MalformedResource
from ...ops import audit
from ...risk.records import Inputs, Overrides
from ...risk.table import RiskTable
from ...risk.tables import load_table
from ...service import ChartAssessment, assess_inputs, chart_inputs
from ...smart.launches import Launch
from ...smart.refresh import fresh_launch
from ...smart.scopes import GrantedScopes
from ...smart.tokens import TokenExpired
from ..errors import AppError
from ..services import Services
from . import capability, charts, history
from . import overrides as override_params

log = logging.getLogger(__name__)

SNAPSHOTS = "pml_risk.snapshots"


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


def read_chart(svc: Services, launch: Launch) -> tuple[Parsed, Launch]:
    """Read the chart (and the app's earlier results, same wave) and keep it as the snapshot."""
    lc = launch_client(svc, launch)
    granted = launch.granted()
    plan = read_plan(svc, launch)
    try:
        tenant = launch_tenant(svc, launch)
        keeps = note_profile(tenant.vendor).keeps_identifier
        data = lc.client.read_chart(launch.context.patient, granted, plan,
                                    history_system=IDENTIFIER_SYSTEM,
                                    note_type=None if keeps else tenant.note_type)
    except TokenExpired as exc:
        raise session_ended() from exc
    except FhirError as exc:
        if exc.status == 401:
            raise session_ended() from exc
        raise AppError(502, "The chart could not be read", exc.message, "fhir") from exc
    done = lc.launch
    parsed = Parsed(svc.repo.put_chart(done, data.to_json()), data)
    snapshots().put(done.id, parsed)
    audit.event("fhir.read", tenant=done.tenant, iss=done.iss, user=done.fhir_user,
                patient=done.context.patient, launch=done.id, round_trips=data.round_trips,
                resource_types=_type_counts(data))
    return parsed, done


def today(svc: Services) -> date:
    """The clinic's calendar day (``timezone``)."""
    return datetime.now(ZoneInfo(svc.settings.timezone)).date()


def read_plan(svc: Services, launch: Launch) -> ReadPlan:
    """Which searches read this launch's chart (the same for the read and the freshness check)."""
    tenant = launch_tenant(svc, launch)
    return plan_for(svc.settings, tenant, svc.statement(tenant), today(svc))


@dataclass
class Parsed:
    """A snapshot as this process parsed it, and its inputs once read (no overrides)."""

    version: str
    data: ChartData
    inputs: Inputs | None = None


class SnapshotCache:
    """The parsed snapshots of this process's recent launches.

    A what-if update must not decrypt, parse and read a large chart again each time: the
    stored snapshot's version (a small record) says whether the parsed copy is current, so
    several workers and instances stay correct. Bounded: a few launches per process.
    """

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[str, Parsed] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, launch_id: str, version: str) -> Parsed | None:
        with self._lock:
            found = self._items.get(launch_id)
            if found is None or found.version != version:
                return None
            self._items.move_to_end(launch_id)
            return found

    def put(self, launch_id: str, parsed: Parsed) -> None:
        with self._lock:
            self._items[launch_id] = parsed
            self._items.move_to_end(launch_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def snapshots() -> SnapshotCache:
    """One cache per app (on ``app.extensions``), created on first use."""
    found = current_app.extensions.get(SNAPSHOTS)
    if not isinstance(found, SnapshotCache):
        found = SnapshotCache()
        current_app.extensions[SNAPSHOTS] = found
    return found


def parsed_snapshot(svc: Services, launch: Launch) -> Parsed | None:
    """The chart as read when the page opened, if it is still kept."""
    version = svc.repo.chart_version(launch.id)
    if version is None:
        return None
    cached = snapshots().get(launch.id, version)
    if cached is not None:
        return cached
    stored = svc.repo.get_chart(launch.id)
    if stored is None or stored.get("version") != version:
        return None  # replaced meanwhile: read again
    try:
        parsed = Parsed(version, ChartData.from_json(stored))
    except (KeyError, TypeError, ValueError):
        return None  # written by an older release: read again
    snapshots().put(launch.id, parsed)
    return parsed


def snapshot(svc: Services, launch: Launch) -> ChartData | None:
    found = parsed_snapshot(svc, launch)
    return found.data if found is not None else None


def assess_launch(
    svc: Services, launch: Launch, overrides: Overrides | None = None, *, fresh: bool = False
) -> LaunchAssessment:
    """Assess the visit's chart snapshot; read the chart first when ``fresh`` or none is kept.

    Only opening (or reloading) the page asks for ``fresh``; what-if updates, the JSON, the
    summary and the save make no EHR request for the chart.
    """
    parsed = None if fresh else parsed_snapshot(svc, launch)
    if parsed is None:
        parsed, launch = read_chart(svc, launch)
    return assess_data(svc, launch, parsed.data, overrides, parsed)


def assess_data(svc: Services, launch: Launch, data: ChartData,
                overrides: Overrides | None = None,
                parsed: Parsed | None = None) -> LaunchAssessment:
    """Assess chart data already read (the snapshot, or the snapshot with changes merged).

    ``parsed``: the snapshot as this process keeps it; its inputs are read once, then every
    what-if is only the engine (overrides applied to the same inputs)."""
    granted = launch.granted()
    overrides = overrides or Overrides()
    # The launching user, as a reference on this FHIR server (some EHRs send an absolute URL).
    performer = author_reference(launch.fhir_user)
    encounter = f"Encounter/{launch.context.encounter}" if launch.context.encounter else None
    table = load_table(svc.settings.risk_table)
    try:
        inputs = parsed.inputs if parsed is not None else None
        if inputs is None:
            inputs = chart_inputs(
                data.resources,
                launch.context.patient,
                settings=svc.settings,
                # Withheld (scope, 403) is unknown; not offered by this EHR is not a source.
                unread=[t for t in data.withheld if t in CHART_TYPES],
                not_offered=[t for t in data.not_offered if t in CHART_TYPES],
            )
            if parsed is not None:
                parsed.inputs = inputs
        chart = assess_inputs(
            inputs,
            at=today(svc),
            settings=svc.settings,
            overrides=overrides if overrides.any() else None,
            table=table,
            encounter=encounter,
            performer=performer,
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
    if save.enabled and overrides.any() and not overrides.reason:
        save = capability.SaveState(False, "reason-required", override_params.REASON_REQUIRED)
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
    state = capability.save_state(granted, support, complete, writeback=tenant.writeback,
                                  note_label=tenant.note_type_display)
    if (state.note and not launch.context.encounter
            and note_profile(tenant.vendor).needs_encounter):
        return capability.no_encounter(tenant.note_type_display)
    return state


def _type_counts(data: ChartData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in data.resources:
        rtype = str(resource.get("resourceType"))
        counts[rtype] = counts.get(rtype, 0) + 1
    return counts
