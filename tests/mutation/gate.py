"""Mutation testing of the clinical core with mutmut, judged against the reviewed equivalents.

    python tests/mutation/gate.py                 # the core modules changed since the merge base
    python tests/mutation/gate.py --all           # every core module (the full run)
    python tests/mutation/gate.py --base REF      # changed since REF
    python tests/mutation/gate.py smart_app/risk/monitoring.py ...
    python tests/mutation/gate.py --report --budget 900   # CI: report only, at most 15 min

The modules and the test command are configured under ``[tool.mutmut]`` in pyproject.toml
(tests/core only). A mutant that survives and is not listed in tests/mutation/equivalent.md
fails the gate, with its diff printed: add a test that kills it, or, when no behaviour can tell
it from the original, list it there with the reason. Prints the kill rate and the time taken.
``--report`` prints the same but exits 0 (while known survivors remain, a gate would block every
change to the core); ``--budget`` stops mutmut after that many seconds and judges what ran.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.md")
# A detected mutant: a test failed, or it hung (the mutmut time-out) instead of answering.
DETECTED = {"killed", "timeout", "caught by type check"}
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "caught by type check", -11: "segfault", -9: "segfault", None: "not checked"}


def core_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns: list[str] = config["tool"]["mutmut"]["only_mutate"]
    return patterns


def is_core(path: str) -> bool:
    return path.endswith(".py") and any(fnmatch.fnmatch(path, p) for p in core_patterns())


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def merge_base(explicit: str | None) -> str:
    """REF if given; else where this branch left main; on main itself, the previous commit."""
    if explicit:
        return explicit
    head = git("rev-parse", "HEAD")
    for ref in ("main", "origin/main"):
        try:
            base = git("merge-base", "HEAD", ref)
        except subprocess.CalledProcessError:
            continue
        if base != head:
            return base
    return "HEAD~1"


def changed_modules(base: str) -> list[str]:
    try:
        names = git("diff", "--name-only", "--diff-filter=AMR", f"{base}...HEAD").splitlines()
    except subprocess.CalledProcessError:
        names = [str(p.relative_to(ROOT)) for p in ROOT.glob("smart_app/**/*.py")]
    return sorted(n for n in names if is_core(n))


def mutant_glob(module: str) -> str:
    """``smart_app/risk/monitoring.py`` → ``smart_app.risk.monitoring.x*`` (mutmut's names:
    ``<module>.x_<function>__mutmut_<n>`` and ``<module>.xǁ<Class>ǁ<method>__mutmut_<n>``)."""
    dotted = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return f"{dotted}.x*"


def equivalents() -> set[str]:
    return set(re.findall(r"`(smart_app\.[\w.ǁ]+__mutmut_\d+)`", EQUIVALENT.read_text("utf-8")))


def results() -> dict[str, str]:
    found: dict[str, str] = {}
    for meta in (ROOT / "mutants").glob("smart_app/**/*.py.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            found[name] = STATUS.get(code, "suspicious")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="core modules to mutate (default: changed)")
    parser.add_argument("--all", action="store_true", help="every core module")
    parser.add_argument("--base", help="git ref to diff against (default: the merge base)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report", action="store_true", help="print, but exit 0")
    parser.add_argument("--budget", type=float, help="stop mutmut after this many seconds")
    args = parser.parse_args(argv)

    if args.all:
        modules = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("smart_app/**/*.py")
                         if is_core(str(p.relative_to(ROOT))))
    elif args.modules:
        modules = sorted(m for m in args.modules if is_core(m))
    else:
        base = merge_base(args.base)
        modules = changed_modules(base)
        print(f"mutation: clinical-core modules changed since {base[:12]}: "
              f"{', '.join(modules) or 'none'}")
    if not modules:
        print("mutation: nothing to mutate")
        return 0

    globs = [mutant_glob(m) for m in modules]
    started = time.monotonic()
    quiet = not os.environ.get("MUTATION_VERBOSE")
    run = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children",
                            str(args.max_children), *globs], cwd=ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL if quiet else None)
    stopped = False
    try:
        code = run.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGTERM)  # mutmut and its workers: their own session
        code, stopped = run.wait(), True
    elapsed = time.monotonic() - started
    if code != 0 and not stopped:
        print(f"mutation: mutmut exited {code} (clean test run failed?)")
        return 0 if args.report else 1
    if stopped:
        print(f"mutation: budget of {args.budget:.0f} s spent; judging the mutants that ran")

    found = {n: s for n, s in results().items() if any(fnmatch.fnmatch(n, g) for g in globs)
             and s != "not checked"}
    counts = Counter(found.values())
    known = equivalents()
    detected = sum(counts[s] for s in DETECTED)
    missed = sorted(n for n, s in found.items() if s not in DETECTED and n not in known)
    equivalent = sorted(n for n, s in found.items() if s not in DETECTED and n in known)
    judged = len(found) - len(equivalent)
    if not found:
        print(f"mutation: no mutant of {', '.join(modules)} was judged in {elapsed:.0f} s")
        return 0 if args.report else 1
    rate = 100 * detected / judged if judged else 100.0
    print(f"mutation: {len(found)} mutants of {len(modules)} module(s) in {elapsed:.0f} s: "
          f"{detected} detected, {len(equivalent)} equivalent (listed), {len(missed)} missed; "
          f"kill rate {rate:.1f} % of non-equivalent mutants")
    print("mutation: by status: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    for name in missed:
        print(f"\n--- {name}: {found[name]}")
        shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                               capture_output=True, text=True)
        print(shown.stdout.strip())
    stale = sorted(n for n in known if any(fnmatch.fnmatch(n, g) for g in globs)
                   and found.get(n) in DETECTED)
    if stale:
        print("\nmutation: listed as equivalent but now killed (remove from equivalent.md): "
              + ", ".join(stale))
    return 1 if missed and not args.report else 0


if __name__ == "__main__":
    raise SystemExit(main())
