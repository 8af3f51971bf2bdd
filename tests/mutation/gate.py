"""Mutation testing with mutmut, judged against the reviewed equivalents.

    python tests/mutation/gate.py                 # the functions changed since the merge base
    python tests/mutation/gate.py --all           # every module of every group (the full run)
    python tests/mutation/gate.py --group cds     # every module of one group
    python tests/mutation/gate.py --base REF      # the functions changed since REF
    python tests/mutation/gate.py smart_app/cds/orders.py ...   # whole modules
    python tests/mutation/gate.py --budget 900    # CI: at most 15 min of mutmut

Three groups, each mutated against its own tests:

- ``core``: the risk rules and the FHIR → records adapters (``[tool.mutmut]`` in pyproject.toml,
  tests/core), run in the checkout itself, so ``python -m mutmut results`` shows them;
- ``cds`` and ``worklist`` (``[tool.mutation-gate.groups.*]``): the CDS Hooks service and the
  worklist, judged by tests/cds and tests/worklist. mutmut reads its settings from the
  pyproject.toml of the folder it runs in, so each runs in ``.mutation/<group>/``: a
  pyproject.toml whose ``[tool.mutmut]`` is the group's, beside links to the checkout.

By default only the functions a change touches are mutated (mutmut mutates function bodies; a
function is touched when a changed line falls inside it, decorators included), and every one of
their mutants must be detected: a test fails on it, or it hangs. A survivor not listed in
tests/mutation/equivalent.md fails the gate with its diff printed; so does a touched function
that no test of its group runs. Add a test that kills it or, when no behaviour can tell it from
the original, list it there with the reason. Whole-module runs (``--all``, ``--group``, module
paths) judge every mutant the same way and are how the survivors from before the gate are found.

``--budget`` stops mutmut after that many seconds (shared by the groups) and judges what ran,
naming how many mutants were not reached; ``--report`` prints the same but exits 0.
"""

from __future__ import annotations

import argparse
import ast
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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.md")
GROUPS_HOME = ROOT / ".mutation"
# What a group's folder links to: mutmut copies the sources and also_copy from there.
LINKED = ("smart_app", "tests", "fhir_fixtures", "static", "docs", "README.md")
# A detected mutant: a test failed, or it hung (the mutmut time-out) instead of answering.
DETECTED = {"killed", "timeout", "caught by type check"}
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "caught by type check", -11: "segfault", -9: "segfault", None: "not checked"}
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


@dataclass(frozen=True)
class Group:
    """A set of modules and the tests that judge their mutants."""

    name: str
    only_mutate: tuple[str, ...]
    settings: dict[str, object]  # the group's [tool.mutmut]
    folder: Path  # where mutmut runs (its mutants/ and results live there)

    def owns(self, path: str) -> bool:
        return path.endswith(".py") and any(fnmatch.fnmatch(path, p) for p in self.only_mutate)


def load_groups(pyproject: str | None = None) -> list[Group]:
    text = pyproject if pyproject is not None else (ROOT / "pyproject.toml").read_text("utf-8")
    tool = tomllib.loads(text)["tool"]
    core: dict[str, object] = dict(tool["mutmut"])
    found = [Group("core", tuple(core["only_mutate"]), core, ROOT)]  # type: ignore[arg-type]
    for name, extra in tool.get("mutation-gate", {}).get("groups", {}).items():
        settings = {**core, **extra}
        found.append(Group(name, tuple(extra["only_mutate"]), settings, GROUPS_HOME / name))
    return found


def group_of(path: str, groups: Iterable[Group]) -> Group | None:
    return next((g for g in groups if g.owns(path)), None)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def merge_base(explicit: str | None) -> str:
    """REF if given; else where this branch left main; on main itself, the previous commit."""
    if explicit:
        return git("merge-base", explicit, "HEAD")
    head = git("rev-parse", "HEAD")
    for ref in ("main", "origin/main"):
        try:
            base = git("merge-base", "HEAD", ref)
        except subprocess.CalledProcessError:
            continue
        if base != head:
            return base
    return git("rev-parse", "HEAD~1")


