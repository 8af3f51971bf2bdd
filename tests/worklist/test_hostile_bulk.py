"""``pml-risk worklist`` against a Bulk Data server that misbehaves (``hostile_bulk``), over
loopback HTTP: never a lower figure or a lost patient, never the token to another host, and a
run that cannot make a trustworthy list exits 1 with the previous files untouched.
"""

from __future__ import annotations

import copy
import gzip
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smart_app.cli import main
from smart_app.ops import checkconfig
from smart_app.sandbox.testing import serve_in_thread
from smart_app.smart import keys
from smart_app.worklist.rows import DUE_THIS_MONTH, SCHEDULED, retest_status

from .helpers import FIXTURES, INDEX, cli_assess, cli_figure, fixture_patient
from .hostile_bulk import TOKEN, HostileBulk, create_app, fixture_files

pytestmark = pytest.mark.integration

AT = "2026-11-25"
GROUP = "cohort"
EX05 = "ex05-index-1-51-25-infusions"
MED_PATIENT = "medication-reference"


@pytest.fixture(scope="module")
def signing_keys() -> keys.SigningKeys:
    return keys.generate()


@pytest.fixture(scope="module")
def files() -> dict[str, list[str]]:
    return fixture_files()


@dataclass
class Site:
    root: str
    server: HostileBulk
    config: Path
    out: Path
    scratch: Path
    keys_file: Path

    @property
    def faults(self) -> dict[str, Any]:
        return self.server.faults

    def write_config(self, extra: str = "", top: str = "", iss: str = "") -> None:
        self.config.write_text(
            f'keys_file = "{self.keys_file}"\nbase_url = "https://pml-risk.test"\n'
            f'fhir_timeout = 3\n{top}[[tenants]]\nname = "Hostile"\n'
            f'iss = "{iss or self.server.base}"\nclient_id = "backend"\n'
            f'auth = "private_key_jwt"\nsigning_alg = "ES384"\n{extra}', encoding="utf-8")

    def worklist(self, *more: str) -> int:
        return main(["worklist", "--config", str(self.config), "--tenant", "Hostile",
                     "--group", GROUP, "--out", str(self.out), "--at", AT, *more])

    def rows(self) -> dict[str, dict[str, Any]]:
        data = json.loads((self.out / "worklist.json").read_text(encoding="utf-8"))
        return {row["patient"]: row for row in data["rows"]}

    def summary(self) -> dict[str, Any]:
        data = json.loads((self.out / "worklist.json").read_text(encoding="utf-8"))
        return dict(data["worklist"])

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.out.iterdir())}


@pytest.fixture
def site(tmp_path: Path, signing_keys: keys.SigningKeys, files: dict[str, list[str]],
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    keys_file = tmp_path / "jwks-private.json"
    keys.save(signing_keys, keys_file)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    server = HostileBulk(files=copy.deepcopy(files))
    with serve_in_thread(create_app(server)) as root:
        server.base = f"{root}/fhir"
        s = Site(root, server, tmp_path / "pml-risk.toml", tmp_path / "out", scratch, keys_file)
        s.write_config()
        yield s
    assert list(scratch.iterdir()) == []  # the PHI folder never outlives a run


def figure(row: dict[str, Any]) -> tuple[str, str, int | None]:
    return row["per_1000"], row["category"], row["infusions"]


def failed_and_kept(site: Site, before: dict[str, bytes], capsys: pytest.CaptureFixture[str],
                    message: str, *more: str) -> None:
    assert site.worklist(*more) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert site.snapshot() == before  # the previous night's list is still there, unchanged


# -- clinical safety ---------------------------------------------------------------------------

def test_export_errors_that_name_no_patient_fail_the_run_and_keep_the_list(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert site.worklist() == 0
    before = site.snapshot()
    site.faults["errors"] = [{"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception",
         "diagnostics": "Failed to write MedicationAdministration file 3"}]}]
    failed_and_kept(site, before, capsys, "1 export error(s) that name no patient")
    assert len(site.server.seen("delete")) == 2  # the job is still deleted


def test_export_errors_naming_a_patient_give_that_patient_no_estimate(site: Site) -> None:
    site.faults["errors"] = [
        {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "processing",
             "diagnostics": f"MedicationAdministration for Patient/{EX05} could not be read"}]},
        {"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "diagnostics": "done"}]},
    ]
    assert site.worklist() == 0
    rows = site.rows()
    assert len(rows) == len(INDEX)
    row = rows[EX05]
    assert (row["status"], row["per_1000"], row["infusions"]) == ("no estimate", "", None)
    assert "export error for this chart" in row["reason"]
    assert rows["ex12-eid-40-over-60-months"]["status"] == "estimate"


