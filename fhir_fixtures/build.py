"""Build the synthetic FHIR R4 fixture patients of pml-risk.

Run ``python fhir_fixtures/build.py`` (or ``python -m fhir_fixtures.build`` from the repository
root): it rewrites ``fhir_fixtures/<patient-id>.json`` (one Bundle per patient),
``fhir_fixtures/index.json`` (the patients and the result the engine must give for each at the
assessment date), ``README.md`` and the two bad-input files under ``fhir_fixtures/invalid/``.
``--check`` writes nothing and exits 1 when a file on disk differs from what the generator
produces. The patients themselves are built by the package ``fhir_fixtures/generator/``.

All data is synthetic. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the fhir_fixtures package importable
    sys.path.insert(0, str(ROOT))

from fhir_fixtures.generator.output import FIXTURES_DIR, outputs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(str(path.relative_to(FIXTURES_DIR.parent)))
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
