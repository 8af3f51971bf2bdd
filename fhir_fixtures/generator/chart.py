"""One patient's chart: builders of its FHIR resources (Patient, Condition, Encounter,
Observations, medications) and of the Bundle that carries them.

A :class:`Chart` gives every resource an id derived from the patient id (``<pid>-<kind>-NNN``),
so the same calls always give the same JSON.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from .fhir import (
    AT,
    BASE,
    INTERP,
    IV_ROUTE,
    JCV_INDEX_CODE,
    JCV_INDEX_LOCAL,
    JCV_QUAL_CODE,
    JCV_QUAL_LOCAL,
    LAB,
    LAST_INFUSION,
    LOINC,
    MRN_SYSTEM,
    QUAL_VALUES,
    SNOMED,
    TYSABRI,
    UUID_NS,
    VITALS,
    Json,
    coding,
    concept,
    dt,
    quantity,
    tenths,
)

# Resource types in the order a Bundle lists them (stable within a type).
BUNDLE_ORDER = {
    "Patient": 0,
    "Condition": 1,
    "Encounter": 2,
    "Medication": 3,
    "MedicationAdministration": 4,
    "MedicationStatement": 5,
    "MedicationRequest": 6,
    "Observation": 7,
    "DiagnosticReport": 8,
    "ImagingStudy": 9,
    "Procedure": 10,
}


@dataclass
class Chart:
    """One synthetic patient: its identity, the resources built so far and how to bundle them.

    The builder methods append resources in call order; :meth:`bundle` and
    :meth:`ordered_resources` sort them by type, so a scenario can add them in whatever order
    reads best. Decimals are tagged strings (:func:`.fhir.dec`): serialise with
    :func:`.fhir.dumps` or :func:`.fhir.dumps_line`, not with ``json.dumps``.
    """

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

    def request(
        self, product: Json, authored: date, status: str = "completed", intent: str = "order"
    ) -> None:
        self.add(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id("mrq"),
                "status": status,
                "intent": intent,
                "medicationCodeableConcept": product,
                "subject": self.ref,
                "authoredOn": dt(authored, 16, 20),
                "dosageInstruction": [{"text": product["text"]}],
            }
        )

    def brain_mri(self, day: date, kind: str = "report") -> None:
        """A brain MRI done on ``day``, as a radiology report, an imaging study or a procedure
        (the three ways EHRs expose it), under a well-known code."""
        loinc = coding("http://loinc.org", "24590-2", "MR Brain")
        cpt = coding("http://www.ama-assn.org/go/cpt", "70553",
                     "MRI brain without and with contrast")
        sct = coding("http://snomed.info/sct", "816077007", "Magnetic resonance imaging of brain")
        if kind == "report":
            self.add({
                "resourceType": "DiagnosticReport", "id": self.new_id("mri"), "status": "final",
                "category": [concept("Radiology", coding("http://loinc.org", "LP29684-5",
                                                         "Radiology"))],
                "code": concept("MRI brain with FLAIR and DWI", loinc),
                "subject": self.ref, "effectiveDateTime": dt(day, 8, 15),
                "issued": dt(day, 16, 40),
                "conclusion": "No new lesions; no findings suggestive of PML.",
            })
        elif kind == "study":
            self.add({
                "resourceType": "ImagingStudy", "id": self.new_id("img"), "status": "available",
                "subject": self.ref, "started": dt(day, 8, 15),
                "procedureCode": [concept("MRI brain without and with contrast", cpt)],
                "series": [{"uid": "2.25." + str(int(hashlib.sha256(
                                f"{self.pid}{day}".encode()).hexdigest()[:12], 16)),
                            "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                                         "code": "MR"},
                            "bodySite": {"system": "http://snomed.info/sct",
                                         "code": "12738006", "display": "Brain"}}],
            })
        else:
            self.add({
                "resourceType": "Procedure", "id": self.new_id("prc"), "status": "completed",
                "code": concept("MRI of brain", sct), "subject": self.ref,
                "performedDateTime": dt(day, 8, 15),
            })

    # -- routine background ------------------------------------------------------------------

    def routine(
        self,
        *,
        onset: date,
        labs_on: Iterable[date] = (),
        pcr: date | None = None,
        visit: date = LAST_INFUSION,
    ) -> None:
        """Patient, MS diagnosis, the latest visit, vitals and unrelated labs (noise)."""
        self.patient()
        self.ms_condition(onset)
        self.encounter(visit, "Natalizumab infusion visit")
        self.vitals(visit, len(self.pid))
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

    def ordered_resources(self) -> list[Json]:
        """The resources in Bundle order: by type, or a fixed mixed order when ``shuffle``."""
        resources = list(self.resources)
        if self.shuffle:
            resources.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())
        else:
            resources.sort(key=lambda r: BUNDLE_ORDER[r["resourceType"]])
        return resources

    def bundle(self) -> Json:
        """The chart as one Bundle of ``bundle_type`` (collection, searchset or transaction)."""
        entries: list[Json] = []
        for r in self.ordered_resources():
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