@pytest.mark.parametrize("manifest, message", [
    ({"ok": True}, "no transactionTime"),
    ({"transactionTime": "2026-11-25T01:00:00Z", "requiresAccessToken": True},
     "no output list"),
    ({"transactionTime": "2026-11-25T01:00:00Z", "requiresAccessToken": True, "output": [],
      "error": []}, "holds no Patient resource"),
])
def test_empty_or_malformed_manifests_never_overwrite_the_list(
        site: Site, capsys: pytest.CaptureFixture[str], manifest: dict[str, Any],
        message: str) -> None:
    assert site.worklist() == 0
    before = site.snapshot()
    site.faults["manifest"] = manifest
    failed_and_kept(site, before, capsys, message)


def test_incremental_run_keeps_patients_whose_charts_cannot_be_re_read(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert site.worklist() == 0
    first = site.rows()
    site.faults["search_fails"] = True
    assert site.worklist("--since", "last") == 1
    assert "could not be re-read" in capsys.readouterr().err
    rows = site.rows()
    assert set(rows) == set(first)  # nobody lost
    for pid, row in rows.items():
        assert (row["status"], row["per_1000"], row["infusions"]) == ("no estimate", "", None)
        assert row["reason"] and row["name"] == first[pid]["name"]
    notes = " ".join(site.summary()["notes"])
    assert "0 changed chart(s) read in full" in notes and f"{len(INDEX)} could not be read" in notes


def test_unread_administrations_are_unknown_never_zero_and_counted_by_patient(
        site: Site) -> None:
    site.faults["search_fails"] = ["MedicationAdministration", "MedicationStatement"]
    assert site.worklist("--per-patient", "MedicationAdministration,MedicationStatement") == 0
    rows = site.rows()
    row = rows[EX05]
    assert (row["status"], row["infusions"], row["crossed_24"]) == ("no estimate", None,
                                                                   "unknown")
    # Every note is kept, not only the last one.
    assert "MedicationAdministration could not be read" in row["data_notes"]
    assert "MedicationStatement could not be read" in row["data_notes"]
    csv_line = next(line for line in (site.out / "worklist.csv").read_text().splitlines()
                    if line.startswith(EX05))
    assert csv_line.split(",")[4] == ""  # the infusions column is empty, not 0
    assert any(f"{len(INDEX)} patient(s) failed" in n for n in site.summary()["notes"])
    # Next run reads everything: the count of the unread run is unknown, not 0, and
    # "crossed 24" is not claimed from it.
    site.faults.pop("search_fails")
    assert site.worklist() == 0
    again = site.rows()[EX05]
    assert again["infusions"] == 25 and again["previous_infusions"] is None
    assert again["crossed_24"] == "first run"


def test_conflicting_copies_follow_the_apps_copy_rule(site: Site, tmp_path: Path) -> None:
    meds = [json.loads(line) for line in site.server.files["Medication"]]
    [tysabri] = [m for m in meds if m["id"] == "medication-reference-tysabri"]
    aspirin = {**tysabri, "code": {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1191",
        "display": "aspirin"}], "text": "aspirin"}}
    # Newest by versionId wins, whatever order the file holds them in.
    site.server.files["Medication"] = [json.dumps({**m, "meta": {"versionId": "2"}})
                                       for m in meds] + [
        json.dumps({**aspirin, "meta": {"versionId": "1"}})]
    # Two different Patients with one id, nothing to order them: identity in doubt.
    patients = [json.loads(line) for line in site.server.files["Patient"]]
    [ex05] = [p for p in patients if p["id"] == EX05]
    site.server.files["Patient"].append(json.dumps({**ex05, "name": [{"text": "Someone Else"}]}))
    assert site.worklist() == 0
    rows = site.rows()
    entry = next(e for e in INDEX if e["id"] == MED_PATIENT)
    code, body = cli_assess(entry)
    assert code == 0
    per_1000, category = cli_figure(body)
    assert (Decimal(rows[MED_PATIENT]["per_1000"]), rows[MED_PATIENT]["category"],
            rows[MED_PATIENT]["infusions"]) == (per_1000, category, 20)
    assert rows[EX05]["status"] == "no estimate" and "identity" in rows[EX05]["reason"]

    # Unordered copies: the row says what `pml-risk assess` says of the same two copies.
    site.server.files["Medication"] = [json.dumps(tysabri), json.dumps(aspirin)]
    assert site.worklist() == 0
    bundle = json.loads((FIXTURES / entry["file"]).read_text(encoding="utf-8"))
    bundle["entry"].append({"fullUrl": "urn:uuid:aspirin-copy", "resource": aspirin})
    both = tmp_path / "both.json"
    both.write_text(json.dumps(bundle), encoding="utf-8")
    entry_both = {**entry, "file": str(both)}
    code, body = cli_assess(entry_both)
    row = site.rows()[MED_PATIENT]
    if code == 0:
        assert (Decimal(row["per_1000"]), row["category"]) == cli_figure(body)
    else:
        assert (row["status"], row["per_1000"]) == ("no estimate", "")


