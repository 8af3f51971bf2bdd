"""The nightly worklist at health-system scale: a synthetic 10,000-patient Bulk export.

Generates an export laid out as a Bulk Data server delivers it (one gzipped NDJSON file per
resource type, each patient's resources spread over every file) with the fixture generator's
``patient_resources`` (antibody result, index, infusion count and prior immunosuppressant varied
per patient), then runs ``pml-risk worklist --from-ndjson`` on it in a child process: the
staging, per-patient assessment and output path the Bulk export feeds after download. Prints
wall time, patients per second and the child's peak RSS.

Targets: under 60 s and under 500 MB RSS on the 2-core machine, whatever the size.
Run: ``python bench/worklist_bench.py [--patients 10000] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_fixtures.generator import dumps_line, patient_resources  # noqa: E402

TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement",
         "MedicationRequest", "Medication", "Condition", "Encounter")
ANTIBODY = ("positive", "positive", "negative", "positive", "indeterminate", None)
INDEX = ("0.35", "0.9", "1.2", "1.5", "1.51", "2.8", "3.4", None)
PRIOR = (None, None, None, None, None, None, "azathioprine", "methotrexate", "mitoxantrone")


def synthetic(n: int) -> dict[str, Any]:
    """The generator's arguments for patient ``n``: a spread of cells, deterministic."""
    antibody = ANTIBODY[n % len(ANTIBODY)]
    return {
        "antibody": antibody,
        "index": INDEX[n % len(INDEX)] if antibody == "positive" else None,
        "infusions": 1 + (n * 7) % 110,
        "prior_is": PRIOR[n % len(PRIOR)],
    }


def generate(directory: Path, patients: int) -> tuple[int, int]:
    """Write the export; returns (resources, bytes written)."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with contextlib.ExitStack() as stack:
        files = {t: stack.enter_context(gzip.open(directory / f"{t}.ndjson.gz", "wt",
                                                  encoding="utf-8", compresslevel=1))
                 for t in TYPES}
        for n in range(patients):
            for res in patient_resources(f"syn-{n:06d}", **synthetic(n)):
                files[res["resourceType"]].write(dumps_line(res) + "\n")
                count += 1
    size = sum(p.stat().st_size for p in directory.iterdir())
    return count, size


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (worker processes), from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines()
                              if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_worklist(export: Path, out: Path, workers: int | None) -> dict[str, float]:
    """Wall and CPU seconds, peak RSS (whole process tree and largest process) of one run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PML_RISK_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [sys.executable, "-m", "smart_app.cli", "worklist", "--from-ndjson", str(export),
            "--out", str(out), "--at", "2026-11-25"]
    if workers:
        argv += ["--workers", str(workers)]
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    peak_tree = 0
    while child.poll() is None:
        peak_tree = max(peak_tree, _tree_rss_kb(child.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - started
    _, stderr = child.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"worklist failed with exit code {child.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "tree_mb": peak_tree / 1024,
            "largest_mb": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--keep", help="generate into / reuse this folder instead of a temp dir")
    parser.add_argument("--workers", type=int, default=None,
                        help="passed to the worklist (default: its own choice)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="worklist-bench-"))
    try:
        export = work / f"export-{args.patients}"
        if not (export / "Patient.ndjson.gz").exists():
            started = time.perf_counter()
            resources, size = generate(export, args.patients)
            print(f"generated {args.patients:,} patients, {resources:,} resources, "
                  f"{size / 1e6:.1f} MB gzipped NDJSON in {time.perf_counter() - started:.1f} s")
        m = run_worklist(export, work / "out", args.workers)
        data = json.loads((work / "out" / "worklist.json").read_text(encoding="utf-8"))
        counts = data["worklist"]["counts"]
        load = os.getloadavg()[0]
        print(f"worklist: {counts['patients']:,} patients ({counts['estimates']:,} estimates, "
              f"{counts['no_estimate']:,} without) in {m['wall']:.1f} s wall = "
              f"{counts['patients'] / m['wall']:,.0f} patients/s, {m['cpu']:.1f} s CPU; "
              f"peak RSS {m['tree_mb']:.0f} MB all processes, {m['largest_mb']:.0f} MB the "
              f"largest (targets: < 60 s, < 500 MB); load average {load:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
