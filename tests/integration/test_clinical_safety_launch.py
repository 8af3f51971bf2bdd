"""The clinical-safety examples through a real launch: the sandbox EHR over loopback HTTP, the
app's page, its assessment JSON, its text summary and the RiskAssessment it saves.

Each chart once gave a lower figure than the evidence supports (docs/clinical-basis.md §3, §4,
§5, §7, §8); here each must give the figure, or no estimate, with the reason on the page.
"""

from __future__ import annotations

import html as html_lib
from typing import Any

import pytest

from .conftest import Stack, StackFactory
from .test_writeback import Tab

EX05 = "ex05-index-1-51-25-infusions"
MEDICATIONS = "MedicationAdministration,MedicationStatement,MedicationRequest"


def page_text(tab: Tab, **params: str) -> str:
    return html_lib.unescape(tab.browser.get(tab.url, params=params, timeout=30).text)


def codes(data: dict[str, Any]) -> set[str]:
    return {w["code"] for w in data["warnings"]}


def message(data: dict[str, Any], code: str) -> str:
    found = [w["message"] for w in data["warnings"] if w["code"] == code]
    assert found, f"no {code} in {sorted(codes(data))}"
    return str(found[0])


def test_discordant_results_give_no_estimate_and_allow_a_what_if(stack: Stack) -> None:
    tab = Tab(stack, "discordant-negative-then-index")
    data = tab.assessment().json()
    assert data["status"] == "incomplete" and data["result"] is None
    said = message(data, "antibody-discordant")
    assert "2026-10-01" in said and "2026-10-03" in said
    assert "Confirm the result with the laboratory" in said
    assert data["save"]["enabled"] is False
    assert "Confirm the result with the laboratory" in page_text(tab)
    what_if = tab.assessment(antibody="positive", index="2.0").json()
    assert what_if["result"]["per1000"] == "8.8"


def test_an_index_reported_above_the_cut_off_gives_the_upper_row(stack: Stack) -> None:
    tab = Tab(stack, "index-bound-above-cutoff")
    data = tab.assessment().json()
    assert (data["result"]["per1000"], data["result"]["qualitative"]) == ("8.8", "high")
    assert data["inputs"]["antibody"]["indexText"] == ">1.5"
    assert data["result"]["cell"]["row"].endswith("index > 1.5")
    text = page_text(tab)
    assert ">1.5" in text and "8.8 per 1,000" in text


def test_withheld_medications_give_no_estimate_not_none_on_record(stack: Stack) -> None:
    tab = Tab(stack, EX05, withhold=MEDICATIONS)
    data = tab.assessment().json()
    assert data["status"] == "incomplete" and data["riskAssessment"] is None
    assert set(data["access"]["unread"]) == set(MEDICATIONS.split(","))
    assert "did not let the app read natalizumab administrations" in message(
        data, "exposure-unread")
    assert "exposure-none" not in codes(data)
    assert data["save"]["enabled"] is False
    text = page_text(tab)
    summary = tab.browser.get(tab.url + "/summary.txt", timeout=30).text
    for shown in (text, summary):
        assert "No completed natalizumab infusion on record" not in shown
        assert "did not let the app read natalizumab administrations" in shown
    # The clinician may enter the count as a what-if.
    what_if = tab.assessment(infusions="25", reason="infusion log").json()
    assert what_if["result"]["per1000"] == "8.8"


def test_withheld_prior_immunosuppressant_sources_keep_the_estimate_with_the_caveat(
    stack: Stack,
) -> None:
    tab = Tab(stack, EX05, withhold="MedicationStatement,MedicationRequest")
    data = tab.assessment().json()
    assert data["result"]["per1000"] == "8.8"
    caveat = message(data, "prior-is-unread")
    assert "Prior immunosuppressant use unknown" in caveat
    assert data["inputs"]["priorImmunosuppressant"]["unknown"] is True
    assert "Prior immunosuppressant use unknown" in page_text(tab)
    summary = tab.browser.get(tab.url + "/summary.txt", timeout=30).text
    assert "Prior immunosuppressant: unknown" in summary
    saved = tab.save({"identifier": data["save"]["identifier"]})
    assert saved.json()["saved"] is True, saved.text
    notes = " ".join(n["text"] for n in tab.saved(EX05)[0]["note"])
    assert "Prior immunosuppressant use unknown" in notes