def test_an_unreadable_line_is_skipped_counted_and_its_patient_has_no_estimate(
        site: Site) -> None:
    good = site.server.files["Observation"]
    broken = next(line for line in good if f'"Patient/{EX05}"' in line)
    cut = broken.index(f'"Patient/{EX05}"') + len(EX05) + 12
    site.server.files["Observation"] = [*good, broken[:cut]]  # a line cut short
    assert site.worklist() == 0
    rows = site.rows()
    assert len(rows) == len(INDEX)
    assert rows[EX05]["status"] == "no estimate"
    assert "could not be read" in rows[EX05]["reason"]
    assert rows["ex12-eid-40-over-60-months"]["status"] == "estimate"
    assert any("1 unreadable line(s) skipped" in n for n in site.summary()["notes"])


def test_a_patient_outside_the_group_is_not_listed(site: Site) -> None:
    members = [fixture_patient(e) for e in INDEX if e["id"] != "heavy"]
    site.faults["members"] = members
    site.faults["offered"] = ["Patient", "Observation", "MedicationAdministration",
                              "MedicationStatement", "MedicationRequest", "Medication", "Group"]
    site.faults["members"] = [*members, "ghost"]  # a member the export forgot
    assert site.worklist() == 0
    rows = site.rows()
    assert set(rows) == {*members, "ghost"}
    assert rows["ghost"]["status"] == "no estimate" and "no Patient resource" in \
        rows["ghost"]["reason"]
    assert any("not members of the group" in n for n in site.summary()["notes"])


def test_due_this_month_includes_the_months_last_day() -> None:
    assert retest_status(date(2026, 11, 30), date(2026, 11, 25)) == DUE_THIS_MONTH
    assert retest_status(date(2026, 12, 1), date(2026, 11, 25)) == SCHEDULED


# -- security ----------------------------------------------------------------------------------

