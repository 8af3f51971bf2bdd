"""``[tenants.cds]``: a bad value fails at start with the key named; issuers and slugs are
unique, since a CDS call is matched to its tenant by one or the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smart_app.config import ConfigError, from_mapping


def tenants(*cds: dict[str, Any]) -> dict[str, Any]:
    return {"tenants": [
        {"name": f"Health {n}", "iss": f"https://fhir{n}.example.org/r4", "client_id": "c",
         "cds": c} for n, c in enumerate(cds)]}


GOOD = {"issuer": "https://ehr.example.org/cds", "jwks_url": "https://ehr.example.org/jwks"}


def test_a_tenant_gets_its_cds_settings_with_defaults() -> None:
    settings = from_mapping(tenants(GOOD))
    cds = settings.tenants[0].cds
    assert cds is not None
    assert cds.issuer == "https://ehr.example.org/cds"
    assert cds.slug == "health-0"  # from the tenant's name
    assert cds.audience is None and cds.jcv_order == "http://loinc.org|70173-0"
    # Silent unless natalizumab is in the patient's care (6 months after the last dose);
    # RS384/ES384 tokens only; medications and anti-JCV results prefetched by the cheapest
    # searches every EHR supports.
    assert cds.patient_view == "natalizumab" and cds.care_window_months == 6
    assert cds.algorithms == ("RS384", "ES384")
    assert not cds.medication_code_search and not cds.lab_category
    assert from_mapping({"tenants": [{"iss": "https://x.example/r4", "client_id": "c"}]}
                        ).tenants[0].cds is None


@pytest.mark.parametrize(("cds", "message"), [
    ({"jwks_url": "https://ehr.example.org/jwks"}, "tenants[0].cds.issuer"),
    ({**GOOD, "jwks_url": "http://ehr.example.org/jwks"},
     "tenants[0].cds.jwks_url: expected an https"),
    ({**GOOD, "jwks": "x"}, "tenants[0].cds.jwks: unknown key"),
    ({**GOOD, "slug": "Not A Slug"}, "tenants[0].cds.slug"),
    ({**GOOD, "observation_codes": ["70173-0"]}, "tenants[0].cds.observation_codes"),
    ({**GOOD, "jcv_order": "70173-0"}, "tenants[0].cds.jcv_order"),
    ({**GOOD, "audience": ""}, "tenants[0].cds.audience"),
    ({**GOOD, "basis_url": "ftp://x"}, "tenants[0].cds.basis_url"),
    ({**GOOD, "patient_view": "sometimes"}, "tenants[0].cds.patient_view: expected one of"),
    ({**GOOD, "care_window_months": 0}, "tenants[0].cds.care_window_months"),
    ({**GOOD, "lab_category": "yes"}, "tenants[0].cds.lab_category: expected true or false"),
    ({**GOOD, "algorithms": ["HS256"]}, "tenants[0].cds.algorithms: expected a list of "
                                        "asymmetric"),
    ({**GOOD, "algorithms": ["none"]}, "none and HMAC are never accepted"),
    ({**GOOD, "algorithms": []}, "tenants[0].cds.algorithms"),
])
def test_bad_values_name_the_key(cds: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_mapping(tenants(cds))


def test_loopback_http_is_allowed_for_the_demo() -> None:
    local = "http://127.0.0.1:8000/sandbox/cds/jwks.json"
    settings = from_mapping(tenants({**GOOD, "jwks_url": local}))
    assert settings.tenants[0].cds is not None


def test_issuers_and_slugs_are_unique() -> None:
    with pytest.raises(ConfigError, match=r"tenants\[1\]\.cds\.issuer"):
        from_mapping(tenants(GOOD, {**GOOD, "slug": "other"}))
    with pytest.raises(ConfigError, match=r"tenants\[1\]\.cds\.slug"):
        from_mapping(tenants({**GOOD, "slug": "same"},
                             {**GOOD, "issuer": "https://b.example", "slug": "same"}))


def test_check_config_shows_the_cds_settings_and_vendor_advice(tmp_path: Path) -> None:
    from smart_app.ops.checkconfig import check

    path = tmp_path / "pml-risk.toml"
    path.write_text(
        'base_url = "https://pml.example.org"\n'
        f'secret_key = "{"k" * 40}"\n'
        'session_store = "memory://"\n'
        '[[tenants]]\nname = "Oracle test"\niss = "https://fhir-ehr.cerner.com/r4/abc"\n'
        'client_id = "c"\nauth = "public"\nvendor = "oracle"\npage_size = 200\n'
        '[tenants.cds]\nissuer = "https://cds-hooks.cerner.com"\n'
        'jwks_url = "https://authorization.cerner.com/jwk"\n', encoding="utf-8")
    report = check(str(path), offline=True)
    text = report.render()
    assert not report.errors, text
    assert "JWT iss https://cds-hooks.cerner.com" in text
    assert "/t/oracle-test/cds-services" in text
    assert "only patient-view is called" in text
