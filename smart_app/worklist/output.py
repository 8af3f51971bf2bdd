"""The worklist files: ``worklist.csv``, ``worklist.json`` and a self-contained ``worklist.html``.

They hold names and MRNs, so they are written owner-only (0600) and atomically (a reader never
sees half a file, and a failed run leaves the previous night's list in place). The HTML page has
no external assets at all: inline style and script, so it opens from a file share, an e-mail
attachment or a browser without network and prints on one landscape page per ~25 patients.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from .rows import COLUMNS, NO_ESTIMATE, OVERDUE, Row

CSV_NAME, JSON_NAME, HTML_NAME = "worklist.csv", "worklist.json", "worklist.html"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing it atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_csv_safe(v) for v in row.csv_values()])
    return buffer.getvalue()


def _csv_safe(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a name could start with one."""
    if value[:1] in ("=", "+", "@", "\t", "\r") or (value[:1] == "-" and not _is_number(value)):
        return "'" + value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def json_text(rows: Sequence[Row], run: Mapping[str, Any]) -> str:
    return json.dumps({"worklist": dict(run), "rows": [r.as_json() for r in rows]},
                      indent=1, ensure_ascii=False) + "\n"


def write_all(out: Path, rows: Sequence[Row], run: Mapping[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, text in ((CSV_NAME, csv_text(rows)), (JSON_NAME, json_text(rows, run)),
                       (HTML_NAME, html_text(rows, run))):
        write_private(out / name, text)
        written.append(out / name)
    return written


def read_previous(out: Path) -> dict[str, Any] | None:
    """The previous run's ``worklist.json`` in ``out`` (for --since and "crossed 24"), if any."""
    path = out / JSON_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: this run is simply a first run
    return data if isinstance(data, dict) else None


# -- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1d1d1f}
h1{font-size:1.35rem;margin:0 0 .25rem}
.meta{color:#555;margin:0 0 1rem}
.controls{margin:0 0 .75rem;display:flex;gap:1.25rem;align-items:center}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f5;position:sticky;top:0}
th button{all:unset;cursor:pointer;font-weight:600}
th button:focus-visible{outline:2px solid #0a58ca}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.none{color:#8a1c1c;font-weight:600}
.high{color:#8a1c1c;font-weight:600}.moderate{color:#7a4d00}.low{color:#1d5e20}
.overdue{color:#8a1c1c;font-weight:600}.due{color:#7a4d00;font-weight:600}
.badge{display:inline-block;border:1px solid currentColor;border-radius:3px;padding:0 .25rem;
font-size:.8em;margin-left:.25rem}
.small{color:#555;font-size:.85em}
@media print{
 body{margin:0;font-size:10pt}.controls,.open{display:none}
 th{position:static}tr{break-inside:avoid}
 @page{size:landscape;margin:1cm}
}
"""

_SCRIPT = """
(function(){
 var table=document.getElementById('worklist'),body=table.tBodies[0];
 var rows=Array.prototype.slice.call(body.rows);
 var buttons=table.querySelectorAll('th button');
 function key(row,i,numeric){
  var v=row.cells[i].getAttribute('data-sort');
  if(numeric){return v===''?-Infinity:parseFloat(v);}return v;}
 buttons.forEach(function(button){
  button.addEventListener('click',function(){
   var th=button.parentNode,i=th.cellIndex,numeric=th.getAttribute('data-type')==='num';
   var asc=th.getAttribute('aria-sort')!=='ascending';
   table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
   th.setAttribute('aria-sort',asc?'ascending':'descending');
   rows.sort(function(a,b){var x=key(a,i,numeric),y=key(b,i,numeric);
    var c=x<y?-1:x>y?1:0;return asc?c:-c;});
   rows.forEach(function(r){body.appendChild(r);});
  });
 });
 var due=document.getElementById('due'),count=document.getElementById('shown');
 function filter(){var n=0;rows.forEach(function(r){
   var show=!due.checked||r.getAttribute('data-due')==='1';r.hidden=!show;if(show){n++;}});
  count.textContent=n+' of '+rows.length+' patients shown';}
 due.addEventListener('change',filter);filter();
})();
"""

_HEADERS = (
    ("Patient", "text"), ("Status", "text"), ("Per 1,000", "num"), ("Category", "text"),
    ("Infusions", "num"), ("Anti-JCV", "text"), ("Retest due", "text"), ("MRI", "text"),
    ("Missing or stale", "text"), ("", "text"),
)
CATEGORY_ORDER = {"high": 3, "moderate": 2, "low": 1}
NO_LINKS = ("No chart links: a provider launch of the app from outside the chart gets no "
            "patient at Epic or Oracle Health, so open the patient's chart in the EHR and launch "
            "the app from there. A site can set worklist_link for the tenant to link each row "
            "to its chart.")

# Jinja2 with autoescaping: every value from the export (names, MRNs, reasons, notes) is
# escaped by the template engine, not by hand. Only _STYLE and _SCRIPT (constants) are marked
# safe, in the template.
_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Natalizumab worklist {{ run.at }}</title>
<style>{{ style|safe }}</style>
</head>
<body>
<h1>Natalizumab worklist — PML risk and what is due</h1>
<p class=meta>As of {{ run.at }}{% for v in where %} · {{ v }}{% endfor %} ·
{{ rows|length }} patients · {{ due }} with an anti-JCV retest or a brain MRI due this month
or overdue ·
risk table {{ run.table }}</p>
{% if notes %}<ul class=meta>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if not links %}<p class=meta id=links>{{ no_links }}</p>{% endif %}
<div class=controls>
<label><input type=checkbox id=due> Due this month
(anti-JCV retest or brain MRI due or overdue)</label>
<span id=shown aria-live=polite></span>
</div>
<table id=worklist>
<thead><tr>{% for label, kind in headers %}<th scope=col data-type="{{ kind }}">
{%- if label %}<button type=button>{{ label }}</button>{% endif %}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in rows %}<tr data-due="{{ 1 if r.due_this_month else 0 }}">
<td data-sort="{{ r.name or r.patient }}">{{ r.name or r.patient }}<br>
<span class=small>MRN {{ r.mrn or '—' }}</span></td>
<td data-sort="{{ r.status }}">{% if r.status == no_estimate %}<span class=none>No estimate</span>
<br><span class=small>{{ r.reason }}</span>{% else %}Estimate{% endif %}</td>
<td class=num data-sort="{{ r.per_1000 }}">{{ r.per_1000 }}{% if r.per_1000 and r.one_in %}<br>
<span class=small>≈1 in {{ "{:,}".format(r.one_in) }}</span>{% endif %}</td>
<td class="{{ r.category }}" data-sort="{{ categories.get(r.category, 0) }}">{{ r.category }}</td>
<td class=num data-sort="{{ '' if r.infusions is none else r.infusions }}">
{%- if r.infusions is none %}<span class=small>unknown</span>{% else %}{{ r.infusions }}{% endif %}
{%- if r.crossed_24 == "yes" %}<span class="badge overdue"
 title="more than 24 since the last run">crossed 24</span>
{%- elif r.infusions is not none and r.infusions > 24 %}<span class=badge
 title="more than 24 infusions">&gt;24</span>{% endif %}</td>
<td data-sort="{{ r.antibody_date }}">{{ r.antibody }}
{%- if r.antibody_index %}, index {{ r.antibody_index }}{% endif %}
{%- if r.antibody_date %}<br><span class=small>{{ r.antibody_date }}</span>{% endif %}</td>
<td data-sort="{{ r.retest_due or '9999' }}">{% if r.retest_due %}<span
 class="{{ 'overdue' if r.retest == overdue else ('due' if r.due_this_month else '') }}">
{{- r.retest_due }}</span><br>{% endif %}<span class=small>{{ r.retest }}</span></td>
<td data-sort="{{ r.mri_due or r.mri_interval }}">{{ r.mri_interval }}
{%- if r.mri %}<br><span class="{{ 'overdue' if r.mri == overdue else 'small' }}">brain MRI
{{ r.mri_due or r.mri }}{% if r.mri_due %} ({{ r.mri }}){% endif %}</span>{% endif %}</td>
<td data-sort="{{ r.missing_or_stale|length }}">
{%- for code, message in r.findings if code in r.missing_or_stale %}
{%- if not loop.first %}<br>{% endif %}<span title="{{ message }}">{{ code }}</span>{% endfor %}
{%- if r.data_notes %}<br><span class=small>{{ r.data_notes }}</span>{% endif %}</td>
<td data-sort="">{% if r.link.startswith(("https://", "http://")) %}<a class=open
 href="{{ r.link }}" rel="noopener noreferrer">Open chart</a>{% endif %}</td>
</tr>
{% endfor %}
</tbody>
</table>
<p class=small>Each figure is the app's own assessment of the chart as exported; open the app
for the inputs, their sources and the full advice. Contains patient data: do not forward.</p>
<script>{{ script|safe }}</script>
</body>
</html>
"""
_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True)
_COMPILED = _ENV.from_string(_TEMPLATE)


def html_text(rows: Sequence[Row], run: Mapping[str, Any]) -> str:
    return _COMPILED.render(
        rows=rows, run={"at": str(run.get("at", "")), "table": str(run.get("table", ""))},
        where=[str(v) for v in (run.get("tenant"), run.get("group")) if v],
        notes=[str(n) for n in run.get("notes", [])],
        due=sum(1 for r in rows if r.due_this_month),
        links=any(r.link for r in rows), no_links=NO_LINKS, headers=_HEADERS,
        categories=CATEGORY_ORDER, no_estimate=NO_ESTIMATE, overdue=OVERDUE,
        style=_STYLE, script=_SCRIPT,
    )
