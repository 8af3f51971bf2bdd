"""Build hook: the browser assets and the demo's fixture patients go into the wheel.

A checkout (or an editable install) serves ``static/`` and the synthetic patients of
``fhir_fixtures/`` where they are, beside the package; a built wheel has no checkout beside it,
so the build copies them into the package as ``smart_app/static/`` and
``smart_app/sandbox/fixtures/``. Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithFixtures(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads static/ and fhir_fixtures/ where they are
        shutil.copytree(ROOT / "static", Path(self.build_lib) / "smart_app" / "static",
                        dirs_exist_ok=True)
        target = Path(self.build_lib) / "smart_app" / "sandbox" / "fixtures"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted((ROOT / "fhir_fixtures").glob("*.json")):
            shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildWithFixtures})
