"""One synthetic patient from a few parameters, for code that needs many charts.

The fixture scenarios are hand-written for their edge cases; this module builds an ordinary
patient from what decides the risk cell (antibody result, index and test date, infusion count,
prior immunosuppressant), so a benchmark or a load test can generate thousands of distinct,
valid charts without writing files. Names, sex and birth date are derived from the patient id,
so the same arguments always give the same JSON.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

from .chart import Chart
from .fhir import (
    AZATHIOPRINE,
    LAST_INFUSION,
    METHOTREXATE,
    MITOXANTRONE,
    QUAL_VALUES,
    RECENT_TEST,
    Json,
    dec,
)

# The agents the engine counts as prior immunosuppressants, by the name callers pass.
PRIOR_IMMUNOSUPPRESSANTS: dict[str, Json] = {
    "azathioprine": AZATHIOPRINE,
    "mitoxantrone": MITOXANTRONE,
    "methotrexate": METHOTREXATE,
}
ANTIBODY_RESULTS = tuple(QUAL_VALUES)  # positive, negative, indeterminate

# Resource ids are "<pid>-<kind>-NNN" and FHIR ids are at most 64 characters.
_PID = re.compile(r"[A-Za-z0-9.\-]{1,48}")
_GIVEN = (
    ("Ada", "female"),
    ("Bilal", "male"),
    ("Chiara", "female"),
    ("Dmitri", "male"),
    ("Esther", "female"),
    ("Felix", "male"),
    ("Greta", "female"),
    ("Hugo", "male"),
    ("Ines", "female"),
    ("Jorge", "male"),
    ("Keiko", "female"),
    ("Lars", "male"),
)
_FAMILY = (
    "Abara",
    "Berg",
    "Costa",
    "Dahl",
    "Eze",
    "Fischer",
    "Gallo",
    "Horvat",
    "Ivanova",
    "Jensen",
    "Khan",
    "Lopez",
    "Mensah",
    "Novak",
    "Okafor",
    "Park",
)


def patient_chart(
    pid: str,
    *,
    antibody: str | None = "positive",
    index: str | None = None,
    tested_on: date = RECENT_TEST,
    infusions: int = 24,
    prior_is: str | None = None,
    interval_days: int = 28,
    last_infusion: date = LAST_INFUSION,
) -> Chart:
    """The :class:`Chart` of one synthetic patient (see :func:`patient_resources`).

    Raises :class:`ValueError` naming the bad argument.
    """
    if not _PID.fullmatch(pid):
        raise ValueError(f"pid must be 1-48 letters, digits, '-' or '.', got {pid!r}")
    if antibody is not None and antibody not in ANTIBODY_RESULTS:
        raise ValueError(f"antibody must be one of {', '.join(ANTIBODY_RESULTS)} or None")
    if index is not None:
        dec(index)
        if index.startswith("-"):
            raise ValueError(f"index must not be negative, got {index!r}")
    if infusions < 0:
        raise ValueError(f"infusions must be 0 or more, got {infusions}")
    if interval_days < 1:
        raise ValueError(f"interval_days must be 1 or more, got {interval_days}")
    if prior_is is not None and prior_is not in PRIOR_IMMUNOSUPPRESSANTS:
        names = ", ".join(PRIOR_IMMUNOSUPPRESSANTS)
        raise ValueError(f"prior_is must be one of {names} or None, got {prior_is!r}")

    h = hashlib.sha256(pid.encode()).digest()
    given, gender = _GIVEN[h[0] % len(_GIVEN)]
    family = _FAMILY[h[1] % len(_FAMILY)]
    c = Chart(pid, given, family, gender, date(1900, 1, 1), f"SYN-{pid}")

    days = c.infusions(infusions, interval=interval_days, last=last_infusion) if infusions else []
    first = days[0] if days else tested_on
    onset = first - timedelta(days=730)
    c.birth = date(onset.year - 18 - h[2] % 30, 1 + h[3] % 12, 1 + h[4] % 28)
    c.routine(onset=onset, labs_on=[tested_on], visit=days[-1] if days else tested_on)
    if prior_is is not None:
        # Stopped half a year before the first infusion: prior, not concomitant.
        end = first - timedelta(days=182)
        c.statement(PRIOR_IMMUNOSUPPRESSANTS[prior_is], end - timedelta(days=730), end)
    if antibody is not None or index is not None:
        c.jcv_test(tested_on, antibody, index)
    return c


def patient_resources(
    pid: str,
    *,
    antibody: str | None = "positive",
    index: str | None = None,
    tested_on: date = RECENT_TEST,
    infusions: int = 24,
    prior_is: str | None = None,
    interval_days: int = 28,
    last_infusion: date = LAST_INFUSION,
) -> list[Json]:
    """One synthetic patient's FHIR R4 resources, Patient first, nothing written to disk.

    - ``antibody``: the qualitative anti-JCV result (positive, negative, indeterminate); with
      ``index`` (a decimal string such as "1.20") the index on the same date; both None: no
      antibody test on the chart;
    - ``tested_on``: the date of that test (the fixtures' assessment date is 2026-11-25);
    - ``infusions``: completed natalizumab administrations every ``interval_days``, the last on
      ``last_infusion``;
    - ``prior_is``: a prior immunosuppressant (a key of ``PRIOR_IMMUNOSUPPRESSANTS``) stopped
      before the first infusion, or None.

    The chart also holds the MS diagnosis, a visit, vitals and a blood count. Decimals are tagged
    strings: serialise each resource with ``dumps_line`` (NDJSON) or ``dumps``.
    """
    return patient_chart(
        pid,
        antibody=antibody,
        index=index,
        tested_on=tested_on,
        infusions=infusions,
        prior_is=prior_is,
        interval_days=interval_days,
        last_infusion=last_infusion,
    ).ordered_resources()


def patient_bundle(
    pid: str,
    *,
    antibody: str | None = "positive",
    index: str | None = None,
    tested_on: date = RECENT_TEST,
    infusions: int = 24,
    prior_is: str | None = None,
    interval_days: int = 28,
    last_infusion: date = LAST_INFUSION,
) -> Json:
    """The same patient as :func:`patient_resources`, as one ``collection`` Bundle."""
    return patient_chart(
        pid,
        antibody=antibody,
        index=index,
        tested_on=tested_on,
        infusions=infusions,
        prior_is=prior_is,
        interval_days=interval_days,
        last_infusion=last_infusion,
    ).bundle()
