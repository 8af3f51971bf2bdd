"""Lab values built to make a backtracking parser crawl: time to assess a whole chart.

``python bench/redos_bench.py``: the heavy-ish chart ex05 with its anti-JCV index result
carried as a ``valueString`` of N spaces and a letter (the review's case), assessed through the
service seam (what the page and ``pml-risk assess`` run), median of 5; then ``pml-risk assess``
as a process on the 1 MB case (start-up included). Target: under 1 s for the 1 MB value.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from smart_app.config import Settings
from smart_app.fhir.bundle import read_bundle
from smart_app.service import assess_chart

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "fhir_fixtures" / "ex05-index-1-51-25-infusions.json"


def chart_with(value: str) -> dict[str, object]:
    doc = json.loads(CHART.read_text(encoding="utf-8"))
    for entry in doc["entry"]:
        resource = entry["resource"]
        if resource["id"].endswith("jcvidx-001"):
            resource.pop("valueQuantity", None)
            resource["valueString"] = value
    return doc


def main() -> None:
    settings = Settings()
    for size in (16_000, 24_000, 70_000, 1_000_000):
        bundle = read_bundle(chart_with(" " * size + "x"))
        times = []
        for _ in range(5):
            started = time.perf_counter()
            result = assess_chart(bundle.resources, bundle.patient_id, at=date(2026, 11, 25),
                                  settings=settings, full_urls=bundle.full_urls)
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1000
        print(f"valueString of {size:>9,} spaces + 'x': median {ms:7.1f} ms per assessment "
              f"({result.status})")
    with tempfile.TemporaryDirectory() as tmp:
        for label, value in (("the fixture as it is", None),
                             ("1 MB valueString", " " * 1_000_000 + "x")):
            path = Path(tmp) / "chart.json"
            doc = chart_with(value) if value else json.loads(CHART.read_text(encoding="utf-8"))
            path.write_text(json.dumps(doc), encoding="utf-8")
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "smart_app.cli", "assess", str(path),
                                   "--at", "2026-11-25"], cwd=ROOT, capture_output=True,
                                  check=False)
            took = time.perf_counter() - started
            print(f"pml-risk assess, {label}: {took:.2f} s wall, start-up included "
                  f"(exit {done.returncode})")


if __name__ == "__main__":
    main()
