"""Smoke test of an installed wheel: ``pml-risk demo`` serves a launch, its page and its assets.

Run with the Python of a fresh virtual environment that has only the built wheel (and its
dependencies) installed, from a folder outside the checkout, so nothing of the source tree can
stand in for a file the wheel lacks::

    python wheel_smoke.py /path/to/venv/bin/pml-risk /path/to/checkout/docs/clinical-basis.md

Checks: the demo starts on a free port; an EHR launch through the embedded sandbox reaches the
page with an estimate; every script and stylesheet the page references is served; ``/basis``
serves every section of the checkout's docs/clinical-basis.md (the wheel carries the document,
not only the table); the assess command reads standard input; ``--version`` names the
version; SIGTERM stops the demo and removes its temporary folder.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

OPEN = re.compile(r"open (http://127\.0\.0\.1:\d+)/sandbox/ \(instance: (.+?), ")


HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def check_basis(browser: requests.Session, base: str, document: Path) -> None:
    """Every heading of the document is on /basis, with its anchor: nothing was left out."""
    page = browser.get(f"{base}/basis", timeout=30)
    assert page.status_code == 200, page.status_code
    headings = HEADING.findall(document.read_text(encoding="utf-8"))
    assert len(headings) > 5, "the document has its sections"
    missing = [h for h in headings
               if f'id="{re.sub(r"[^a-z0-9]+", "-", h.lower()).strip("-")}"' not in page.text]
    assert not missing, f"/basis lacks sections: {missing}"
    print(f"/basis: {len(page.content) // 1024} KB, all {len(headings)} sections")


def main(pml_risk: str, document: Path) -> int:
    import smart_app

    installed = Path(smart_app.__file__).resolve()
    print(f"smart_app from {installed}")
    assert "site-packages" in installed.parts, "the smoke test must run the installed wheel"

    proc = subprocess.Popen([pml_risk, "demo", "--port", "0"], stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = OPEN.search(line)
        assert found, f"no 'open' line: {line!r}"
        base, instance = found.group(1), Path(found.group(2))
        browser = requests.Session()
        browser.trust_env = False
        started = time.monotonic()
        page = browser.get(f"{base}/sandbox/launch",
                           params={"patient": "ex05-index-1-51-25-infusions"}, timeout=60)
        form = re.search(r'<form id="authorize" method="post" action="([^"]+)"', page.text)
        if form:  # a long authorize request goes as a form post (what the page's script does)
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                     page.text))
            page = browser.post(form.group(1), data=fields, timeout=60)
        assert page.status_code == 200 and "/launches/" in page.url, (page.status_code, page.url)
        assert "per 1,000" in page.text, "the page shows an estimate"
        print(f"launch to page: {time.monotonic() - started:.2f} s")
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert assets, "the page references its static assets"
        for asset in assets:
            resp = browser.get(urljoin(base, asset), timeout=30)
            assert resp.status_code == 200 and resp.content, (asset, resp.status_code)
        print(f"{len(assets)} static assets served")
        check_basis(browser, base, document)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        assert not instance.exists(), f"{instance} left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    fixtures = installed.parent / "sandbox" / "fixtures"
    bundle = (fixtures / "ex05-index-1-51-25-infusions.json").read_text(encoding="utf-8")
    done = subprocess.run([pml_risk, "assess", "-", "--at", "2026-11-25"], input=bundle,  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resourceType"] == "RiskAssessment"
    print("assess from standard input: ok")
    version = subprocess.run([pml_risk, "--version"], capture_output=True, text=True,  # noqa: S603
                             timeout=60, check=True).stdout
    assert re.fullmatch(r"pml-risk \d+\.\d+\.\d+.*\n", version), version
    print(version.strip())
    print("wheel smoke test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