def test_a_type_the_server_does_not_offer_is_not_unread(stack: Stack) -> None:
    stack.control(not_offered=["MedicationStatement"])
    tab = Tab(stack, EX05)
    data = tab.assessment().json()
    assert data["result"]["per1000"] == "8.8"
    assert data["access"]["notOffered"] == ["MedicationStatement"]
    assert data["access"]["unread"] == []
    assert "prior-is-unread" not in codes(data)
    assert "does not offer medication history (MedicationStatement)" in message(
        data, "sources-not-offered")
    # Said once on the page, in the evidence panel (and in the summary to paste into a note).
    assert "This EHR does not offer MedicationStatement" in page_text(tab)


def test_administrations_not_offered_give_no_estimate(stack: Stack) -> None:
    stack.control(not_offered=["MedicationAdministration"])
    data = Tab(stack, EX05).assessment().json()
    assert data["status"] == "incomplete"
    assert "does not offer natalizumab administrations" in message(data, "exposure-unread")


def test_conflicting_copies_of_the_infusions_give_no_estimate(stack: Stack) -> None:
    stack.control(conflicting_copies={"MedicationAdministration": {"status": "entered-in-error"}})
    tab = Tab(stack, EX05)
    data = tab.assessment().json()
    assert data["status"] == "incomplete"
    assert "MedicationAdministration/" in message(data, "resource-conflict")
    assert data["save"]["enabled"] is False


def test_a_reassessment_on_another_day_is_a_new_record(make_stack: StackFactory) -> None:
    # The clinic's "today" differs by a day between these two time zones, whatever the hour.
    early = Tab(make_stack(settings={"timezone": "Etc/GMT+12"}), EX05)
    late = Tab(make_stack(settings={"timezone": "Etc/GMT-14"}), EX05)
    a, b = early.assessment().json(), late.assessment().json()
    assert a["assessedOn"] != b["assessedOn"]
    assert a["inputs"]["antibody"] == b["inputs"]["antibody"]
    assert a["result"] == b["result"]
    assert a["save"]["identifier"] != b["save"]["identifier"]
    again = Tab(early.stack, EX05)  # a relaunch on the same day: the same record
    assert again.identifier == early.identifier == a["save"]["identifier"]


def test_records_that_are_not_use_are_listed_on_the_page(stack: Stack) -> None:
    tab = Tab(stack, "immunosuppressant-records-not-use")
    data = tab.assessment().json()
    assert data["result"]["per1000"] == "1.1"
    listed = data["inputs"]["priorImmunosuppressant"]["notCounted"]
    assert {(m["agent"], m["notCounted"]) for m in listed} == {
        ("azathioprine", "order intent plan"), ("methotrexate", "order intent option"),
        ("mitoxantrone", "status cancelled")}
    text = page_text(tab)
    assert "Other records (not counted)" in text and "order intent plan" in text


def test_antibody_negative_beyond_72_infusions_gets_the_follow_up_note(stack: Stack) -> None:
    data = Tab(stack, "negative-beyond-follow-up").assessment().json()
    assert data["result"]["per1000"] == "0.2"
    assert "about 72 months" in message(data, "exposure-beyond-follow-up")


def test_advice_agrees_with_the_near_cut_off_warning_and_the_category_is_explained(
    stack: Stack,
) -> None:
    tab = Tab(stack, EX05)
    data = tab.assessment().json()
    assert "band can change on retest" in message(data, "index-near-cutoff")
    assert "does not change the stratum" not in data["monitoring"]["antibodyRetest"]
    reason = data["result"]["categoryReason"]
    assert reason.startswith("High because the antibody is positive")
    assert reason in page_text(tab)


@pytest.mark.parametrize("patient", ["no-infusions", EX05])
def test_the_page_cites_published_sources_and_the_clinical_basis(
    stack: Stack, patient: str
) -> None:
    tab = Tab(stack, patient)
    text = page_text(tab)
    for internal in ("reference.md", "risk-model", "source S7", "re-check", "shared/"):
        assert internal not in text
    assert "docs/clinical-basis.md" in text and "Berger" in text
    if patient == "no-infusions":  # the flagged cell, in clinical words
        assert "Reported in one analysis only" in text
