"""Time to assess the heavy fixture patient: JSON bytes → validated FHIR RiskAssessment.

Target: under 20 ms per assessment on one core. Run: ``python bench/assess_bench.py``.
Prints its figures; asserts nothing (speed is measured here, not in timed tests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from smart_app.config import Settings
from smart_app.fhir.bundle import read_bundle
from smart_app.service import assess_chart

FIXTURES = Path(__file__).resolve().parent.parent / "fhir_fixtures"


def one(raw: bytes, settings: Settings) -> None:
    bundle = read_bundle(json.loads(raw, parse_float=Decimal))
    chart = assess_chart(
        bundle.resources,
        bundle.patient_id,
        at=date(2026, 11, 25),
        settings=settings,
        full_urls=bundle.full_urls,
    )
    assert chart.risk_assessment is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--patient", default="heavy")
    args = parser.parse_args()
    raw = (FIXTURES / f"{args.patient}.json").read_bytes()
    data = json.loads(raw)
    settings = Settings()
    one(raw, settings)  # warm-up: imports and the table cache
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        one(raw, settings)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"patient: {args.patient} ({len(raw) / 1024:.0f} KiB JSON, "
          f"{len(data.get('entry', []))} resources)")
    print(f"runs: {args.runs} (one process, one core)")
    print(f"median: {statistics.median(times):.2f} ms  p95: {times[int(len(times) * 0.95)]:.2f} ms"
          f"  min: {times[0]:.2f} ms  max: {times[-1]:.2f} ms")
    print("target: < 20 ms per assessment")


if __name__ == "__main__":
    main()
