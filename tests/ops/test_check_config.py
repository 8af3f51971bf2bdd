"""``pml-risk check-config``: each kind of bad configuration is caught and names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smart_app.cli import main

from .conftest import Deployment, DeploymentFactory
from .harness import SECRET_KEY, free_port, write_config


@pytest.fixture(scope="module")
def deployment(make_deployment: DeploymentFactory) -> Deployment:
    return make_deployment()


def _good(d: Deployment) -> dict[str, Any]:
    assert d.redis is not None
    return {
        "base_url": "https://pml-risk.example.org",
        "secret_key": SECRET_KEY,
        "session_store": d.redis.url,
        "keys_file": str(d.keys_file),
        "server": {"workers": 2, "threads": 8, "graceful_timeout": 15},
        "proxy": {"trusted_hops": 1, "trusted_addresses": ["10.0.0.0/8"]},
        "audit": {"path": str(d.tmp / "audit-check.jsonl")},
        "tenants": [
            {"name": "Sandbox", "iss": d.iss, "client_id": "pml-risk-ops",
             "auth": "private_key_jwt", "signing_alg": "ES384",
             "frame_ancestors": ["https://ehr.example.org"]},
            {"name": "Basic", "iss": f"{d.iss}/", "client_id": "c2",
             "auth": "client_secret_basic", "client_secret": "s" * 20, "scopes": "v1"},
        ],
    }


def _run(tmp: Path, capsys: pytest.CaptureFixture[str], **config: Any) -> tuple[int, str]:
    path = write_config(tmp / "check.toml", **config)
    code = main(["check-config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_good_configuration_prints_what_each_tenant_uses(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _good(deployment)
    config["tenants"][1]["iss"] = deployment.iss + "/"  # duplicate after normalising
    config["tenants"] = config["tenants"][:1]
    code, out = _run(tmp_path, capsys, **config)
    assert code == 0, out
    from smart_app.smart import keys

    kid = keys.load(deployment.keys_file).ec.kid
    assert "configuration OK" in out
    assert "redirect URI      https://pml-risk.example.org/callback" in out
    assert "JWKS URL          https://pml-risk.example.org/.well-known/jwks.json" in out
    assert "(reachable" in out  # Redis
    assert f"private_key_jwt, ES384, kid {kid}" in out
    assert "discovery         reachable (well-known" in out
    assert "patient/Observation.rs" in out and "launch/patient" in out
    assert "berger-fox-2016" in out
    assert ("writeback         auto: a RiskAssessment where the EHR takes one, else a clinical "
            "note (Progress note, http://loinc.org|11506-3, text/plain), else read-only") in out


def _mutations(d: Deployment, tmp: Path) -> list[tuple[str, dict[str, Any], str]]:
    garbage = tmp / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    one_key = tmp / "one-key.json"
    one_key.write_text('{"keys": []}', encoding="utf-8")
    dead = free_port()
    return [
        ("unknown key", {"sesion_store": "redis://x"}, "sesion_store: unknown key"),
        ("wrong type", {"session_ttl": "8h"}, "session_ttl: expected a positive integer"),
        ("short secret", {"secret_key": "short"}, "secret_key"),
        ("store scheme", {"session_store": "postgres://db/x"}, "session_store"),
        ("redis down", {"session_store": f"redis://127.0.0.1:{dead}/0"},
         "session_store: redis://127.0.0.1"),
        ("keys missing", {"keys_file": str(tmp / "missing.json")}, "keys_file:"),
        ("keys garbage", {"keys_file": str(garbage)}, "keys_file:"),
        ("keys incomplete", {"keys_file": str(one_key)}, "keys_file:"),
        ("risk table", {"risk_table": "no-such-table"}, "risk_table:"),
        ("risk table file", {"risk_table": str(tmp / "t.toml")}, "risk_table:"),
        ("audit dir", {"audit": {"path": str(tmp / "no" / "dir" / "a.jsonl")}}, "audit.path"),
        ("proxy hops", {"proxy": {"trusted_hops": -1}}, "proxy.trusted_hops"),
        ("proxy address", {"proxy": {"trusted_hops": 1, "trusted_addresses": ["nginx"]}},
         "proxy.trusted_addresses"),
        ("server workers", {"server": {"workers": 0}}, "server.workers"),
        ("server key", {"server": {"worker": 2}}, "server.worker: unknown key"),
        ("base_url", {"base_url": "pml-risk.example.org"}, "base_url"),
        ("no tenants", {"tenants": []}, "tenants"),
        ("tenant key", {"tenants": [{"iss": d.iss, "client_id": "c", "scope": "v2"}]},
         "tenants[0].scope: unknown key"),
        ("tenant iss", {"tenants": [{"iss": "ehr.example/fhir", "client_id": "c"}]},
         "tenants[0].iss"),
        ("tenant client_id", {"tenants": [{"iss": d.iss}]}, "tenants[0].client_id"),
        ("tenant secret", {"tenants": [{"iss": d.iss, "client_id": "c",
                                        "auth": "client_secret_basic"}]},
         "tenants[0].client_secret"),
        ("tenant auth", {"tenants": [{"iss": d.iss, "client_id": "c", "auth": "mtls"}]},
         "tenants[0].auth"),
        ("tenant alg", {"tenants": [{"iss": d.iss, "client_id": "c", "signing_alg": "RS256"}]},
         "tenants[0].signing_alg"),
        ("tenant scopes", {"tenants": [{"iss": d.iss, "client_id": "c",
                                        "scopes": "launch patient/Observation.rad"}]},
         "tenants[0].scopes: 'patient/Observation.rad'"),
        ("tenant frame", {"tenants": [{"iss": d.iss, "client_id": "c",
                                       "frame_ancestors": ["https://x; script-src *"]}]},
         "tenants[0].frame_ancestors"),
        ("tenant writeback", {"tenants": [{"iss": d.iss, "client_id": "c",
                                           "writeback": "fax"}]},
         "tenants[0].writeback: expected one of auto, riskassessment, note, none"),
        ("tenant note type", {"tenants": [{"iss": d.iss, "client_id": "c",
                                           "note_type": "11506-3"}]},
         'tenants[0].note_type: expected "system|code"'),
        ("tenant note label", {"tenants": [{"iss": d.iss, "client_id": "c",
                                            "note_type": "http://loinc.org|34109-9"}]},
         "tenants[0].note_type_display: required"),
        ("tenant note html", {"tenants": [{"iss": d.iss, "client_id": "c",
                                           "note_html": "yes"}]},
         "tenants[0].note_html: expected true or false"),
        ("tenant twice", {"tenants": [{"iss": d.iss, "client_id": "c"},
                                      {"iss": d.iss + "/", "client_id": "d"}]},
         "tenants[1].iss"),
        ("discovery", {"tenants": [{"iss": f"http://127.0.0.1:{dead}/fhir",
                                    "client_id": "c"}]},
         "tenants[0].iss: SMART discovery"),
    ]


def test_each_bad_configuration_names_its_key(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = []
    for label, change, expected in _mutations(deployment, tmp_path):
        config = {**_good(deployment), **change}
        config["tenants"] = change.get("tenants", _good(deployment)["tenants"][:1])
        code, out = _run(tmp_path, capsys, **config)
        if code != 2 or expected not in out:
            failures.append((label, code, out[-400:]))
    assert not failures, failures


def test_invalid_toml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("base_url = \n", encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().out
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().out
    assert main(["check-config", str(tmp_path)]) == 2  # unreadable: said, not a traceback
    assert f"config file {tmp_path} cannot be read: Is a directory" in capsys.readouterr().out


def test_offline_skips_the_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = free_port()
    config = write_config(
        tmp_path / "offline.toml", secret_key=SECRET_KEY,
        session_store=f"redis://:hunter2hunter2@127.0.0.1:{dead}/0",
        tenants=[{"iss": f"https://127.0.0.1:{dead}/fhir", "client_id": "c", "auth": "public"}],
    )
    assert main(["check-config", "--offline", str(config)]) == 0
    out = capsys.readouterr().out
    assert "not contacted" in out and "hunter2" not in out and ":***@" in out


def test_vendor_advice(deployment: Deployment, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    config = _good(deployment)
    config["tenants"] = [
        {**config["tenants"][0], "vendor": "epic"},  # ES384 at Epic
        {"name": "Oracle", "iss": f"{deployment.iss}/", "client_id": "o", "auth": "public",
         "vendor": "oracle", "page_size": 500},
    ]
    config["tenants"][1]["iss"] = deployment.iss.replace("127.0.0.1", "localhost")
    code, out = _run(tmp_path, capsys, **config)
    assert code == 0, out
    assert "tenants[0].signing_alg: Epic recommends RS384" in out
    assert "tenants[1].page_size: Oracle Health returns at most 200" in out
    assert "cerner-client-id" in out and "pml-risk keys show" in out
    # What the sandbox's CapabilityStatement means for this tenant.
    assert "_include          MedicationAdministration:medication" in out
    assert "write-back        RiskAssessment create (conditional)" in out
    assert "scopes (EHR)      (v2) launch launch/patient" in out


def test_vendor_guess_and_read_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(
        tmp_path / "guess.toml", secret_key=SECRET_KEY,
        tenants=[{"iss": "https://ehr.example.org/interconnect-fhir/api/FHIR/R4",
                  "client_id": "c", "auth": "public", "read_types": ["Observation", "Encounter"]}],
    )
    assert main(["check-config", "--offline", str(config)]) == 2
    out = capsys.readouterr().out
    assert 'tenants[0].vendor: the iss looks like Epic; set vendor = "epic"' in out
    assert "tenants[0].read_types: Encounter not read by the app" in out
