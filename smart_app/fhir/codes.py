"""Code systems and names that identify the engine's inputs in a chart.

Defaults come from docs/clinical-basis.md §3–§5; a deployment adds its local lab and product
codes through ``[codes]`` in the configuration. Names are matched too, because unmapped local
codes are common and must not be silently missed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import CodeSets
from ..risk.records import AgentClass, Antibody

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

JCV_ANTIBODY = frozenset({f"{LOINC}|70173-0"})
JCV_INDEX = frozenset({f"{LOINC}|100977-8"})
# Configurable: confirm locally (docs/clinical-basis.md §4).
NATALIZUMAB = frozenset({f"{RXNORM}|354770"})
CPT = "http://www.ama-assn.org/go/cpt"
#: Brain MRI (docs/clinical-basis.md §6): LOINC "MR Brain"; CPT 70551–70553 (MRI brain without,
#: with, and without and with contrast); SNOMED CT "Magnetic resonance imaging of brain". Sites
#: add their local procedure codes (``[codes] mri``).
BRAIN_MRI = frozenset({
    f"{LOINC}|24590-2",
    f"{CPT}|70551", f"{CPT}|70552", f"{CPT}|70553",
    f"{SNOMED}|816077007",
})

SNOMED_RESULTS = {
    "10828004": Antibody.POSITIVE,
    "260385009": Antibody.NEGATIVE,
    "82334004": Antibody.INDETERMINATE,
    "52101004": Antibody.POSITIVE,  # Present
    "2667000": Antibody.NEGATIVE,  # Absent
    "11214006": Antibody.POSITIVE,  # Reactive
    "131194007": Antibody.NEGATIVE,  # Non-reactive
    "260373001": Antibody.POSITIVE,  # Detected
    "260415000": Antibody.NEGATIVE,  # Not detected
}
INTERPRETATIONS = {
    "POS": Antibody.POSITIVE,
    "NEG": Antibody.NEGATIVE,
    "IND": Antibody.INDETERMINATE,
    "DET": Antibody.POSITIVE,
    "ND": Antibody.NEGATIVE,
}

# Ingredient → RxNorm codes (docs/clinical-basis.md §5) and names (ingredient and brands).
IMMUNOSUPPRESSANT_CODES: Mapping[str, frozenset[str]] = {
    "cyclophosphamide": frozenset({f"{RXNORM}|3002"}),
    "methotrexate": frozenset({f"{RXNORM}|6851"}),
    "mycophenolate": frozenset({f"{RXNORM}|68149", f"{RXNORM}|152633"}),
    "azathioprine": frozenset(),
    "mitoxantrone": frozenset(),
}
IMMUNOSUPPRESSANT_NAMES: Mapping[str, tuple[str, ...]] = {
    "mitoxantrone": ("mitoxantrone", "novantrone"),
    "azathioprine": ("azathioprine", "imuran", "azasan"),
    "methotrexate": ("methotrexate", "trexall", "otrexup", "rasuvo", "xatmep", "rheumatrex"),
    "cyclophosphamide": ("cyclophosphamide", "cytoxan", "endoxan"),
    "mycophenolate": ("mycophenol", "cellcept", "myfortic"),
}
NATALIZUMAB_NAMES = ("natalizumab", "tysabri", "tyruko")
OTHER_MS_THERAPY_NAMES: Mapping[str, tuple[str, ...]] = {
    "interferon beta": ("interferon beta", "avonex", "rebif", "betaseron", "betaferon",
                        "extavia", "plegridy"),
    "glatiramer": ("glatiramer", "copaxone", "glatopa"),
    "dimethyl fumarate": ("dimethyl fumarate", "tecfidera"),
    "diroximel fumarate": ("diroximel", "vumerity"),
    "monomethyl fumarate": ("monomethyl fumarate", "bafiertam"),
    "teriflunomide": ("teriflunomide", "aubagio"),
    "fingolimod": ("fingolimod", "gilenya"),
    "siponimod": ("siponimod", "mayzent"),
    "ozanimod": ("ozanimod", "zeposia"),
    "ponesimod": ("ponesimod", "ponvory"),
    "ocrelizumab": ("ocrelizumab", "ocrevus"),
    "ofatumumab": ("ofatumumab", "kesimpta"),
    "ublituximab": ("ublituximab", "briumvi"),
    "rituximab": ("rituximab", "rituxan", "truxima", "ruxience"),
    "alemtuzumab": ("alemtuzumab", "lemtrada"),
    "cladribine": ("cladribine", "mavenclad"),
}

_JCV_NAME = re.compile(r"\b(jc\s*virus|jcv)\b", re.IGNORECASE)
_JCV_ANTIBODY_WORD = re.compile(r"\b(antibod|ab\b|index)", re.IGNORECASE)
_INDEX_WORD = re.compile(r"\bindex\b", re.IGNORECASE)


@dataclass(frozen=True)
class Vocabulary:
    """The code sets in force for one deployment (defaults + configured additions)."""

    jcv_antibody: frozenset[str]
    jcv_index: frozenset[str]
    natalizumab: frozenset[str]
    immunosuppressants: Mapping[str, frozenset[str]]

    @classmethod
    def from_config(cls, extra: CodeSets | None = None) -> Vocabulary:
        extra = extra or CodeSets()
        agents = {k: set(v) for k, v in IMMUNOSUPPRESSANT_CODES.items()}
        for name, codes in extra.immunosuppressants.items():
            agents.setdefault(name, set()).update(codes)
        return cls(
            jcv_antibody=JCV_ANTIBODY | set(extra.jcv_antibody),
            jcv_index=JCV_INDEX | set(extra.jcv_index),
            natalizumab=NATALIZUMAB | set(extra.natalizumab),
            immunosuppressants={k: frozenset(v) for k, v in agents.items()},
        )


# Names and codes are short: longer strings are cut before any pattern runs over them.
MAX_TEXT = 200
MAX_CODINGS = 50


def items(value: Any) -> list[Any]:
    """A FHIR array as a list; anything else (``true``, an object, a number) as empty."""
    return value if isinstance(value, list) else []


def _coding_list(concept: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in items(concept.get("coding"))[:MAX_CODINGS] if isinstance(c, Mapping)]


def codings(concept: Mapping[str, Any] | None) -> list[str]:
    """``system|code`` for each coding of a CodeableConcept."""
    if not isinstance(concept, Mapping):
        return []
    found = []
    for coding in _coding_list(concept):
        code, system = coding.get("code"), coding.get("system", "")
        if isinstance(code, str) and code and isinstance(system, str):
            found.append(f"{system[:MAX_TEXT]}|{code[:MAX_TEXT]}")
    return found


def words(concept: Mapping[str, Any] | None) -> str:
    """The text and displays of a CodeableConcept (each cut to 200 characters), for name
    matching and display."""
    if not isinstance(concept, Mapping):
        return ""
    parts = [concept.get("text")]
    parts += [c.get("display") for c in _coding_list(concept)]
    return " | ".join(p[:MAX_TEXT] for p in parts if isinstance(p, str) and p)


def label(concept: Mapping[str, Any] | None) -> str:
    if not isinstance(concept, Mapping):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return str(concept["text"])[:MAX_TEXT]
    return words(concept).split(" | ")[0]


def jcv_kind(concept: Mapping[str, Any] | None, vocab: Vocabulary) -> tuple[str, bool] | None:
    """("antibody" | "index", matched_by_text) for a JCV antibody lab code, else None."""
    coded = set(codings(concept))
    if coded & vocab.jcv_index:
        return "index", False
    if coded & vocab.jcv_antibody:
        return "antibody", False
    text = words(concept)
    if _JCV_NAME.search(text) and _JCV_ANTIBODY_WORD.search(text):
        return ("index" if _INDEX_WORD.search(text) else "antibody"), True
    return None


def _has(text: str, names: Iterable[str]) -> bool:
    lowered = text.lower()
    return any(n in lowered for n in names)


def medication_class(
    concept: Mapping[str, Any] | None, vocab: Vocabulary
) -> tuple[AgentClass, str] | None:
    """Classify a medication concept as natalizumab, a prior-IS agent or another MS therapy."""
    coded = set(codings(concept))
    text = words(concept)
    if coded & vocab.natalizumab or _has(text, NATALIZUMAB_NAMES):
        return AgentClass.NATALIZUMAB, "natalizumab"
    for agent, codes in vocab.immunosuppressants.items():
        if coded & codes or _has(text, IMMUNOSUPPRESSANT_NAMES.get(agent, (agent,))):
            return AgentClass.IMMUNOSUPPRESSANT, agent
    for agent, names in OTHER_MS_THERAPY_NAMES.items():
        if _has(text, names):
            return AgentClass.OTHER_MS_THERAPY, agent
    return None
