"""Who is signed in: the id_token's ``fhirUser`` as a reference on the launch's FHIR server."""

from __future__ import annotations

from smart_app.smart.id_token import resolve_fhir_user

ISS = "https://fhir.example.org/interconnect-fhir-oauth/api/FHIR/R4"


def test_epics_absolute_form_resolves_to_the_practitioner() -> None:
    user = f"{ISS}/Practitioner/eM5CWtq15N0WJeuCet5bJlQ3"
    assert resolve_fhir_user(user, ISS) == "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3"
    assert resolve_fhir_user(user, ISS + "/") == "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3"
    # The organisation's configured iss in another case, or with the default port spelled out.
    for iss in ("https://FHIR.example.org/interconnect-fhir-oauth/api/fhir/r4",
                "https://fhir.example.org:443/Interconnect-FHIR-OAuth/api/FHIR/R4"):
        assert resolve_fhir_user(user, iss) == "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3", iss
    assert resolve_fhir_user("Practitioner/p1", ISS) == "Practitioner/p1"


def test_a_user_on_another_server_is_not_ours() -> None:
    for user in ("https://other.example.org/interconnect-fhir-oauth/api/FHIR/R4/Practitioner/x",
                 "https://fhir.example.org:8443/interconnect-fhir-oauth/api/FHIR/R4/"
                 "Practitioner/x",
                 "https://fhir.example.org/other/api/FHIR/R4/Practitioner/x",
                 f"{ISS}/Observation/x", f"{ISS}/Practitioner/x/_history/2"):
        assert resolve_fhir_user(user, ISS) is None, user
