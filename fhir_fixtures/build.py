"""Build the synthetic FHIR R4 fixture patients of pml-risk.

Run ``python fhir_fixtures/build.py`` from the repository root (or anywhere): it rewrites
``fhir_fixtures/<patient-id>.json`` (one Bundle per patient), ``fhir_fixtures/index.json`` (the
patients and the result the engine must give for each at the assessment date), ``README.md`` and
the two bad-input files under ``fhir_fixtures/invalid/``. ``--check`` writes nothing and exits 1
when a file on disk differs from what the generator produces.

Everything is deterministic: fixed dates, ids derived from the patient id, ``uuid5`` for
``urn:uuid`` full URLs, no randomness and no clock. Standard library only.

All data is synthetic. Clinical rules: ``shared/clinical/risk-model.md``; the twelve worked
examples: ``reference.md`` §5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
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

Json = dict[str, Any]

# Table rows and bands, exactly as the engine words them (risk-model.md §2).
NEG_NO_IS = "antibody negative, no prior IS"
NEG_IS = "antibody negative, prior IS"
POS_NO_INDEX = "antibody positive, no prior IS, index not available"
POS_LOW = "antibody positive, no prior IS, index ≤ 1.5"
POS_HIGH = "antibody positive, no prior IS, index > 1.5"
POS_IS = "antibody positive, prior IS"
BAND_0_24 = "0–24 infusions"
BAND_25_PLUS = "25+ infusions"
BAND_25_48 = "25–48 infusions"
BAND_49_72 = "49–72 infusions"

# ---------------------------------------------------------------------------------------------
# JSON output: FHIR decimals keep their written precision ("0.90" stays 0.90), so decimals are
# carried as tagged strings and unquoted after json.dumps.

_DEC = "\u0000dec:"
_DEC_RE = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')


def dec(text: str) -> str:
    """A FHIR decimal written exactly as ``text`` (e.g. "0.90")."""
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise ValueError(text)
    return _DEC + text


def dumps(data: Any) -> str:
    text = json.dumps(data, indent=1, ensure_ascii=False)
    return _DEC_RE.sub(r"\1", text) + "\n"


# ---------------------------------------------------------------------------------------------
# Small FHIR helpers


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
)  # RxNorm code UNVERIFIED (reference.md §4.2), as configured by the app
TYRUKO = concept("Tyruko (natalizumab-sztn) 300 mg IV")  # text only: no RxNorm coding
TYRUKO_BRAND = concept("TYRUKO 300 MG/15 ML IV SOLN")  # brand name only: no coding, no INN
IV_ROUTE = concept("Intravenous", coding(SNOMED, "47625008", "Intravenous route"))

# Prior immunosuppressants (risk-model.md §5). Azathioprine and mitoxantrone have no confirmed
# RxNorm code, so they carry text only.
AZATHIOPRINE = concept("azathioprine (Imuran) 50 mg tablet")
MITOXANTRONE = concept("mitoxantrone 12 mg/m2 IV")
METHOTREXATE = concept("methotrexate 15 mg oral weekly", coding(RXNORM, "6851", "methotrexate"))
# Other MS therapies: listed, never counted as prior IS. Text only (codes not verified).
DIMETHYL_FUMARATE = concept("Tecfidera (dimethyl fumarate) 240 mg capsule")
INTERFERON = concept("Avonex (interferon beta-1a) 30 mcg IM weekly")
# Noise: a corticosteroid for relapses (not an immunosuppressant of the source analyses).
METHYLPRED = concept("methylprednisolone sodium succinate 1,000 mg IV")


# ---------------------------------------------------------------------------------------------
# One patient's chart


@dataclass
class Expected:
    status: str
    per_1000: str | None
    row: str | None
    band: str | None
    qualitative: str | None
    infusions: int
    antibody: str
    index: str | None
    prior_is: bool
    findings: list[str]

    def as_json(self) -> Json:
        return {
            "status": self.status,
            "per_1000": self.per_1000,
            "row": self.row,
            "band": self.band,
            "qualitative": self.qualitative,
            "infusions": self.infusions,
            "antibody": self.antibody,
            "index": self.index,
            "prior_is": self.prior_is,
            "findings": sorted(self.findings),
        }


@dataclass
class Chart:
    pid: str
    given: str
    family: str
    gender: str
    birth: date
    mrn: str
    bundle_type: str = "collection"
    urn_full_urls: bool = False
    shuffle: bool = False  # "heavy": entries in a mixed (but fixed) order
    resources: list[Json] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)
    _counter: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def ref(self) -> Json:
        return {"reference": f"Patient/{self.pid}", "display": self.name}

    def new_id(self, kind: str) -> str:
        n = self._counter.get(kind, 0) + 1
        self._counter[kind] = n
        return f"{self.pid}-{kind}-{n:03d}"

    def add(self, resource: Json) -> Json:
        key = f"{resource['resourceType']}/{resource['id']}"
        if key in self._ids:
            raise ValueError(f"duplicate {key}")
        self._ids.add(key)
        self.resources.append(resource)
        return resource

    # -- demographics and context ------------------------------------------------------------

    def patient(self) -> None:
        self.add(
            {
                "resourceType": "Patient",
                "id": self.pid,
                "identifier": [
                    {
                        "use": "usual",
                        "type": concept(
                            "MRN",
                            coding(
                                "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "MR",
                                "Medical Record Number",
                            ),
                        ),
                        "system": MRN_SYSTEM,
                        "value": self.mrn,
                    }
                ],
                "active": True,
                "name": [
                    {
                        "use": "official",
                        "text": self.name,
                        "family": self.family,
                        "given": [self.given],
                    }
                ],
                "gender": self.gender,
                "birthDate": self.birth.isoformat(),
            }
        )

    def ms_condition(self, onset: date) -> None:
        self.add(
            {
                "resourceType": "Condition",
                "id": self.new_id("cond"),
                "clinicalStatus": concept(
                    "Active",
                    coding(
                        "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "active",
                        "Active",
                    ),
                ),
                "verificationStatus": concept(
                    "Confirmed",
                    coding(
                        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "confirmed",
                        "Confirmed",
                    ),
                ),
                "category": [
                    concept(
                        "Problem List Item",
                        coding(
                            "http://terminology.hl7.org/CodeSystem/condition-category",
                            "problem-list-item",
                            "Problem List Item",
                        ),
                    )
                ],
                "code": concept(
                    "Multiple sclerosis",
                    coding(SNOMED, "24700007", "Multiple sclerosis (disorder)"),
                ),
                "subject": self.ref,
                "onsetDateTime": onset.isoformat(),
                "recordedDate": dt(onset + timedelta(days=30), 11, 0),
            }
        )

    def encounter(self, day: date, text: str = "Neurology follow-up") -> str:
        eid = self.new_id("enc")
        self.add(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": coding(
                    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"
                ),
                "type": [concept(text)],
                "subject": self.ref,
                "period": {"start": dt(day, 8, 45), "end": dt(day, 9, 40)},
                "reasonCode": [
                    concept(
                        "Multiple sclerosis",
                        coding(SNOMED, "24700007", "Multiple sclerosis (disorder)"),
                    )
                ],
            }
        )
        return eid

    # -- observations ------------------------------------------------------------------------

    def observation(
        self,
        kind: str,
        code: Json,
        day: date,
        *,
        category: Json = LAB,
        status: str = "final",
        value: Json | None = None,
        interpretation: str | None = None,
        extra: Json | None = None,
        hour: int = 9,
        minute: int = 30,
    ) -> str:
        oid = self.new_id(kind)
        obs: Json = {
            "resourceType": "Observation",
            "id": oid,
            "status": status,
            "category": [category],
            "code": code,
            "subject": self.ref,
            "effectiveDateTime": dt(day, hour, minute),
            "issued": dt(day + timedelta(days=2 if category is LAB else 0), 14, 5),
        }
        if value:
            obs.update(value)
        if interpretation:
            obs["interpretation"] = [
                concept(INTERP[interpretation]["display"], INTERP[interpretation])
            ]
        if extra:
            obs.update(extra)
        self.add(obs)
        return oid

    def jcv_test(
        self,
        day: date,
        result: str | None,
        index: str | None,
        *,
        status: str = "final",
        style: str = "concept",  # concept | string | interpretation
        local: bool = False,
    ) -> None:
        """One anti-JCV antibody test: a qualitative result and/or an index, same date."""
        if result is not None:
            value: Json = {}
            interp: str | None = None
            if style == "concept":
                value = {"valueCodeableConcept": QUAL_VALUES[result]}
            elif style == "string":
                value = {"valueString": result.capitalize()}
            elif style == "interpretation":
                interp = result
            else:
                raise ValueError(style)
            self.observation(
                "jcvab",
                JCV_QUAL_LOCAL if local else JCV_QUAL_CODE,
                day,
                status=status,
                value=value,
                interpretation=interp,
                extra={"method": concept("STRATIFY JCV DxSelect")},
            )
        if index is not None:
            self.observation(
                "jcvidx",
                JCV_INDEX_LOCAL if local else JCV_INDEX_CODE,
                day,
                status=status,
                value={"valueQuantity": quantity(index, "{index}")},
                extra={
                    "method": concept("STRATIFY JCV DxSelect"),
                    "referenceRange": [
                        {"text": "<0.20 negative; 0.20-0.40 indeterminate; >0.40 positive"}
                    ],
                },
            )

    def cancelled_jcv(self, day: date) -> None:
        self.observation(
            "jcvab",
            JCV_QUAL_CODE,
            day,
            status="cancelled",
            extra={
                "dataAbsentReason": concept(
                    "Not Performed",
                    coding(
                        "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "not-performed",
                        "Not Performed",
                    ),
                ),
                "note": [{"text": "Specimen hemolyzed; test cancelled by the laboratory."}],
            },
        )

    def jcv_pcr(self, day: date) -> None:
        """JC virus DNA PCR (LOINC 42921-7): a PML work-up test, NOT the antibody."""
        self.observation(
            "jcvpcr",
            concept("JC virus DNA by PCR", coding(LOINC, "42921-7", "JC virus DNA by PCR")),
            day,
            value={"valueCodeableConcept": concept("Not detected")},
        )

    def cbc(self, day: date, seed: int) -> None:
        items = [
            ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", 58 + seed % 17),
            ("731-0", "Lymphocytes [#/volume] in Blood", 24 + seed % 13),
            ("718-7", "Hemoglobin [Mass/volume] in Blood", 128 + seed % 19),
            ("777-3", "Platelets [#/volume] in Blood by Automated count", 0),
        ]
        for code, display, n in items:
            if code == "718-7":
                value = quantity(tenths(n), "g/dL")
                rng = {"low": quantity("12.0", "g/dL"), "high": quantity("16.0", "g/dL")}
            elif code == "777-3":
                value = quantity(str(210 + (seed * 7) % 90), "10*3/uL")
                rng = {"low": quantity("150", "10*3/uL"), "high": quantity("400", "10*3/uL")}
            else:
                value = quantity(tenths(n), "10*3/uL")
                rng = None
            self.observation(
                "lab",
                concept(display, coding(LOINC, code, display)),
                day,
                value={"valueQuantity": value},
                extra={"referenceRange": [rng]} if rng else None,
                minute=31,
            )

    def alt(self, day: date, seed: int) -> None:
        display = "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma"
        self.observation(
            "lab",
            concept(display, coding(LOINC, "1742-6", display)),
            day,
            value={"valueQuantity": quantity(str(14 + seed % 21), "U/L")},
            minute=31,
        )

    def vitals(self, day: date, seed: int) -> None:
        self.observation(
            "vital",
            concept("Heart rate", coding(LOINC, "8867-4", "Heart rate")),
            day,
            category=VITALS,
            value={"valueQuantity": quantity(str(62 + seed % 19), "/min", "/min")},
            hour=9,
            minute=5,
        )
        self.observation(
            "vital",
            concept("Body weight", coding(LOINC, "29463-7", "Body weight")),
            day,
            category=VITALS,
            value={"valueQuantity": quantity(tenths(640 + seed % 37), "kg")},
            hour=9,
            minute=5,
        )

    # -- medications -------------------------------------------------------------------------

    def infusion(
        self,
        day: date,
        *,
        product: Json = TYSABRI,
        status: str = "completed",
        reference: str | None = None,
        contained: Json | None = None,
        reason: str | None = None,
    ) -> str:
        aid = self.new_id("nat")
        ma: Json = {"resourceType": "MedicationAdministration", "id": aid}
        if contained is not None:
            ma["contained"] = [contained]
        ma["status"] = status
        if reason:
            ma["statusReason"] = [concept(reason)]
        if reference is not None:
            ma["medicationReference"] = {"reference": reference}
        else:
            ma["medicationCodeableConcept"] = product
        ma["subject"] = self.ref
        ma["effectiveDateTime"] = dt(day, 10, 15)
        ma["dosage"] = {
            "text": "300 mg IV over 1 hour",
            "route": IV_ROUTE,
            "dose": quantity("300", "mg"),
        }
        self.add(ma)
        return aid

    def infusions(
        self,
        n: int,
        *,
        interval: int = 28,
        last: date = LAST_INFUSION,
        product: Json = TYSABRI,
    ) -> list[date]:
        days = [last - timedelta(days=interval * (n - 1 - i)) for i in range(n)]
        for day in days:
            self.infusion(day, product=product)
        return days

    def other_admin(self, day: date, product: Json) -> None:
        self.add(
            {
                "resourceType": "MedicationAdministration",
                "id": self.new_id("madm"),
                "status": "completed",
                "medicationCodeableConcept": product,
                "subject": self.ref,
                "effectiveDateTime": dt(day, 11, 0),
                "dosage": {
                    "text": "1,000 mg IV daily for relapse",
                    "route": IV_ROUTE,
                    "dose": quantity("1000", "mg"),
                },
            }
        )

    def statement(
        self, product: Json, start: date, end: date | None, status: str = "completed"
    ) -> None:
        period: Json = {"start": start.isoformat()}
        if end is not None:
            period["end"] = end.isoformat()
        self.add(
            {
                "resourceType": "MedicationStatement",
                "id": self.new_id("mst"),
                "status": status,
                "medicationCodeableConcept": product,
                "subject": self.ref,
                "effectivePeriod": period,
                "dateAsserted": dt((end or start) + timedelta(days=14), 10, 0),
                "informationSource": self.ref,
                "note": [{"text": "Reported by patient at intake (outside history)."}],
            }
        )

    def request(self, product: Json, authored: date, status: str = "completed") -> None:
        self.add(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id("mrq"),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": product,
                "subject": self.ref,
                "authoredOn": dt(authored, 16, 20),
                "dosageInstruction": [{"text": product["text"]}],
            }
        )

    # -- routine background ------------------------------------------------------------------

    def routine(
        self, *, onset: date, labs_on: Iterable[date] = (), pcr: date | None = None
    ) -> None:
        """Patient, MS diagnosis, the latest visit, vitals and unrelated labs (noise)."""
        self.patient()
        self.ms_condition(onset)
        self.encounter(LAST_INFUSION, "Natalizumab infusion visit")
        self.vitals(LAST_INFUSION, len(self.pid))
        for i, day in enumerate(labs_on):
            self.cbc(day, i + len(self.pid))
        if pcr is not None:
            self.jcv_pcr(pcr)

    # -- bundle ------------------------------------------------------------------------------

    def full_url(self, resource: Json) -> str:
        key = f"{resource['resourceType']}/{resource['id']}"
        if self.urn_full_urls:
            return f"urn:uuid:{uuid.uuid5(UUID_NS, key)}"
        return f"{BASE}/{key}"

    def bundle(self) -> Json:
        order = {
            "Patient": 0,
            "Condition": 1,
            "Encounter": 2,
            "Medication": 3,
            "MedicationAdministration": 4,
            "MedicationStatement": 5,
            "MedicationRequest": 6,
            "Observation": 7,
        }
        resources = list(self.resources)
        if self.shuffle:
            resources.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        else:
            resources.sort(key=lambda r: order[r["resourceType"]])  # stable within a type
        entries: list[Json] = []
        for r in resources:
            entry: Json = {"fullUrl": self.full_url(r), "resource": r}
            if self.bundle_type == "searchset":
                mode = "include" if r["resourceType"] == "Patient" else "match"
                entry["search"] = {"mode": mode}
            elif self.bundle_type == "transaction":
                entry["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
            entries.append(entry)
        out: Json = {
            "resourceType": "Bundle",
            "id": f"{self.pid}-bundle",
            "meta": {"lastUpdated": dt(AT, 7, 0)},
            "type": self.bundle_type,
        }
        if self.bundle_type != "transaction":
            out["timestamp"] = dt(AT, 7, 0)
        if self.bundle_type == "searchset":
            out["total"] = sum(1 for e in entries if e["search"]["mode"] == "match")
            out["link"] = [
                {
                    "relation": "self",
                    "url": f"{BASE}/Patient/{self.pid}/$everything",
                }
            ]
        out["entry"] = entries
        return out


@dataclass
class Fixture:
    chart: Chart
    summary: str
    expected: Expected


def ex(
    status: str = "ok",
    per_1000: str | None = None,
    row: str | None = None,
    band: str | None = None,
    qualitative: str | None = None,
    *,
    infusions: int,
    antibody: str,
    index: str | None,
    prior_is: bool,
    findings: Iterable[str] = (),
) -> Expected:
    return Expected(
        status,
        per_1000,
        row,
        band,
        qualitative,
        infusions,
        antibody,
        index,
        prior_is,
        list(findings),
    )


def years_before(day: date, years: int) -> date:
    return day.replace(year=day.year - years)


# ---------------------------------------------------------------------------------------------
# The patients. Each builder returns a Fixture; FIXTURES keeps the published order.

NONE_ON_RECORD = "prior-is-none-on-record"


def ex01() -> Fixture:
    c = Chart("ex01-negative-30", "Laura", "Brennan", "female", date(1988, 3, 14), "E100001")
    days = c.infusions(30)
    c.routine(onset=date(2017, 6, 2), labs_on=[date(2026, 5, 20), RECENT_TEST])
    c.statement(INTERFERON, date(2018, 1, 10), days[0] - timedelta(days=60))
    c.jcv_test(date(2026, 3, 18), "negative", "0.12")
    c.jcv_test(RECENT_TEST, "negative", "0.11")
    return Fixture(
        c,
        "Reference §5 #1: antibody negative, 30 infusions, no prior IS (interferon listed only)",
        ex(
            "ok",
            "0.2",
            NEG_NO_IS,
            BAND_25_PLUS,
            "low",
            infusions=30,
            antibody="negative",
            index="0.11",
            prior_is=False,
            findings=[NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )


def ex02() -> Fixture:
    c = Chart("ex02-positive-no-index", "Marcus", "Oyelaran", "male", date(1979, 11, 2), "E100002")
    c.infusions(20)
    c.routine(onset=date(2021, 2, 11), labs_on=[RECENT_TEST], pcr=date(2025, 4, 7))
    c.jcv_test(RECENT_TEST, "positive", None)
    return Fixture(
        c,
        "Reference §5 #2: antibody positive with no index reported, 20 infusions",
        ex(
            "ok",
            "1",
            POS_NO_INDEX,
            BAND_0_24,
            "moderate",
            infusions=20,
            antibody="positive",
            index=None,
            prior_is=False,
            findings=["index-missing", NONE_ON_RECORD],
        ),
    )


def ex03() -> Fixture:
    c = Chart(
        "ex03-index-0-90",
        "Sofia",
        "Lindqvist",
        "female",
        date(1991, 7, 23),
        "E100003",
        bundle_type="searchset",
    )
    c.infusions(36)
    c.routine(onset=date(2019, 9, 5), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "0.90")
    return Fixture(
        c,
        "Reference §5 #3: index 0.90 (lower sub-band boundary), 36 infusions; searchset bundle",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=36,
            antibody="positive",
            index="0.90",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex04() -> Fixture:
    c = Chart(
        "ex04-index-1-50-24-infusions",
        "Daniel",
        "Achterberg",
        "male",
        date(1985, 1, 30),
        "E100004",
        bundle_type="transaction",
        urn_full_urls=True,
    )
    c.infusions(24)
    c.routine(onset=date(2022, 1, 19), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.50")
    return Fixture(
        c,
        "Reference §5 #4: index exactly 1.50, exactly 24 infusions; transaction bundle",
        ex(
            "ok",
            "0.2",
            POS_LOW,
            BAND_0_24,
            "moderate",
            infusions=24,
            antibody="positive",
            index="1.50",
            prior_is=False,
            findings=["index-near-cutoff", NONE_ON_RECORD],
        ),
    )


def ex05() -> Fixture:
    c = Chart(
        "ex05-index-1-51-25-infusions", "Priya", "Raman", "female", date(1990, 5, 8), "E100005"
    )
    days = c.infusions(25)
    c.routine(onset=date(2018, 10, 1), labs_on=[RECENT_TEST])
    c.statement(DIMETHYL_FUMARATE, date(2019, 2, 1), days[0] - timedelta(days=45))
    c.jcv_test(RECENT_TEST, "positive", "1.51")
    return Fixture(
        c,
        "Reference §5 #5: index 1.51 (just above 1.5), exactly 25 infusions; prior Tecfidera",
        ex(
            "ok",
            "8.8",
            POS_HIGH,
            BAND_25_48,
            "high",
            infusions=25,
            antibody="positive",
            index="1.51",
            prior_is=False,
            findings=["index-near-cutoff", NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )


def ex06() -> Fixture:
    c = Chart(
        "ex06-index-3-0-12-infusions",
        "Tomasz",
        "Wierzbicki",
        "male",
        date(1983, 9, 17),
        "E100006",
        urn_full_urls=True,
    )
    c.infusions(12)
    c.routine(onset=date(2023, 3, 3), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "3.00", style="string")
    return Fixture(
        c,
        "Reference §5 #6: index 3.00, exactly 12 infusions; qualitative as valueString",
        ex(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=12,
            antibody="positive",
            index="3.00",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex07() -> Fixture:
    c = Chart(
        "ex07-prior-is-azathioprine-48",
        "Helen",
        "Castellano",
        "female",
        date(1975, 12, 4),
        "E100007",
    )
    days = c.infusions(48)
    c.routine(onset=date(2012, 4, 16), labs_on=[RECENT_TEST])
    c.statement(AZATHIOPRINE, date(2016, 3, 1), date(2018, 6, 30))
    assert days[0] > date(2018, 6, 30)
    c.other_admin(date(2019, 5, 6), METHYLPRED)
    c.jcv_test(RECENT_TEST, "positive", "0.50")
    return Fixture(
        c,
        "Reference §5 #7: prior azathioprine overrides a low index (0.50), exactly 48 infusions",
        ex(
            "ok",
            "12",
            POS_IS,
            BAND_25_48,
            "high",
            infusions=48,
            antibody="positive",
            index="0.50",
            prior_is=True,
            findings=["index-not-used"],
        ),
    )


def ex08() -> Fixture:
    c = Chart(
        "ex08-prior-is-mitoxantrone-72",
        "Robert",
        "Nakamura",
        "male",
        date(1970, 2, 21),
        "E100008",
        urn_full_urls=True,
    )
    days = c.infusions(72)
    c.routine(onset=date(2010, 8, 9), labs_on=[date(2026, 3, 10), RECENT_TEST])
    c.request(MITOXANTRONE, date(2016, 9, 12))
    c.request(MITOXANTRONE, date(2016, 12, 5))
    assert days[0] > date(2016, 12, 5)
    c.jcv_test(RECENT_TEST, "positive", "2.50")
    return Fixture(
        c,
        "Reference §5 #8: prior mitoxantrone with a high index (2.50), exactly 72 infusions",
        ex(
            "ok",
            "13",
            POS_IS,
            BAND_49_72,
            "high",
            infusions=72,
            antibody="positive",
            index="2.50",
            prior_is=True,
            findings=["index-not-used"],
        ),
    )


def ex09() -> Fixture:
    c = Chart(
        "ex09-index-1-2-72-infusions", "Grace", "Adeyemi", "female", date(1987, 6, 29), "E100009"
    )
    days = c.infusions(72)
    # Switched to the biosimilar half way: the last 36 infusions are Tyruko, text only.
    for r in c.resources[36:72]:
        r["medicationCodeableConcept"] = TYRUKO
    c.routine(onset=date(2014, 11, 20), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.20")
    assert len(days) == 72
    return Fixture(
        c,
        "Reference §5 #9: index 1.20, exactly 72 infusions (36 Tysabri + 36 Tyruko by text)",
        ex(
            "ok",
            "1.4",
            POS_LOW,
            BAND_49_72,
            "moderate",
            infusions=72,
            antibody="positive",
            index="1.20",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def ex10() -> Fixture:
    c = Chart(
        "ex10-beyond-72-100-infusions", "Ahmed", "Haddad", "male", date(1978, 4, 11), "E100010"
    )
    c.infusions(100)
    c.routine(onset=date(2009, 1, 26), labs_on=[date(2025, 9, 9), RECENT_TEST])
    c.other_admin(date(2017, 2, 13), METHYLPRED)
    c.jcv_test(RECENT_TEST, "positive", "2.00")
    return Fixture(
        c,
        "Reference §5 #10: index 2.00, 100 infusions: beyond the table, 49–72 value shown",
        ex(
            "ok",
            "10.1",
            POS_HIGH,
            BAND_49_72,
            "high",
            infusions=100,
            antibody="positive",
            index="2.00",
            prior_is=False,
            findings=["exposure-beyond-table", NONE_ON_RECORD],
        ),
    )


def ex11() -> Fixture:
    c = Chart(
        "ex11-negative-prior-is-methotrexate",
        "Claire",
        "Dubois",
        "female",
        date(1981, 8, 5),
        "E100011",
    )
    days = c.infusions(10)
    c.routine(onset=date(2015, 5, 14), labs_on=[RECENT_TEST])
    c.statement(METHOTREXATE, date(2019, 4, 1), date(2024, 10, 31))
    assert days[0] > date(2024, 10, 31)
    c.jcv_test(RECENT_TEST, "negative", None, style="interpretation")
    return Fixture(
        c,
        "Reference §5 #11: antibody negative (interpretation NEG only), prior methotrexate, "
        "10 infusions",
        ex(
            "ok",
            "0.06",
            NEG_IS,
            BAND_0_24,
            "low",
            infusions=10,
            antibody="negative",
            index=None,
            prior_is=True,
        ),
    )


def ex12() -> Fixture:
    c = Chart(
        "ex12-eid-40-over-60-months", "Jonas", "Eriksen", "male", date(1986, 10, 13), "E100012"
    )
    days = c.infusions(40, interval=47)
    c.routine(onset=date(2020, 7, 7), labs_on=[RECENT_TEST])
    c.jcv_test(date(2026, 3, 20), "positive", "1.90")
    c.jcv_test(RECENT_TEST, "positive", "1.80")
    assert (days[-1].year - days[0].year) * 12 + days[-1].month - days[0].month == 60
    return Fixture(
        c,
        "Reference §5 #12: index 1.80, 40 infusions every 47 days over 60 calendar months (EID)",
        ex(
            "ok",
            "8.8",
            POS_HIGH,
            BAND_25_48,
            "high",
            infusions=40,
            antibody="positive",
            index="1.80",
            prior_is=False,
            findings=["exposure-extended-interval", NONE_ON_RECORD],
        ),
    )


def stale_result() -> Fixture:
    c = Chart("stale-result", "Irene", "Kowalczyk", "female", date(1984, 2, 2), "E100013")
    c.infusions(30, product=TYRUKO_BRAND)
    c.routine(onset=date(2020, 12, 1), labs_on=[date(2026, 3, 25), date(2026, 10, 1)])
    c.jcv_test(date(2025, 9, 24), "positive", "1.00")
    c.jcv_test(date(2026, 3, 25), "positive", "0.95")  # 8 months before AT
    return Fixture(
        c,
        "Latest antibody test 8 months before the assessment (retest due); Tyruko by brand text",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="0.95",
            prior_is=False,
            findings=["antibody-stale", NONE_ON_RECORD],
        ),
    )


def indeterminate() -> Fixture:
    c = Chart("indeterminate", "Samuel", "Ortiz", "male", date(1992, 3, 27), "E100014")
    c.infusions(18)
    c.routine(onset=date(2022, 6, 30), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "indeterminate", "0.30")
    return Fixture(
        c,
        "Qualitative indeterminate with index 0.30: no estimate (confirmatory assay needed)",
        ex(
            "incomplete",
            infusions=18,
            antibody="indeterminate",
            index="0.30",
            prior_is=False,
            findings=["antibody-indeterminate", NONE_ON_RECORD],
        ),
    )


def no_antibody_result() -> Fixture:
    c = Chart("no-antibody-result", "Beatrice", "Moreau", "female", date(1994, 9, 9), "E100015")
    c.infusions(6)
    c.routine(
        onset=date(2024, 9, 18), labs_on=[date(2026, 5, 1), RECENT_TEST], pcr=date(2026, 4, 2)
    )
    return Fixture(
        c,
        "No anti-JCV antibody result at all (a JCV DNA PCR is on file and must not count)",
        ex(
            "incomplete",
            infusions=6,
            antibody="unknown",
            index=None,
            prior_is=False,
            findings=["antibody-missing", NONE_ON_RECORD],
        ),
    )


def seroreversion() -> Fixture:
    c = Chart("seroreversion", "Victor", "Lindgren", "male", date(1982, 12, 19), "E100016")
    c.infusions(40)
    c.routine(onset=date(2019, 3, 8), labs_on=[RECENT_TEST])
    c.jcv_test(date(2024, 4, 16), "positive", "0.65")
    c.jcv_test(date(2025, 3, 11), "negative", "0.18")
    c.jcv_test(RECENT_TEST, "negative", "0.15")
    return Fixture(
        c,
        "Positive in 2024, negative on the latest tests (seroreversion), 40 infusions",
        ex(
            "ok",
            "0.2",
            NEG_NO_IS,
            BAND_25_PLUS,
            "low",
            infusions=40,
            antibody="negative",
            index="0.15",
            prior_is=False,
            findings=["antibody-seroreversion", NONE_ON_RECORD],
        ),
    )


def preliminary_latest() -> Fixture:
    c = Chart("preliminary-latest", "Nadia", "Petrova", "female", date(1989, 4, 1), "E100017")
    c.infusions(30)
    c.routine(onset=date(2020, 10, 22), labs_on=[date(2026, 7, 10)])
    c.jcv_test(date(2026, 7, 10), "positive", "1.20")
    c.jcv_test(date(2026, 11, 18), "positive", "1.90", status="preliminary")
    return Fixture(
        c,
        "Latest test preliminary (index 1.90, shown not used); older final index 1.20 used",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="1.20",
            prior_is=False,
            findings=["antibody-preliminary", NONE_ON_RECORD],
        ),
    )


def entered_in_error_latest() -> Fixture:
    c = Chart("entered-in-error-latest", "George", "Whitfield", "male", date(1977, 7, 7), "E100018")
    c.infusions(50)
    c.routine(onset=date(2016, 2, 29), labs_on=[date(2026, 8, 5)])
    c.jcv_test(date(2026, 8, 5), "positive", "0.80")
    c.jcv_test(date(2026, 10, 20), "positive", "3.10", status="entered-in-error")
    return Fixture(
        c,
        "Latest test (index 3.10) entered-in-error and ignored; older final index 0.80 used",
        ex(
            "ok",
            "1.4",
            POS_LOW,
            BAND_49_72,
            "moderate",
            infusions=50,
            antibody="positive",
            index="0.80",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def no_infusions() -> Fixture:
    c = Chart("no-infusions", "Olivia", "Fernandes", "female", date(1996, 1, 15), "E100019")
    c.routine(onset=date(2021, 4, 4), labs_on=[RECENT_TEST])
    c.statement(AZATHIOPRINE, date(2022, 1, 10), date(2024, 3, 1))
    c.jcv_test(RECENT_TEST, "positive", "0.60")
    return Fixture(
        c,
        "Antibody positive (index 0.60), natalizumab not started, prior azathioprine",
        ex(
            "ok",
            "6",
            POS_IS,
            BAND_0_24,
            "moderate",
            infusions=0,
            antibody="positive",
            index="0.60",
            prior_is=True,
            findings=["exposure-none", "index-not-used", "table-cell-flagged"],
        ),
    )


def prior_is_after_first_infusion() -> Fixture:
    c = Chart(
        "prior-is-after-first-infusion", "Michael", "Grünewald", "male", date(1980, 6, 6), "E100020"
    )
    days = c.infusions(30)
    c.routine(onset=date(2018, 5, 5), labs_on=[RECENT_TEST])
    c.request(METHOTREXATE, days[10] + timedelta(days=3), status="active")
    c.jcv_test(RECENT_TEST, "positive", "1.00")
    return Fixture(
        c,
        "Methotrexate ordered after the first natalizumab infusion: concomitant, not prior IS",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="1.00",
            prior_is=False,
            findings=["prior-is-concomitant", NONE_ON_RECORD],
        ),
    )


def medication_reference() -> Fixture:
    c = Chart("medication-reference", "Elena", "Marchetti", "female", date(1993, 10, 31), "E100021")
    c.add(
        {
            "resourceType": "Medication",
            "id": "medication-reference-tysabri",
            "code": concept(
                "Tysabri (natalizumab) 300 mg/15 mL injection",
                coding(RXNORM, "354770", "natalizumab"),
            ),
            "status": "active",
            "form": concept("Injection"),
        }
    )
    days = [LAST_INFUSION - timedelta(days=28 * (19 - i)) for i in range(20)]
    for i, day in enumerate(days):
        if i < 14:
            c.infusion(day, reference="Medication/medication-reference-tysabri")
        else:  # the last six reference a contained Medication, text only
            c.infusion(
                day,
                reference="#med1",
                contained={
                    "resourceType": "Medication",
                    "id": "med1",
                    "code": concept("Tyruko (natalizumab-sztn) 300 mg/15 mL injection"),
                },
            )
    c.routine(onset=date(2023, 1, 12), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "1.70")
    return Fixture(
        c,
        "Infusions via medicationReference: 14 to an included Medication, 6 to contained #med1",
        ex(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=20,
            antibody="positive",
            index="1.70",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def local_lab_code() -> Fixture:
    c = Chart("local-lab-code", "Hannah", "Osei", "female", date(1987, 2, 14), "E100022")
    c.infusions(30)
    c.routine(onset=date(2019, 7, 1), labs_on=[RECENT_TEST], pcr=date(2024, 1, 9))
    c.jcv_test(RECENT_TEST, "positive", "0.70", local=True)
    return Fixture(
        c,
        "Antibody results under a local lab code only (no LOINC), matched by text",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=30,
            antibody="positive",
            index="0.70",
            prior_is=False,
            findings=["antibody-local-code", NONE_ON_RECORD],
        ),
    )


def not_done_and_other_statuses() -> Fixture:
    c = Chart(
        "not-done-and-other-statuses", "Patrick", "Byrne", "male", date(1983, 5, 25), "E100023"
    )
    days = c.infusions(24)
    c.infusion(days[5], status="entered-in-error", reason="Duplicate documentation")
    c.infusion(days[8] + timedelta(days=7), status="not-done", reason="Patient febrile")
    c.infusion(days[14] + timedelta(days=2), status="stopped", reason="Infusion reaction")
    c.infusion(AT - timedelta(days=1), status="in-progress")
    c.routine(onset=date(2021, 9, 9), labs_on=[RECENT_TEST])
    c.jcv_test(RECENT_TEST, "positive", "2.20")
    c.cancelled_jcv(date(2026, 11, 10))
    return Fixture(
        c,
        "24 completed infusions plus entered-in-error, not-done, stopped and in-progress ones "
        "(not counted); a newer cancelled antibody result (ignored)",
        ex(
            "ok",
            "1.2",
            POS_HIGH,
            BAND_0_24,
            "moderate",
            infusions=24,
            antibody="positive",
            index="2.20",
            prior_is=False,
            findings=[NONE_ON_RECORD],
        ),
    )


def heavy() -> Fixture:
    c = Chart(
        "heavy", "Catherine", "Vandermeer", "female", date(1974, 8, 18), "E100024", shuffle=True
    )
    days = c.infusions(130)
    c.patient()
    c.ms_condition(date(2012, 3, 3))
    c.statement(INTERFERON, date(2012, 6, 1), date(2014, 5, 31))
    c.statement(DIMETHYL_FUMARATE, date(2014, 7, 1), days[0] - timedelta(days=60))
    c.other_admin(date(2015, 11, 2), METHYLPRED)
    c.jcv_pcr(date(2021, 6, 14))
    # 20 tests every 6 months, index rising 0.45 -> 2.35; the latest on RECENT_TEST.
    tests = [RECENT_TEST - timedelta(days=182 * (19 - i)) for i in range(20)]
    for i, day in enumerate(tests):
        c.encounter(day)
        c.vitals(day, i)
        c.jcv_test(day, "positive", f"{(45 + 10 * i) // 100}.{(45 + 10 * i) % 100:02d}")
        c.cbc(day, i)
        c.alt(day, i)
    return Fixture(
        c,
        "Ten years: 130 infusions, 20 antibody tests with a rising index (0.45 -> 2.35), "
        "~100 noise labs, entries in mixed order",
        ex(
            "ok",
            "10.1",
            POS_HIGH,
            BAND_49_72,
            "high",
            infusions=130,
            antibody="positive",
            index="2.35",
            prior_is=False,
            findings=["exposure-beyond-table", "index-rising", NONE_ON_RECORD, "other-ms-therapy"],
        ),
    )


def rising_index_near_cutoff() -> Fixture:
    c = Chart(
        "rising-index-near-cutoff", "Lucas", "Ferreira", "male", date(1990, 11, 11), "E100025"
    )
    c.infusions(36)
    c.routine(onset=date(2020, 2, 20), labs_on=[RECENT_TEST])
    c.jcv_test(date(2025, 9, 16), "positive", "1.10", style="interpretation")
    c.jcv_test(date(2026, 3, 17), "positive", "1.30", style="interpretation")
    c.jcv_test(RECENT_TEST, "positive", "1.45", style="interpretation")
    return Fixture(
        c,
        "Index 1.10 -> 1.30 -> 1.45 over the last three tests: rising, near the 1.5 cut-off "
        "(qualitative by interpretation POS)",
        ex(
            "ok",
            "1.1",
            POS_LOW,
            BAND_25_48,
            "moderate",
            infusions=36,
            antibody="positive",
            index="1.45",
            prior_is=False,
            findings=["index-near-cutoff", "index-rising", NONE_ON_RECORD],
        ),
    )


def natalizumab_before_first_admin() -> Fixture:
    c = Chart(
        "natalizumab-before-first-admin", "Amara", "Nwosu", "female", date(1995, 3, 3), "E100026"
    )
    days = c.infusions(14)
    c.routine(onset=date(2023, 4, 25), labs_on=[RECENT_TEST])
    c.statement(
        concept(
            "Tysabri 300 mg IV every 4 weeks (given at outside infusion center)",
            coding(RXNORM, "354770", "natalizumab"),
        ),
        days[0] - timedelta(days=365),
        days[0] - timedelta(days=28),
    )
    c.jcv_test(RECENT_TEST, "negative", "0.09")
    return Fixture(
        c,
        "A natalizumab MedicationStatement a year before the first recorded administration "
        "(exposure may be undercounted); 14 recorded infusions, antibody negative",
        ex(
            "ok",
            "0.02",
            NEG_NO_IS,
            BAND_0_24,
            "low",
            infusions=14,
            antibody="negative",
            index="0.09",
            prior_is=False,
            findings=["exposure-undercount", NONE_ON_RECORD],
        ),
    )


FIXTURES: list[Callable[[], Fixture]] = [
    ex01,
    ex02,
    ex03,
    ex04,
    ex05,
    ex06,
    ex07,
    ex08,
    ex09,
    ex10,
    ex11,
    ex12,
    stale_result,
    indeterminate,
    no_antibody_result,
    seroreversion,
    preliminary_latest,
    entered_in_error_latest,
    no_infusions,
    prior_is_after_first_infusion,
    medication_reference,
    local_lab_code,
    not_done_and_other_statuses,
    heavy,
    rising_index_near_cutoff,
    natalizumab_before_first_admin,
]


# ---------------------------------------------------------------------------------------------
# Bad inputs (not patients): the app must refuse them with a clear message.


def invalid_two_patients() -> Json:
    a = Chart("invalid-two-a", "Anna", "Example", "female", date(1985, 1, 1), "E199001")
    b = Chart("invalid-two-b", "Bruno", "Example", "male", date(1980, 2, 2), "E199002")
    for chart, index in ((a, "1.70"), (b, "0.50")):
        chart.patient()
        chart.infusions(12)
        chart.jcv_test(RECENT_TEST, "positive", index)
    merged = Chart("two-patients", "", "", "unknown", AT, "")
    merged.resources = a.resources + b.resources
    return merged.bundle()


def invalid_no_patient() -> Json:
    c = Chart("no-patient", "", "", "unknown", AT, "")
    c.jcv_test(RECENT_TEST, "positive", "1.70")
    c.jcv_test(date(2026, 3, 17), "positive", "1.60")
    for r in c.resources:
        del r["subject"]
    return c.bundle()


# ---------------------------------------------------------------------------------------------


def readme(rows: list[Json]) -> str:
    lines = [
        "# FHIR fixture patients",
        "",
        "Synthetic FHIR R4 charts for pml-risk, one Bundle per patient, generated by",
        "`python fhir_fixtures/build.py` (do not edit the JSON by hand; `--check` verifies it).",
        "`index.json` lists the patients with the result expected at the assessment date",
        f"`at` = {AT.isoformat()} (risk-model.md; worked examples: reference.md §5).",
        "Bundles are `collection` unless noted; `ex03` is a `searchset`, `ex04` a `transaction`.",
        "`invalid/` holds two bad inputs that are not patients: `two-patients.json` (resources of",
        "two patients in one bundle) and `no-patient.json` (Observations without any patient).",
        "",
        "| id | per 1,000 | cell | findings (must include) | scenario |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["expected"]
        cell = f"{e['row']}, {e['band']}" if e["row"] else "no estimate"
        lines.append(
            f"| `{r['id']}` | {e['per_1000'] or '–'} | {cell} | "
            f"{', '.join(e['findings']) or '–'} | {r['summary']} |"
        )
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    files: dict[Path, str] = {}
    rows: list[Json] = []
    for build in FIXTURES:
        fx = build()
        c = fx.chart
        name = f"{c.pid}.json"
        files[HERE / name] = dumps(c.bundle())
        rows.append(
            {
                "id": c.pid,
                "file": name,
                "name": c.name,
                "summary": fx.summary,
                "at": AT.isoformat(),
                "expected": fx.expected.as_json(),
            }
        )
    files[HERE / "index.json"] = dumps(rows)
    files[HERE / "README.md"] = readme(rows)
    files[HERE / "invalid" / "two-patients.json"] = dumps(invalid_two_patients())
    files[HERE / "invalid" / "no-patient.json"] = dumps(invalid_no_patient())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(str(path.relative_to(HERE.parent)))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
    if args.check:
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
