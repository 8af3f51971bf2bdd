"""Build: files that live beside the package in a checkout go into the wheel inside it.

A checkout (or an editable install) serves ``static/``, reads ``docs/clinical-basis.md`` for
``/basis`` and gives the demo the synthetic patients of ``fhir_fixtures/`` where they are,
beside the package. A built wheel has no checkout beside it, so the same folders are mapped into
the package as data-only subpackages: ``smart_app/static/``, ``smart_app/basis/`` (the clinical
basis) and ``smart_app/sandbox/fixtures/`` (the fixture JSON only, not the generator's code).
Nothing is copied at build time; everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_packages, setup

MAPPED = {
    "smart_app.static": "static",
    "smart_app.basis": "docs",
    "smart_app.sandbox.fixtures": "fhir_fixtures",
}

setup(
    packages=[*find_packages(include=["smart_app", "smart_app.*"]), *MAPPED],
    package_dir=MAPPED,
    package_data={
        "smart_app.static": ["*.css", "*.js", "vendor/**/*.js", "vendor/**/*.css",
                             "vendor/**/LICENSE*"],
        "smart_app.basis": ["clinical-basis.md"],
        "smart_app.sandbox.fixtures": ["*.json"],
    },
)
