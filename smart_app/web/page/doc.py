"""The repository's clinical basis (docs/clinical-basis.md), readable in the app at ``/basis``.

The page's evidence panel and the CDS cards link there, and a clinician inside the EHR cannot
open a repository file, so the app serves it as HTML, rendered by markdown-it-py (CommonMark
plus tables) rather than by hand-written patterns that would drift from what the document
uses. Raw HTML in the Markdown is not passed through (it is shown as text), and links keep only
http(s) targets and in-page anchors: a repository path becomes its words, since it would lead
nowhere from the app. Headings get ids (their words, lower-cased and hyphenated) so sections
can be linked.

The document is found in the checkout beside the package (a source tree or an editable
install), else in the package itself, where a built wheel carries it (``smart_app/basis/``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

_PACKAGE = Path(__file__).resolve().parents[2]
#: Where the document is looked for, in order: the checkout's, then the wheel's copy.
PLACES = (_PACKAGE.parent / "docs" / "clinical-basis.md", _PACKAGE / "basis" / "clinical-basis.md")
DOC = next((p for p in PLACES if p.is_file()), PLACES[0])

_SAFE_LINK = ("https://", "http://", "#")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _heading_ids(tokens: Sequence[Token]) -> None:
    for n, token in enumerate(tokens[:-1]):
        if token.type == "heading_open":
            token.attrSet("id", _slug(tokens[n + 1].content))


def _drop_unsafe_links(tokens: Sequence[Token]) -> None:
    """A link to anything but http(s) or an anchor keeps its words and loses its target."""
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        kept: list[Token] = []
        dropping: list[bool] = []
        for child in token.children:
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                dropping.append(not href.startswith(_SAFE_LINK))
                if dropping[-1]:
                    continue
            elif child.type == "link_close" and dropping and dropping.pop():
                continue
            kept.append(child)
        token.children = kept


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    # Every link is parsed as a link (markdown-it would leave a javascript: one as raw text);
    # _drop_unsafe_links then keeps the words of any target that is not http(s) or an anchor.
    md.validateLink = lambda url: True  # type: ignore[method-assign]

    def table_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any,
                   env: Any) -> str:
        return '<table class="compact">\n'

    def th_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any,
                env: Any) -> str:
        tokens[idx].attrSet("scope", "col")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("table_open", table_open)
    md.add_render_rule("th_open", th_open)
    return md


_MD = _parser()


def render(text: str) -> Markup:
    """Markdown to HTML: CommonMark and tables, no raw HTML, safe links, heading ids."""
    env: dict[str, Any] = {}
    tokens = _MD.parse(text, env)
    _heading_ids(tokens)
    _drop_unsafe_links(tokens)
    html = _MD.renderer.render(tokens, _MD.options, env)
    return Markup(html)  # noqa: S704 - the renderer escapes text, and raw HTML is off


def load() -> Markup | None:
    """The rendered document, or None when this installation does not carry it."""
    try:
        return render(DOC.read_text(encoding="utf-8"))
    except OSError:
        return None
