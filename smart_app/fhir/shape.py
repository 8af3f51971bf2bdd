"""The JSON shape of the FHIR elements the app reads, checked before anything reads them.

Chart data comes from a file or an EHR and is untrusted: ``"coding": true``, a Quantity whose
``value`` is a string or ``1e99999999``, a 5,000-digit integer. Left to the extractor, such a
value surfaces as a ``TypeError`` deep inside it (a traceback on the command line, a 500 on the
page). Checked here, it becomes one clear error naming the resource and the element, and the
caller fails closed: no estimate is made from a chart the app could not read as FHIR.

Only the elements of the resource types the app reads are checked, against their R4 datatypes
(https://hl7.org/fhir/R4/datatypes.html); unknown elements and extensions are left alone, so a
vendor's extras never block an assessment. ``meta`` is not checked: the extractor reads it
tolerantly (a malformed ``meta`` only loses the version ordering). Strings are not length-checked
here: FHIR allows up to 1 MB, and the readers bound what they scan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

#: FHIR ``integer`` is a signed 32-bit number (datatypes §integer).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: A ``decimal`` further from zero than 10^18, or nearer than 10^-30 (but not 0), is no
#: measurement; refusing it keeps exponent arithmetic (``1e99999999``) out of the engine.
MAX_EXPONENT, MIN_EXPONENT = 18, -30
MAX_DEPTH = 64  # nesting of the checked elements; deeper JSON is refused before this runs


class MalformedResource(ValueError):
    """An element the app reads has the wrong JSON type or an impossible value."""


# Datatype shapes: element -> kind. A kind is a datatype name, "string", "number", "integer",
# "boolean", or a list of one kind (a FHIR array).
Kind = str | list[str]
DATATYPES: dict[str, dict[str, Kind]] = {
    "Coding": {"system": "string", "version": "string", "code": "string",
               "display": "string", "userSelected": "boolean"},
    "CodeableConcept": {"coding": ["Coding"], "text": "string"},
    "Quantity": {"value": "number", "comparator": "string", "unit": "string",
                 "system": "string", "code": "string"},
    "Reference": {"reference": "string", "type": "string", "display": "string"},
    "Period": {"start": "string", "end": "string"},
    "Meta": {"versionId": "string", "lastUpdated": "string"},
    "Range": {"low": "Quantity", "high": "Quantity"},
    "Ratio": {"numerator": "Quantity", "denominator": "Quantity"},
    "HumanName": {"text": "string", "family": "string", "given": ["string"],
                  "prefix": ["string"], "suffix": ["string"], "use": "string"},
    "Identifier": {"system": "string", "value": "string"},
    "Dosage": {"text": "string", "doseAndRate": ["DoseAndRate"]},
    "DoseAndRate": {"doseQuantity": "Quantity", "doseRange": "Range", "rateQuantity": "Quantity",
                    "rateRatio": "Ratio", "rateRange": "Range"},
    "MADosage": {"text": "string", "dose": "Quantity", "rateQuantity": "Quantity",
                 "rateRatio": "Ratio", "route": "CodeableConcept"},
    "ObservationComponent": {
        "code": "CodeableConcept", "valueQuantity": "Quantity",
        "valueCodeableConcept": "CodeableConcept", "valueString": "string",
        "valueInteger": "integer", "valueBoolean": "boolean",
        "interpretation": ["CodeableConcept"], "dataAbsentReason": "CodeableConcept",
    },
    "Ingredient": {"itemCodeableConcept": "CodeableConcept", "itemReference": "Reference",
                   "isActive": "boolean"},
}

_COMMON: dict[str, Kind] = {
    "resourceType": "string", "id": "string", "status": "string",
    "subject": "Reference", "patient": "Reference", "identifier": ["Identifier"],
    "contained": ["Resource"],
}
_MEDICATION_USE: dict[str, Kind] = {
    "medicationCodeableConcept": "CodeableConcept", "medicationReference": "Reference",
    "effectiveDateTime": "string", "effectivePeriod": "Period", "category": "CodeableConcept",
    "statusReason": ["CodeableConcept"], "reasonCode": ["CodeableConcept"],
}
RESOURCES: dict[str, dict[str, Kind]] = {
    "Observation": {
        **_COMMON, "code": "CodeableConcept", "category": ["CodeableConcept"],
        "effectiveDateTime": "string", "effectivePeriod": "Period",
        "effectiveInstant": "string", "issued": "string", "valueQuantity": "Quantity",
        "valueCodeableConcept": "CodeableConcept", "valueString": "string",
        "valueInteger": "integer", "valueBoolean": "boolean", "valueRange": "Range",
        "valueRatio": "Ratio", "interpretation": ["CodeableConcept"],
        "dataAbsentReason": "CodeableConcept", "method": "CodeableConcept",
        "component": ["ObservationComponent"],
    },
    "MedicationAdministration": {**_COMMON, **_MEDICATION_USE, "dosage": "MADosage"},
    "MedicationStatement": {**_COMMON, **_MEDICATION_USE, "dateAsserted": "string",
                            "dosage": ["Dosage"]},
    "MedicationRequest": {
        **_COMMON, "medicationCodeableConcept": "CodeableConcept",
        "medicationReference": "Reference", "authoredOn": "string", "intent": "string",
        "dosageInstruction": ["Dosage"], "category": ["CodeableConcept"],
    },
    "Medication": {**_COMMON, "code": "CodeableConcept", "ingredient": ["Ingredient"]},
    "Patient": {**_COMMON, "name": ["HumanName"], "birthDate": "string", "gender": "string"},
    "RiskAssessment": {**_COMMON, "occurrenceDateTime": "string"},
}


def check_resources(resources: Iterable[Mapping[str, Any]]) -> None:
    """Raise :class:`MalformedResource` for the first resource with a wrongly shaped element."""
    for resource in resources:
        check_resource(resource)


def check_resource(resource: Mapping[str, Any]) -> None:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise MalformedResource("a resource has no resourceType")
    shape = RESOURCES.get(rtype)
    if shape is None:
        return  # not read by the app
    rid = resource.get("id")
    label = f"{rtype}/{rid}" if isinstance(rid, str) and len(rid) <= 64 else rtype
    _object(resource, shape, label, "", 0)


def _object(node: Mapping[str, Any], shape: Mapping[str, Kind], label: str, path: str,
            depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedResource(f"{label}: elements nested too deeply")
    for name, kind in shape.items():
        if name not in node:
            continue
        where = f"{path}{name}"
        value = node[name]
        if isinstance(kind, list):
            if not isinstance(value, list):
                raise MalformedResource(f"{label}: {where} is not an array")
            for n, item in enumerate(value):
                _value(item, kind[0], label, f"{where}[{n}]", depth + 1)
        else:
            _value(value, kind, label, where, depth + 1)


def _value(value: Any, kind: str, label: str, where: str, depth: int) -> None:
    if value is None:
        raise MalformedResource(f"{label}: {where} is null")
    if kind == "string":
        if not isinstance(value, str):
            raise MalformedResource(f"{label}: {where} is not a string")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise MalformedResource(f"{label}: {where} is not true or false")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedResource(f"{label}: {where} is not an integer")
        if not INT_MIN <= value <= INT_MAX:
            raise MalformedResource(f"{label}: {where} is out of range")
    elif kind == "number":
        _number(value, label, where)
    elif kind == "Resource":
        if not isinstance(value, Mapping):
            raise MalformedResource(f"{label}: {where} is not an object")
        rtype = value.get("resourceType")
        inner = RESOURCES.get(rtype) if isinstance(rtype, str) else None
        if inner is not None:
            _object(value, inner, label, f"{where}.", depth)
    else:
        if not isinstance(value, Mapping):
            raise MalformedResource(f"{label}: {where} is not an object")
        _object(value, DATATYPES[kind], label, f"{where}.", depth)


def _number(value: Any, label: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MalformedResource(f"{label}: {where} is not a number")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_EXPONENT:
            raise MalformedResource(f"{label}: {where} is out of range")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or (value and not 10.0**MIN_EXPONENT <= abs(value)
                                        < 10.0**MAX_EXPONENT):
            raise MalformedResource(f"{label}: {where} is out of range")
        return
    if not value.is_finite() or (value and not MIN_EXPONENT <= value.adjusted() < MAX_EXPONENT):
        raise MalformedResource(f"{label}: {where} is out of range")
