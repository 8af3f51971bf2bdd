"""The fuzz suite with the long budget: ``python bench/fuzz_long.py [--factor N]``.

CI runs tests/fuzz with a short budget (a few hundred cases in about a minute). This runs the
same properties with ``--factor`` (default 40) times as many examples each, prints how many
cases each property tried and pytest's verdict, and exits with pytest's code. Hypothesis keeps
any failing example in ``.hypothesis/`` and prints the ``@reproduce_failure`` line to replay it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=40,
                        help="examples per property, as a multiple of the CI budget")
    parser.add_argument("-k", default=None, help="only the properties matching (pytest -k)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cases.json"
        env = {**os.environ, "PML_RISK_FUZZ": "long", "PML_RISK_FUZZ_FACTOR": str(args.factor),
               "PML_RISK_FUZZ_REPORT": str(report)}
        command = [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider",
                   "--hypothesis-show-statistics"]
        if args.k:
            command += ["-k", args.k]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
        took = time.monotonic() - started
        cases = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    print(f"\nlong fuzz run: {sum(cases.values())} cases in {took / 60:.1f} min "
          f"(factor {args.factor}), pytest exit {done.returncode}")
    for name, n in sorted(cases.items()):
        print(f"  {n:>7}  {name}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
