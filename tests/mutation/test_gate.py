"""The mutation gate's own rules: which mutants a change puts on trial, which tests judge them,
and what fails the gate. Running mutmut itself takes minutes; CI does that (.ci/run)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from . import gate

DIFF = """\
diff --git a/smart_app/cds/cards.py b/smart_app/cds/cards.py
index 1111111..2222222 100644
--- a/smart_app/cds/cards.py
+++ b/smart_app/cds/cards.py
@@ -10,0 +11,2 @@ def a():
+    x = 1
+    y = 2
@@ -30 +32 @@ def b():
-    return 1
+    return 2
@@ -50,3 +51,0 @@ def c():
-    gone()
-    gone()
-    gone()
diff --git a/smart_app/worklist/new.py b/smart_app/worklist/new.py
new file mode 100644
--- /dev/null
+++ b/smart_app/worklist/new.py
@@ -0,0 +1,3 @@
+def f():
+    return 1
+
"""

SOURCE = '''\
LIMIT = 3


def plain(a):
    return a + LIMIT


@decorated
def wrapped(a):
    return a


class Card:
    kind = "info"

    def render(self):
        return self.kind

    async def send(self):
        return None


def last():
    return 0
'''


def test_a_diff_gives_the_changed_lines_of_the_new_side_and_both_sides_of_a_deletion() -> None:
    lines = gate.changed_lines(DIFF)
    assert lines["smart_app/cds/cards.py"] == {11, 12, 32, 51, 52}
    assert lines["smart_app/worklist/new.py"] == {1, 2, 3}


@pytest.mark.parametrize(("lines", "names"), [
    ({1}, []),                                   # a module constant: mutmut mutates no such line
    ({5}, ["x_plain"]),
    ({8}, ["x_wrapped"]),                        # the decorator belongs to its function
    ({14}, []),                                  # a class attribute
    ({17}, ["xǁCardǁrender"]),
    ({16, 20}, ["xǁCardǁrender", "xǁCardǁsend"]),
    ({5, 24}, ["x_plain", "x_last"]),
    ({2, 3, 6, 7}, []),                          # blank lines between functions
])
def test_a_changed_line_puts_the_function_around_it_on_trial(lines: set[int],
                                                             names: list[str]) -> None:
    assert gate.touched_functions(SOURCE, lines) == names


def test_function_globs_match_only_that_functions_mutants() -> None:
    import fnmatch

    pattern = gate.function_glob("smart_app/cds/cards.py", "x_plain")
    assert fnmatch.fnmatch("smart_app.cds.cards.x_plain__mutmut_12", pattern)
    assert not fnmatch.fnmatch("smart_app.cds.cards.x_plain_text__mutmut_1", pattern)
    assert not fnmatch.fnmatch("smart_app.cds.orders.x_plain__mutmut_1", pattern)
    assert gate.module_glob("smart_app/cds/__init__.py") == "smart_app.cds.x*"


def test_every_cds_and_worklist_module_is_judged_by_its_own_tests() -> None:
    groups = {g.name: g for g in gate.load_groups()}
    assert set(groups) == {"core", "cds", "worklist"}
    for name in ("cds", "worklist"):
        modules = sorted((gate.ROOT / "smart_app" / name).glob("*.py"))
        assert modules
        for module in modules:
            owner = gate.group_of(str(module.relative_to(gate.ROOT)), groups.values())
            assert owner is groups[name], module
        assert groups[name].settings["pytest_add_cli_args_test_selection"] == [f"tests/{name}"]
        assert groups[name].folder == gate.GROUPS_HOME / name
    assert gate.group_of("smart_app/risk/engine.py", groups.values()) is groups["core"]
    assert groups["core"].folder == gate.ROOT
    assert gate.group_of("smart_app/web/page/views.py", groups.values()) is None


def test_a_groups_folder_gives_mutmut_the_groups_settings_and_pytests_own(
        tmp_path: Path) -> None:
    cds = next(g for g in gate.load_groups() if g.name == "cds")
    here = gate.Group(cds.name, cds.only_mutate, cds.settings, tmp_path / "cds")
    gate.prepare(here)
    written = tomllib.loads((here.folder / "pyproject.toml").read_text("utf-8"))
    root = tomllib.loads((gate.ROOT / "pyproject.toml").read_text("utf-8"))
    assert written["tool"]["mutmut"]["only_mutate"] == ["smart_app/cds/*"]
    assert written["tool"]["mutmut"]["pytest_add_cli_args_test_selection"] == ["tests/cds"]
    assert written["tool"]["mutmut"]["source_paths"] == root["tool"]["mutmut"]["source_paths"]
    assert written["tool"]["pytest"] == root["tool"]["pytest"]
    assert (here.folder / "smart_app").resolve() == gate.ROOT / "smart_app"
    gate.prepare(here)  # again: the same folder, nothing rewritten or broken


def test_a_survivor_an_untested_function_and_a_crash_fail_unless_listed() -> None:
    found = {"m.x_a__mutmut_1": "killed", "m.x_a__mutmut_2": "survived",
             "m.x_b__mutmut_1": "no tests", "m.x_c__mutmut_1": "timeout",
             "m.x_d__mutmut_1": "segfault", "m.x_e__mutmut_1": "survived"}
    missed, equivalent, detected = gate.verdict(found, {"m.x_e__mutmut_1"})
    assert missed == ["m.x_a__mutmut_2", "m.x_b__mutmut_1", "m.x_d__mutmut_1"]
    assert equivalent == ["m.x_e__mutmut_1"]
    assert detected == 2


def test_ci_runs_the_gate_as_a_gate() -> None:
    run = (gate.ROOT / ".ci" / "run").read_text("utf-8")
    calls = [line for line in run.splitlines() if "tests/mutation/gate.py" in line
             and not line.lstrip().startswith("#")]
    assert calls and all("--report" not in line for line in calls)
