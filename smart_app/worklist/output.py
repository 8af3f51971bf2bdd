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
from html import escape
from pathlib import Path
from typing import Any

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


def _cell(content: str, sort: str | float | int, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<td{cls} data-sort="{escape(str(sort))}">{content}</td>'


def _row_html(row: Row) -> str:
    e = escape
    patient = f"{e(row.name or row.patient)}<br><span class=small>MRN {e(row.mrn or '—')}</span>"
    if row.status == NO_ESTIMATE:
        status = f'<span class=none>No estimate</span><br><span class=small>{e(row.reason)}</span>'
    else:
        status = "Estimate"
    per = (f"{e(row.per_1000)}<br><span class=small>≈1 in {row.one_in:,}</span>"
           if row.per_1000 and row.one_in else e(row.per_1000))
    infusions = str(row.infusions)
    if row.crossed_24 == "yes":
        infusions += '<span class="badge overdue" title="more than 24 since the last run">' \
                     "crossed 24</span>"
    elif row.infusions > 24:
        infusions += '<span class=badge title="more than 24 infusions">&gt;24</span>'
    antibody = e(row.antibody)
    if row.antibody_index:
        antibody += f", index {e(row.antibody_index)}"
    if row.antibody_date:
        antibody += f"<br><span class=small>{e(row.antibody_date)}</span>"
    retest_css = "overdue" if row.retest == OVERDUE else ("due" if row.due_this_month else "")
    retest = (f'<span class="{retest_css}">{e(row.retest_due)}</span>'
              f"<br><span class=small>{e(row.retest)}</span>" if row.retest_due
              else f"<span class=small>{e(row.retest)}</span>")
    notes = "<br>".join(
        f'<span title="{e(message)}">{e(code)}</span>' for code, message in row.findings
        if code in row.missing_or_stale)
    if row.data_notes:
        notes += f"<br><span class=small>{e(row.data_notes)}</span>"
    link = ""
    if row.link.startswith(("https://", "http://")):
        link = f'<a class=open href="{e(row.link)}" rel="noopener noreferrer">Open</a>'
    cells = [
        _cell(patient, row.name or row.patient),
        _cell(status, row.status),
        _cell(per, row.per_1000, "num"),
        _cell(e(row.category), {"high": 3, "moderate": 2, "low": 1}.get(row.category, 0),
              row.category),
        _cell(infusions, row.infusions, "num"),
        _cell(antibody, row.antibody_date),
        _cell(retest, row.retest_due or "9999"),
        _cell(e(row.mri_interval) + (
            f'<br><span class="{"overdue" if row.mri == OVERDUE else "small"}">brain MRI '
            f"{e(row.mri_due or row.mri)}{' (' + e(row.mri) + ')' if row.mri_due else ''}"
            "</span>" if row.mri else ""), row.mri_due or row.mri_interval),
        _cell(notes, len(row.missing_or_stale)),
        _cell(link, ""),
    ]
    return f'<tr data-due="{1 if row.due_this_month else 0}">{"".join(cells)}</tr>'


def html_text(rows: Sequence[Row], run: Mapping[str, Any]) -> str:
    e = escape
    heads = "".join(
        f'<th scope=col data-type="{kind}">{f"<button type=button>{e(label)}</button>" if label else ""}</th>'  # noqa: E501
        for label, kind in _HEADERS)
    where = " · ".join(e(str(v)) for v in (run.get("tenant"), run.get("group")) if v)
    notes = "".join(f"<li>{e(str(n))}</li>" for n in run.get("notes", []))
    due = sum(1 for r in rows if r.due_this_month)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Natalizumab worklist {e(str(run.get("at", "")))}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Natalizumab worklist — PML risk and what is due</h1>
<p class=meta>As of {e(str(run.get("at", "")))}{" · " + where if where else ""} ·
{len(rows)} patients · {due} with an anti-JCV retest or a brain MRI due this month or overdue ·
risk table {e(str(run.get("table", "")))}</p>
{f"<ul class=meta>{notes}</ul>" if notes else ""}
<div class=controls>
<label><input type=checkbox id=due> Due this month
(anti-JCV retest or brain MRI due or overdue)</label>
<span id=shown aria-live=polite></span>
</div>
<table id=worklist>
<thead><tr>{heads}</tr></thead>
<tbody>
{chr(10).join(_row_html(r) for r in rows)}
</tbody>
</table>
<p class=small>Each figure is the app's own assessment of the chart as exported; open the app
for the inputs, their sources and the full advice. Contains patient data: do not forward.</p>
<script>{_SCRIPT}</script>
</body>
</html>
"""