def test_a_status_url_on_another_origin_is_never_polled(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    port = site.root.rsplit(":", 1)[1]
    site.faults["status_url"] = f"http://localhost:{port}/fhir/status/stolen"
    assert site.worklist() == 1
    assert "not on the FHIR server's origin" in capsys.readouterr().err
    assert site.server.seen("poll") == [] and site.server.seen("delete") == []
    assert not any(e["host"].startswith("localhost") for e in site.server.seen("request"))


def test_files_on_another_origin_get_no_token(site: Site) -> None:
    port = site.root.rsplit(":", 1)[1]
    site.faults["file_base"] = f"http://localhost:{port}/fhir"
    assert site.worklist() == 0
    downloads = [e for e in site.server.seen("request") if "/files/" in e["path"]]
    assert downloads and all(e["authorization"] == "" for e in downloads)
    assert all(e["authorization"] == f"Bearer {TOKEN}" for e in site.server.seen("request")
               if e["path"].endswith("$export"))


def test_gzip_bomb_and_long_lines_are_capped(site: Site,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert site.worklist() == 0
    before = site.snapshot()
    line = site.server.files["Observation"][0].encode() + b"\n"
    site.faults["bomb"] = "Observation"
    site.faults["bomb_body"] = gzip.compress(line * (8 * 1024 * 1024 // len(line)))
    assert len(site.faults["bomb_body"]) < 400_000
    failed_and_kept(site, before, capsys, "bytes once decompressed (--max-file-mb)",
                    "--max-file-mb", "2")
    failed_and_kept(site, before, capsys, "once decompressed (--max-run-mb)",
                    "--max-run-mb", "3")
    site.faults["bomb_body"] = b'{"resourceType": "Observation", "note": "' + b"x" * 300_000
    failed_and_kept(site, before, capsys, "longer than", "--max-line-mb", "0.1")


def test_a_chart_past_the_resource_cap_gets_no_estimate(site: Site) -> None:
    assert site.worklist("--max-patient-resources", "100") == 0
    row = site.rows()["heavy"]
    assert row["status"] == "no estimate" and "more than 100 resources" in row["reason"]


def test_one_deadline_covers_the_downloads(site: Site,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    site.faults.update(drip="Observation", drip_seconds=0.5)
    started = time.monotonic()
    assert site.worklist("--wait", "3") == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "(--wait)" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_a_stalled_body_is_a_one_line_error(site: Site,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    site.faults.update(stall="Observation", stall_seconds=15)
    started = time.monotonic()
    assert site.worklist() == 1
    assert time.monotonic() - started < 12
    err = capsys.readouterr().err
    assert "stalled or broke off" in err and "Traceback" not in err


def test_the_configured_egress_proxy_is_used(site: Site) -> None:
    """``http_proxy``: the EHR's name does not even resolve; only the proxy reaches it."""
    site.server.base = "http://ehr.invalid/fhir"
    site.write_config(top=f'http_proxy = "{site.root}"\n', iss=site.server.base)
    assert site.worklist() == 0
    hosts = {e["host"] for e in site.server.seen("request")}
    assert hosts == {"ehr.invalid"}


# -- interoperability --------------------------------------------------------------------------

def test_a_backend_services_only_server_is_accepted(site: Site) -> None:
    site.faults["backend_only"] = True
    assert site.worklist() == 0
    site.write_config(top=f'secret_key = "{"k" * 40}"\n')
    report = checkconfig.check(str(site.config))
    text = report.render()
    assert "Backend Services only" in text
    assert "discovery" in text and "FAILED" not in text


def test_scopes_follow_what_the_server_offers(site: Site) -> None:
    site.faults["offered"] = ["Patient", "Observation", "MedicationAdministration",
                              "MedicationRequest", "Medication"]
    assert site.worklist() == 0
    [token] = site.server.seen("token")
    assert "MedicationStatement" not in token["scope"]
    assert "system/MedicationAdministration.rs" in token["scope"]
    [kickoff] = site.server.seen("kickoff")
    assert "MedicationStatement" not in kickoff["args"]["_type"][0]


def test_the_tenants_scopes_are_used_and_the_servers_refusal_is_shown(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_config('scopes = "system/Patient.rs system/Observation.rs '
                      'system/Encounter.rs"\n')
    assert site.worklist() == 1
    err = capsys.readouterr().err
    assert "invalid_scope" in err and "Resources of type Encounter do not exist" in err
    [token] = site.server.seen("token")
    assert token["scope"] == "system/Patient.rs system/Observation.rs system/Encounter.rs"


def test_type_filter_is_encoded_once(site: Site) -> None:
    assert site.worklist() == 0
    [kickoff] = site.server.seen("kickoff")
    assert "_typeFilter=Observation%3Fcategory%3Dlaboratory" in kickoff["raw"]
    assert kickoff["args"]["_typeFilter"] == ["Observation?category=laboratory"]


def test_a_401_at_kick_off_is_an_auth_error(site: Site,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    site.faults["kickoff_401"] = True
    assert site.worklist() == 1
    err = capsys.readouterr().err
    assert "refused the system token at the export kick-off (HTTP 401" in err
    kickoffs = site.server.seen("kickoff")
    assert len(kickoffs) == 2  # one re-authentication, then stop
    assert all("_typeFilter" in k["args"] for k in kickoffs)  # not read as a refused filter


def test_kick_off_refusals_are_bounded(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.faults["refuse_types"] = ("MedicationAdministration",)
    assert site.worklist() == 0
    assert len(site.server.seen("kickoff")) == 2
    site.server.log.clear()
    site.faults["refuse_types"] = ("Observation", "MedicationAdministration",
                                   "MedicationStatement", "MedicationRequest", "Medication")
    assert site.worklist() == 1
    assert len(site.server.seen("kickoff")) == 3
    assert "refused the export (HTTP 400)" in capsys.readouterr().err


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A hospital-CA stand-in: a self-signed certificate for 127.0.0.1 and its key."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hospital test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_site(site: Site, tmp_path: Path) -> Iterator[Site]:
    """The same server over https with a certificate only the configured ``ca_bundle`` trusts."""
    import threading

    from werkzeug.serving import make_server

    cert, key = _self_signed(tmp_path)
    server = make_server("127.0.0.1", 0, create_app(site.server), threaded=True,
                         ssl_context=(str(cert), str(key)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        site.server.base = f"https://127.0.0.1:{server.server_port}/fhir"
        site.keys_file.with_name("ca.pem").write_bytes(cert.read_bytes())
        yield site
    finally:
        server.shutdown()
        server.server_close()


def test_the_tenants_ca_bundle_is_trusted(tls_site: Site,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    site = tls_site
    site.write_config()
    assert site.worklist() == 1  # the hospital's CA is not in the default store
    assert "SSLError" in capsys.readouterr().err
    site.write_config(top=f'ca_bundle = "{site.keys_file.with_name("ca.pem")}"\n')
    assert site.worklist() == 0
    assert len(site.rows()) == len(INDEX)


def test_an_https_ehrs_files_over_http_are_refused(tls_site: Site,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    site = tls_site
    site.write_config(top=f'ca_bundle = "{site.keys_file.with_name("ca.pem")}"\n')
    site.faults["file_base"] = site.root + "/fhir"  # the plain-http listener of the same data
    assert site.worklist() == 1
    assert "offered over plain http by an https EHR" in capsys.readouterr().err
    assert not [e for e in site.server.seen("request") if "/files/" in e["path"]]
