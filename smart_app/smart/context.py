"""Launch context from the token response (SMART App Launch 2.2), parsed leniently but typed.

The token response is untrusted input: unknown parameters are ignored (as SMART's extensibility
rules ask), malformed optional ones are dropped, and only ``patient`` is required: without it there
is no chart to assess, so the launch fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: FHIR R4 ``id`` (datatypes §id). ``.`` and ``..`` match it but are path segments, not ids: a
#: token ``patient`` of ``..`` would turn ``GET {base}/Patient/..`` into ``GET {base}/``.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_fhir_id(value: object) -> bool:
    """A logical id that is safe to put into a URL path as one segment."""
    return isinstance(value, str) and value not in (".", "..") and bool(FHIR_ID.fullmatch(value))


class MissingPatientContext(ValueError):
    """The EHR established no patient; the app must not guess one."""


@dataclass(frozen=True)
class FhirContextItem:
    """One ``fhirContext`` entry; items without ``role`` mean role "launch"."""

    reference: str | None = None
    canonical: str | None = None
    identifier: str | None = None  # "system|value"
    type: str | None = None
    role: str = "launch"


@dataclass(frozen=True)
class LaunchContext:
    patient: str
    encounter: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    intent: str | None = None
    tenant: str | None = None
    fhir_context: tuple[FhirContextItem, ...] = ()
    #: CDS Hooks: the ``appContext`` of the card link that launched the app (an opaque card
    #: id from this app's own CDS service; anything longer than an id is dropped).
    app_context: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LaunchContext:
        items = tuple(FhirContextItem(**item) for item in data.get("fhir_context", ()))
        return cls(**{**data, "fhir_context": items})


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _fhir_context(value: Any) -> tuple[FhirContextItem, ...]:
    if not isinstance(value, list):
        return ()
    items = []
    for raw in value:
        if not isinstance(raw, dict):
            continue
        ident = raw.get("identifier")
        identifier = None
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            identifier = f"{ident.get('system', '')}|{ident['value']}"
        item = FhirContextItem(
            reference=_opt_str(raw.get("reference")),
            canonical=_opt_str(raw.get("canonical")),
            identifier=identifier,
            type=_opt_str(raw.get("type")),
            role=_opt_str(raw.get("role")) or "launch",
        )
        if item.reference or item.canonical or item.identifier:
            items.append(item)
    return tuple(items)


def _patient_id(value: Any) -> str | None:
    text = _opt_str(value)
    if text is None:
        return None
    text = text.removeprefix("Patient/")
    return text if is_fhir_id(text) else None


def _encounter_id(value: Any) -> str | None:
    text = _opt_str(value)
    if text is None:
        return None
    text = text.removeprefix("Encounter/")
    return text if is_fhir_id(text) else None  # optional: a malformed one is dropped


def parse(token_response: Mapping[str, Any]) -> LaunchContext:
    patient = _patient_id(token_response.get("patient"))
    if patient is None:
        raise MissingPatientContext("the EHR did not send a usable patient id in the launch "
                                    "context")
    banner = token_response.get("need_patient_banner", True)
    return LaunchContext(
        patient=patient,
        encounter=_encounter_id(token_response.get("encounter")),
        need_patient_banner=banner if isinstance(banner, bool) else True,
        smart_style_url=_opt_str(token_response.get("smart_style_url")),
        intent=_opt_str(token_response.get("intent")),
        tenant=_opt_str(token_response.get("tenant")),
        fhir_context=_fhir_context(token_response.get("fhirContext")),
        app_context=_app_context(token_response.get("appContext")),
    )


def _app_context(value: Any) -> str | None:
    text = _opt_str(value)
    return text if text is not None and len(text) <= 128 else None
