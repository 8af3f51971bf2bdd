"""The repository's clinical basis (docs/clinical-basis.md), readable in the app at ``/basis``.

The page's evidence panel and the CDS cards link there, and a clinician inside the EHR cannot
open a repository file, so the app serves it as HTML. The renderer covers what the document uses
(headings, paragraphs, lists, tables, code, bold, links) and nothing more: every character is
escaped first, and links keep only http(s) targets and in-page anchors.
"""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import Markup, escape

DOC = Path(__file__).resolve().parents[3] / "docs" / "clinical-basis.md"

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+(.*)$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _inline(text: str) -> str:
    html = str(escape(text))

    def link(m: re.Match[str]) -> str:
        target = m.group(2)
        if target.startswith(("https://", "http://", "#")):
            return f'<a href="{target}">{m.group(1)}</a>'
        return m.group(1)  # a repository path: the words only

    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return _LINK.sub(link, html)


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head, body = cells[0], [r for r in cells[2:]]
    out = ["<table class=\"compact\"><thead><tr>"]
    out += [f'<th scope="col">{_inline(c)}</th>' for c in head]
    out.append("</tr></thead><tbody>")
    for row in body:
        out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(text: str) -> Markup:
    """Markdown (the subset above) to escaped HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(f"<pre>{escape(chr(10).join(lines[i + 1:j]))}</pre>")
            i = j + 1
        elif heading := _HEADING.match(line):
            level = len(heading.group(1))
            words = heading.group(2)
            out.append(f'<h{level} id="{_slug(words)}">{_inline(words)}</h{level}>')
            i += 1
        elif line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif _ITEM.match(line):
            ordered = line.lstrip()[0].isdigit()
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                item = _ITEM.match(lines[i])
                if item:
                    items.append(item.group(1))
                elif items:
                    items[-1] += " " + lines[i].strip()  # a continuation line
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(t)}</li>" for t in items)
                       + f"</{tag}>")
        else:
            para: list[str] = []
            while i < len(lines) and lines[i].strip() and not (
                _HEADING.match(lines[i]) or _ITEM.match(lines[i])
                or lines[i].lstrip().startswith(("|", "```"))
            ):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return Markup("\n".join(out))  # noqa: S704 - built from escaped text above


def load() -> Markup | None:
    """The rendered document, or None when this installation does not carry it."""
    try:
        return render(DOC.read_text(encoding="utf-8"))
    except OSError:
        return None
