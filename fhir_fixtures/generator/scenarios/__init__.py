"""The fixture patients, one module per scenario group, and the order they are published in.

``FIXTURES`` fixes the order of ``index.json`` and of the README table; a new patient goes into
the module of its group and into this list. ``INVALID`` maps the bad-input files under
``fhir_fixtures/invalid/`` to their builders.
"""

from __future__ import annotations

from collections.abc import Callable

from ..expected import Fixture
from ..fhir import Json
from .antibody import (
    entered_in_error_latest,
    indeterminate,
    local_lab_code,
    no_antibody_result,
    preliminary_latest,
    rising_index_near_cutoff,
    seroreversion,
    stale_result,
)
from .exposure import (
    medication_reference,
    natalizumab_before_first_admin,
    no_infusions,
    not_done_and_other_statuses,
)
from .heavy import heavy
from .invalid import invalid_no_patient, invalid_two_patients
from .prior_is import prior_is_after_first_infusion
from .safety import (
    discordant_negative_then_index,
    immunosuppressant_records_not_use,
    index_bound_above_cutoff,
    negative_beyond_follow_up,
)
from .worked_examples import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10, ex11, ex12

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
    discordant_negative_then_index,
    index_bound_above_cutoff,
    immunosuppressant_records_not_use,
    negative_beyond_follow_up,
]

INVALID: dict[str, Callable[[], Json]] = {
    "two-patients.json": invalid_two_patients,
    "no-patient.json": invalid_no_patient,
}