def changed_lines(diff: str) -> dict[str, set[int]]:
    """Lines of the new side of a ``git diff -U0`` that were added or changed, by file. A pure
    deletion marks the lines on either side of the gap, so the function it was cut from counts
    as touched."""
    found: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:]
            current = found.setdefault(name[2:], set()) if name.startswith("b/") else None
            continue
        match = HUNK.match(line)
        if match and current is not None:
            start, count = int(match.group(1)), int(match.group(2) or 1)
            current.update(range(start, start + count) if count else (start, start + 1))
    return found


def touched_functions(source: str, lines: set[int]) -> list[str]:
    """mutmut's names (``x_<function>``, ``xǁ<Class>ǁ<method>``) of the module-level functions
    and methods in which one of ``lines`` falls."""
    found: list[str] = []

    def hit(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        end = node.end_lineno or node.lineno
        return any(start <= n <= end for n in lines)

    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and hit(node):
            found.append(f"x_{node.name}")
        elif isinstance(node, ast.ClassDef):
            found.extend(f"xǁ{node.name}ǁ{item.name}" for item in node.body
                         if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                         and hit(item))
    return found


def dotted(module: str) -> str:
    """``smart_app/risk/monitoring.py`` → ``smart_app.risk.monitoring``."""
    return module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def module_glob(module: str) -> str:
    """Every mutant of a module (mutmut's names: ``<module>.x_<function>__mutmut_<n>`` and
    ``<module>.xǁ<Class>ǁ<method>__mutmut_<n>``)."""
    return f"{dotted(module)}.x*"


def function_glob(module: str, function: str) -> str:
    return f"{dotted(module)}.{function}__mutmut_*"


def equivalents() -> set[str]:
    return set(re.findall(r"`(smart_app\.[\w.ǁ]+__mutmut_\d+)`", EQUIVALENT.read_text("utf-8")))


def verdict(found: dict[str, str], known: set[str]) -> tuple[list[str], list[str], int]:
    """(missed, equivalent, detected) for judged mutants: a survivor, a mutant no test ran and
    a crash are missed unless listed as equivalent."""
    missed = sorted(n for n, s in found.items() if s not in DETECTED and n not in known)
    equivalent = sorted(n for n, s in found.items() if s not in DETECTED and n in known)
    return missed, equivalent, sum(1 for s in found.values() if s in DETECTED)


def prepare(group: Group) -> None:
    """A folder whose pyproject.toml carries the group's [tool.mutmut] (the rest of the file as
    the checkout's, for pytest's settings), beside links to the checkout's sources and tests."""
    if group.folder == ROOT:
        return
    group.folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    text = re.sub(r"(?ms)^\[tool\.mutation-gate[^\]]*\]\n.*?(?=^\[|\Z)", "", text)
    settings = "\n".join(f"{key} = {json.dumps(value)}" for key, value in group.settings.items())
    written = f"{text.rstrip()}\n\n[tool.mutmut]\n{settings}\n"
    target = group.folder / "pyproject.toml"
    if not target.exists() or target.read_text("utf-8") != written:
        target.write_text(written, encoding="utf-8")
    for name in LINKED:
        link = group.folder / name
        if (ROOT / name).exists() and not link.is_symlink():
            link.symlink_to(ROOT / name)


def results(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for meta in (folder / "mutants").glob("smart_app/**/*.py.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            found[name] = STATUS.get(code, "suspicious")
    return found


def run_mutmut(group: Group, globs: list[str], budget: float | None,
               max_children: int) -> tuple[int, bool]:
    """mutmut on the mutants matching ``globs``; (exit code, stopped by the budget)."""
    prepare(group)
    quiet = not os.environ.get("MUTATION_VERBOSE")
    run = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children",
                            str(max_children), *globs], cwd=group.folder,
                           start_new_session=True,
                           stdout=subprocess.DEVNULL if quiet else None)
    try:
        return run.wait(timeout=budget), False
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGTERM)  # mutmut and its workers: their own session
        return run.wait(), True


