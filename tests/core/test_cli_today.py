"""``pml-risk assess`` without ``--at`` assesses on the clinic's calendar day, not the host's.

The configured ``timezone`` is what "today" means on the page; a script run on a UTC server for
a clinic in Honolulu must not assess a day ahead (an infusion given this afternoon would be
"dated later" and left out). Two clinics 25 hours apart always have different calendar days.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fhir_fixtures" / "ex05-index-1-51-25-infusions.json"


def _assessed_on(tmp_path: Path, zone: str) -> tuple[str, str]:
    config = tmp_path / f"{zone.replace('/', '-')}.toml"
    config.write_text(f'timezone = "{zone}"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "smart_app.cli", "assess", str(FIXTURE), "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["occurrenceDateTime"], datetime.now(ZoneInfo(zone)).date(
    ).isoformat()


def test_assess_without_at_uses_the_configured_clinic_time_zone(tmp_path: Path) -> None:
    east, east_today = _assessed_on(tmp_path, "Pacific/Kiritimati")  # UTC+14
    west, west_today = _assessed_on(tmp_path, "Pacific/Pago_Pago")  # UTC-11
    assert (east, west) == (east_today, west_today)
    assert east != west
