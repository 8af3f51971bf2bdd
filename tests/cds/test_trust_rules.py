"""The CDS client JWT's time and audience rules at their exact edges (docs/deploy.md, "CDS
Hooks"): ±60 s of clock difference and at most 15 minutes of life, tolerated to the second and
refused one second later. test_trust.py shows each rule through the service on the wall clock;
here the verifier runs on a fixed clock, with the EHR's real keys served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from smart_app.cds.jwks import CdsJwks
from smart_app.cds.trust import CdsTrust, TrustedClient, Untrusted

from .ehr import ISSUER, Ehr, serve_ehr

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ehr]:
    yield from serve_ehr(tmp_path_factory.mktemp("trust"))


@pytest.fixture
def verify(ehr: Ehr) -> Iterator[Any]:
    seen: set[str] = set()

    def claim(key: str, ttl: int) -> bool:
        fresh = key not in seen
        seen.add(key)
        return fresh

    assert ehr.settings is not None
    with requests.Session() as http:
        trust = CdsTrust(ehr.settings, CdsJwks(http), claim, clock=lambda: float(NOW))

        def check(endpoint: str | None = None, scheme: str = "Bearer ",
                  **claims: Any) -> TrustedClient:
            token = ehr.token(**claims)
            return trust.verify(f"{scheme}{token}", endpoint or ehr.endpoint())

        yield check


def refused(verify: Any, reason: str, **claims: Any) -> None:
    with pytest.raises(Untrusted) as caught:
        verify(**claims)
    assert caught.value.reason == reason and str(caught.value) == reason
    assert caught.value.iss == ISSUER


def test_a_token_expired_up_to_60_seconds_ago_is_accepted_and_not_a_second_more(
        verify: Any) -> None:
    assert verify(iat=NOW - 300, exp=NOW - 60).issuer == ISSUER
    refused(verify, "expired", iat=NOW - 300, exp=NOW - 61)


def test_a_token_issued_up_to_60_seconds_ahead_is_accepted_and_not_a_second_more(
        verify: Any) -> None:
    verify(iat=NOW + 60, exp=NOW + 360)
    refused(verify, "not-yet-valid", iat=NOW + 61, exp=NOW + 361)


def test_not_before_holds_to_the_same_60_seconds(verify: Any) -> None:
    verify(nbf=NOW + 60, iat=NOW, exp=NOW + 300)
    verify(nbf=NOW - 30, iat=NOW, exp=NOW + 300)
    verify(nbf=NOW - 300, iat=NOW, exp=NOW + 900)  # Epic: nbf five minutes before iat
    refused(verify, "not-yet-valid", nbf=NOW + 61, iat=NOW, exp=NOW + 300)


def test_a_token_lives_at_most_15_minutes_and_more_than_no_time(verify: Any) -> None:
    verify(iat=NOW, exp=NOW + 900)
    refused(verify, "lifetime", iat=NOW, exp=NOW + 901)
    refused(verify, "lifetime", iat=NOW, exp=NOW)
    refused(verify, "lifetime", iat=NOW + 10, exp=NOW)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [str(NOW), True, [NOW], {"t": NOW}])
def test_times_that_are_not_numbers_are_refused(verify: Any, claim: str, value: Any) -> None:
    times: dict[str, Any] = {"iat": NOW, "exp": NOW + 300, claim: value}
    refused(verify, f"bad-{claim}", **times)


def test_the_audience_is_this_endpoint_with_or_without_a_trailing_slash(
        ehr: Ehr, verify: Any) -> None:
    endpoint = ehr.endpoint()
    verify(endpoint=endpoint + "/", aud=endpoint, iat=NOW, exp=NOW + 300)
    verify(endpoint=endpoint, aud=endpoint + "/", iat=NOW, exp=NOW + 300)
    refused(verify, "aud", aud=endpoint + "x", iat=NOW, exp=NOW + 300)


def test_the_issuer_may_carry_a_trailing_slash_and_the_scheme_any_case_and_spacing(
        verify: Any) -> None:
    assert verify(iss=ISSUER + "/", iat=NOW, exp=NOW + 300).issuer == ISSUER
    verify(scheme="bearer  ", iat=NOW, exp=NOW + 300)
    with pytest.raises(Untrusted) as caught:
        verify(scheme="Basic ", iat=NOW, exp=NOW + 300)
    assert caught.value.reason == "no-bearer"