def targets(args: argparse.Namespace, groups: list[Group]) -> dict[str, list[str]]:
    """Globs of the mutants to run, by group name."""
    chosen: dict[str, list[str]] = {}
    if args.all or args.group or args.modules:
        if args.modules:
            modules = list(args.modules)
        else:
            modules = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("smart_app/**/*.py"))]
        for module in modules:
            group = group_of(module, groups)
            if group and (not args.group or group.name in args.group):
                chosen.setdefault(group.name, []).append(module_glob(module))
        return chosen
    base = merge_base(args.base)
    diff = git("diff", "-U0", "--diff-filter=AMR", base, "--", "smart_app")
    touched: list[str] = []
    for module, lines in sorted(changed_lines(diff).items()):
        group = group_of(module, groups)
        if group is None or not (ROOT / module).exists():
            continue
        source = (ROOT / module).read_text(encoding="utf-8")
        for function in touched_functions(source, lines):
            chosen.setdefault(group.name, []).append(function_glob(module, function))
            touched.append(f"{dotted(module)}.{function}")
    print(f"mutation: functions changed since {base[:12]}: {', '.join(touched) or 'none'}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="whole modules to mutate")
    parser.add_argument("--all", action="store_true", help="every module of every group")
    parser.add_argument("--group", action="append", help="every module of this group")
    parser.add_argument("--base", help="git ref to diff against (default: the merge base)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report", action="store_true", help="print, but exit 0")
    parser.add_argument("--budget", type=float, help="stop mutmut after this many seconds")
    args = parser.parse_args(argv)

    groups = load_groups()
    chosen = targets(args, groups)
    if not chosen:
        print("mutation: nothing to mutate")
        return 0

    known = equivalents()
    started = time.monotonic()
    failed = False
    for group in groups:
        globs = chosen.get(group.name)
        if not globs:
            continue
        left = None if args.budget is None else max(1.0, args.budget - (time.monotonic()
                                                                          - started))
        began = time.monotonic()
        code, stopped = run_mutmut(group, globs, left, args.max_children)
        elapsed = time.monotonic() - began
        if code != 0 and not stopped:
            print(f"mutation[{group.name}]: mutmut exited {code} (clean test run failed?)")
            failed = True
            continue
        everything = {n: s for n, s in results(group.folder).items()
                      if any(fnmatch.fnmatch(n, g) for g in globs)}
        found = {n: s for n, s in everything.items() if s != "not checked"}
        unreached = len(everything) - len(found)
        if stopped:
            print(f"mutation[{group.name}]: budget spent; {unreached} mutant(s) not reached "
                  f"(run the gate locally without --budget)")
        if not found:
            print(f"mutation[{group.name}]: no mutant judged in {elapsed:.0f} s "
                  f"({len(globs)} function(s) or module(s) with nothing to mutate)")
            continue
        missed, equivalent, detected = verdict(found, known)
        judged = len(found) - len(equivalent)
        rate = 100 * detected / judged if judged else 100.0
        print(f"mutation[{group.name}]: {len(found)} mutants in {elapsed:.0f} s: {detected} "
              f"detected, {len(equivalent)} equivalent (listed), {len(missed)} missed; "
              f"kill rate {rate:.1f} % of non-equivalent mutants")
        counts = Counter(found.values())
        print(f"mutation[{group.name}]: by status: "
              + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        for name in missed:
            print(f"\n--- {name}: {found[name]}")
            shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name],
                                   cwd=group.folder, capture_output=True, text=True)
            print(shown.stdout.strip())
        stale = sorted(n for n in known if n in found and found[n] in DETECTED)
        if stale:
            print(f"\nmutation[{group.name}]: listed as equivalent but now killed (remove from "
                  "equivalent.md): " + ", ".join(stale))
        failed = failed or bool(missed)
    return 1 if failed and not args.report else 0


if __name__ == "__main__":
    raise SystemExit(main())
