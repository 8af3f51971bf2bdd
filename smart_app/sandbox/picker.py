"""The sandbox EHR's patient list: the first screen an evaluator sees, so it reads like an EHR.

Each row gives the name, age and sex, MRN and the case in one clinical line, and opens the app
with an EHR launch; the scenario's technical note (what the fixture exercises) is one click
away. The search works without script (a GET form filtered here) and filters as you type with
it. Everything from the fixtures is escaped; the page's CSP allows only its own files.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from html import escape
from urllib.parse import urlencode

from .store import PatientListing

SEX = {"female": "F", "male": "M", "other": "X", "unknown": "?"}

CSS = """\
:root { --ink: #1d2433; --muted: #4f5868; --line: #d0d5dd; --bar: #223046; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: var(--ink); background: #f3f4f7; }
.ehr-bar { display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; align-items: baseline;
           background: var(--bar); color: #fff; padding: .55rem 1rem; }
.ehr-name { font-weight: 700; letter-spacing: .02em; }
.ehr-context { color: #c9d1de; font-size: .9rem; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.3rem; margin: 0; }
.head { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline;
        margin-bottom: .6rem; }
.count { color: var(--muted); margin: 0; }
.search { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin: 0 0 .8rem; }
.search label { font-weight: 600; }
.search input { flex: 1 1 16rem; font: inherit; padding: .4rem .55rem; border: 1px solid #667085;
                border-radius: 4px; }
.search button, a.open { font: inherit; padding: .4rem .8rem; border-radius: 4px; }
.search button { border: 1px solid #475467; background: #fff; color: var(--ink); cursor: pointer; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; vertical-align: top; padding: .5rem .6rem;
         border-bottom: 1px solid var(--line); }
thead th { background: #e9ecf2; font-size: .85rem; color: #344054; }
tbody tr:hover { background: #f7f9fc; }
.name a { font-weight: 600; color: var(--accent); }
.mrn { font-variant-numeric: tabular-nums; color: #344054; }
.who .mrn { display: block; }
.clinical { margin: 0; }
details.scenario { margin-top: .2rem; font-size: .85rem; color: var(--muted); }
details.scenario summary { cursor: pointer; color: var(--accent); }
a.open { display: inline-block; background: var(--accent); color: #fff; font-weight: 600;
         text-decoration: none; white-space: nowrap; }
a.open:focus-visible, .name a:focus-visible, summary:focus-visible, input:focus-visible,
button:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
td.actions { white-space: nowrap; }
td.actions a.chart, td.actions a.launch-withheld { margin-left: .7rem; color: var(--accent);
                                                   font-size: .88rem; }
.empty { padding: 1rem; background: #fff; border: 1px solid var(--line); }
.dev { margin-top: 1.2rem; font-size: .88rem; color: var(--muted); }
.dev code { font-size: .85rem; overflow-wrap: anywhere; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
                   clip: rect(0, 0, 0, 0); white-space: nowrap; }
[hidden] { display: none !important; }
@media (max-width: 640px) {
  main { padding: .6rem; }
  table, tbody, tr, td { display: block; width: 100%; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0, 0, 0, 0); }
  table { border: 0; background: none; }
  tr { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin-bottom: .6rem;
       padding: .3rem .2rem; }
  td { border: 0; padding: .15rem .6rem; }
  td.who { display: flex; gap: .6rem; color: var(--muted); }
  td.actions { white-space: normal; padding-bottom: .5rem; }
  .who .mrn { display: inline; }
}
"""

JS = """\
(function () {
  "use strict";
  var box = document.getElementById("q");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-search]"));
  var count = document.getElementById("count");
  if (!box || !rows.length) { return; }
  function filter() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute("data-search");
      var hit = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    count.textContent = shown + (shown === 1 ? " patient" : " patients");
  }
  box.addEventListener("input", filter);
})();
"""


def age(birth_date: str | None, today: date) -> int | None:
    if not birth_date:
        return None
    try:
        born = date.fromisoformat(birth_date[:10])
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _haystack(p: PatientListing) -> str:
    return " ".join(x for x in (p.name, p.mrn or "", p.clinical, p.summary, p.id) if x).lower()


#: The "without medications" launch: an EHR that grants none of the medication types.
WITHHOLD_MEDICATIONS = "MedicationAdministration,MedicationStatement,MedicationRequest"


def _row(p: PatientListing, launch_base: str, chart_base: str, today: date) -> str:
    href = f"{launch_base}?{urlencode({'patient': p.id})}"
    narrowed = f"{launch_base}?" + urlencode({"patient": p.id, "withhold": WITHHOLD_MEDICATIONS})
    years = age(p.birth_date, today)
    who = " · ".join(x for x in (f"{years} y" if years is not None else "",
                                  SEX.get(p.gender or "", "")) if x)
    scenario = (
        f'<details class="scenario"><summary>Test scenario</summary>{escape(p.summary)}'
        "</details>" if p.summary else ""
    )
    return (
        f'<tr data-search="{escape(_haystack(p))}">'
        f'<td class="name"><a href="{escape(href)}">{escape(p.name)}</a></td>'
        f'<td class="who"><span>{escape(who) or "–"}</span>'
        f'<span class="mrn">{escape(p.mrn or "")}</span></td>'
        f'<td><p class="clinical">{escape(p.clinical) or "&nbsp;"}</p>{scenario}</td>'
        f'<td class="actions"><a class="open launch" href="{escape(href)}" '
        f'aria-label="Open PML risk for {escape(p.name)}">Open PML risk</a>'
        f'<a class="chart" href="{escape(chart_base + p.id)}" '
        f'aria-label="Chart of {escape(p.name)} (CDS Hooks cards)">Chart</a>'
        f'<a class="launch-withheld" href="{escape(narrowed)}" '
        f'aria-label="without medications: open PML risk for {escape(p.name)} with the '
        'medication records withheld">'
        "without medications</a></td></tr>"
    )


def page(patients: Iterable[PatientListing], *, query: str, launch_base: str, chart_base: str,
         fhir_base: str, today: date) -> str:
    """The list, filtered by ``query`` (every word must appear in the row)."""
    everyone = list(patients)
    words = query.lower().split()
    shown = [p for p in everyone if all(w in _haystack(p) for w in words)]
    rows = "\n".join(_row(p, launch_base, chart_base, today) for p in shown)
    count = f"{len(shown)} patient{'' if len(shown) == 1 else 's'}"
    table = (
        '<table><caption class="visually-hidden">Patients, with a link that opens the PML risk '
        'app for each</caption><thead><tr><th scope="col">Patient</th><th scope="col">Age, sex '
        'and MRN</th><th scope="col">Summary</th><th scope="col"><span class="visually-hidden">'
        f"App</span></th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        if shown else '<p class="empty">No patient matches the search.</p>'
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Patient list · Sandbox EHR</title>
<link rel="stylesheet" href="picker.css">
<script src="picker.js" defer></script>
</head>
<body>
<header class="ehr-bar"><span class="ehr-name">Sandbox EHR</span>
<span class="ehr-context">Neurology · MS infusion clinic · Dr. Ada Lovelace</span></header>
<main>
<div class="head"><h1>Patients on natalizumab</h1>
<p class="count" id="count" role="status">{count}</p></div>
<form class="search" method="get" role="search">
<label for="q">Search</label>
<input id="q" name="q" type="search" value="{escape(query)}" autocomplete="off"
 placeholder="Name, MRN or clinical detail">
<button type="submit">Search</button>
</form>
{table}
<details class="dev"><summary>For developers</summary>
<p>FHIR base: <code>{escape(fhir_base)}</code>. "Open PML risk" performs an EHR launch
(<code>launch?patient=ID</code>); "Chart" opens the patient's chart, which calls the app's CDS
Hooks service and shows its cards. All data is synthetic.</p>
<p>Real EHRs may grant less than an app asks for: <code>launch?patient=ID&amp;withhold=TYPES</code>
grants the requested scopes minus those resource types (comma-separated, e.g.
<code>withhold=MedicationAdministration,MedicationStatement</code>); each patient's
"without medications" link does that for the three medication types.</p></details>
</main>
</body>
</html>
"""
