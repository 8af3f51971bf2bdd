"""FHIR JSON output, small datatypes, code systems and the coded concepts the fixtures use."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Any

Json = dict[str, Any]

AT = date(2026, 11, 25)  # default assessment date of every fixture
LAST_INFUSION = date(2026, 11, 12)  # the last infusion of a patient on therapy
RECENT_TEST = date(2026, 9, 15)  # a latest antibody test well within 6 months of AT
TZ = "-05:00"
BASE = "http://example.org/fhir"
UUID_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://pml-risk.example.org/fhir_fixtures")

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
LOCAL_LAB = "urn:oid:1.2.3.4.5"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# ---------------------------------------------------------------------------------------------
# JSON output: FHIR decimals keep their written precision ("0.90" stays 0.90), so decimals are
# carried as tagged strings and unquoted after json.dumps.

_DEC = "\u0000dec:"
_DEC_RE = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')


def dec(text: str) -> str:
    """A FHIR decimal written exactly as ``text`` (e.g. "0.90")."""
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise ValueError(f"not a FHIR decimal: {text!r}")
    return _DEC + text


def dumps(data: Any) -> str:
    """``data`` as the fixture files write it: one-space indent, UTF-8, exact decimals."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    return _DEC_RE.sub(r"\1", text) + "\n"


def dumps_line(data: Any) -> str:
    """``data`` as one line of compact JSON with exact decimals (an NDJSON line, no newline)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return _DEC_RE.sub(r"\1", text)


# ---------------------------------------------------------------------------------------------
# Small FHIR datatypes


def dt(day: date, hour: int = 9, minute: int = 30) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{TZ}"


def coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def concept(text: str, *codings: Json) -> Json:
    out: Json = {}
    if codings:
        out["coding"] = list(codings)
    out["text"] = text
    return out


def quantity(value: str, unit: str, code: str | None = None) -> Json:
    return {"value": dec(value), "unit": unit, "system": UCUM, "code": code or unit}


def tenths(n: int) -> str:
    return f"{n // 10}.{n % 10}"


# ---------------------------------------------------------------------------------------------
# Coded concepts

LAB = concept("Laboratory", coding(OBS_CATEGORY, "laboratory", "Laboratory"))
VITALS = concept("Vital Signs", coding(OBS_CATEGORY, "vital-signs", "Vital Signs"))
JCV_QUAL_CODE = concept(
    "JC virus Ab [Presence] in Serum by Immunoassay",
    coding(LOINC, "70173-0", "JC virus Ab [Presence] in Serum by Immunoassay"),
)
JCV_INDEX_CODE = concept(
    "JC virus Ab index in Serum by Immunoassay",
    coding(LOINC, "100977-8", "JC virus Ab index in Serum by Immunoassay"),
)
JCV_QUAL_LOCAL = concept("JC Virus Antibody", coding(LOCAL_LAB, "JCVAB", "JC Virus Antibody"))
JCV_INDEX_LOCAL = concept("JCV Antibody Index", coding(LOCAL_LAB, "JCVABIDX", "JCV Antibody Index"))
POSITIVE = concept("Positive", coding(SNOMED, "10828004", "Positive"))
NEGATIVE = concept("Negative", coding(SNOMED, "260385009", "Negative"))
INDETERMINATE = concept("Indeterminate", coding(SNOMED, "82334004", "Indeterminate"))
QUAL_VALUES = {"positive": POSITIVE, "negative": NEGATIVE, "indeterminate": INDETERMINATE}
INTERP = {
    "positive": coding(INTERPRETATION, "POS", "Positive"),
    "negative": coding(INTERPRETATION, "NEG", "Negative"),
    "indeterminate": coding(INTERPRETATION, "IND", "Indeterminate"),
}

TYSABRI = concept(
    "Tysabri 300 mg IV", coding(RXNORM, "354770", "natalizumab")
)  # RxNorm code not verified; the same code the app is configured with
TYRUKO = concept("Tyruko (natalizumab-sztn) 300 mg IV")  # text only: no RxNorm coding
TYRUKO_BRAND = concept("TYRUKO 300 MG/15 ML IV SOLN")  # brand name only: no coding, no INN
IV_ROUTE = concept("Intravenous", coding(SNOMED, "47625008", "Intravenous route"))

# Prior immunosuppressants as the engine recognises them. Azathioprine and mitoxantrone have no
# confirmed RxNorm code, so they carry text only.
AZATHIOPRINE = concept("azathioprine (Imuran) 50 mg tablet")
MITOXANTRONE = concept("mitoxantrone 12 mg/m2 IV")
METHOTREXATE = concept("methotrexate 15 mg oral weekly", coding(RXNORM, "6851", "methotrexate"))
# Other MS therapies: listed, never counted as prior IS. Text only (codes not verified).
DIMETHYL_FUMARATE = concept("Tecfidera (dimethyl fumarate) 240 mg capsule")
INTERFERON = concept("Avonex (interferon beta-1a) 30 mcg IM weekly")
# Noise: a corticosteroid for relapses (not an immunosuppressant of the source analyses).
METHYLPRED = concept("methylprednisolone sodium succinate 1,000 mg IV")
