"""``smart_style_url`` (SMART styling): the EHR's colours and fonts, as CSS custom properties.

The document is fetched without a token and only from the launch's own origin (never another
server), cached per URL for the life of the process (SMART: the URL changes when the style changes),
and every value is checked against a strict pattern before it reaches the page, since it is
untrusted input written into CSS: the per-launch stylesheet ``/launches/<id>/style.css``
(``style-src 'self'`` allows no inline styles).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

import requests

from ...http.bounded import MB, deadline_in, get_json

log = logging.getLogger(__name__)

#: SMART style property -> CSS custom property used by ``static/app.css``.
PROPERTIES = {
    "color_background": "--smart-background",
    "color_text": "--smart-text",
    "color_highlight": "--smart-highlight",
    "color_error": "--smart-error",
    "font_family_body": "--smart-font-body",
    "font_family_heading": "--smart-font-heading",
    "dim_border_radius": "--smart-radius",
}
_SAFE = re.compile(
    r"^(#[0-9a-fA-F]{3,8}"
    r"|(rgb|rgba|hsl|hsla)\([0-9.,%\s]{1,40}\)"
    r"|[0-9.]{1,6}(px|em|rem|%)"
    r"|[A-Za-z][A-Za-z0-9 ,-]{0,118})$"
)


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.replace("'", "").replace('"', "").strip()  # unquoted font names are valid
    return text if text and _SAFE.match(text) else None


def same_origin(url: str, iss: str) -> bool:
    a, b = urlsplit(url), urlsplit(iss)
    return a.scheme in ("https", "http") and (a.scheme, a.netloc) == (b.scheme, b.netloc)


class StyleCache:
    def __init__(self, max_entries: int = 64) -> None:
        self._entries: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def css_variables(
        self, http: requests.Session, url: str | None, iss: str, timeout: float
    ) -> dict[str, str]:
        if not url or not same_origin(url, iss):
            return {}
        with self._lock:
            if url in self._entries:
                return self._entries[url]
        try:
            data = get_json(http, url, max_bytes=1 * MB, deadline=deadline_in(2 * timeout),
                            timeout=timeout, allow_redirects=False)
        except (requests.RequestException, ValueError):
            log.info("smart_style_url could not be read; using the default style")
            data = {}
        found = {
            css: clean
            for key, css in PROPERTIES.items()
            if isinstance(data, dict) and (clean := _clean(data.get(key))) is not None
        }
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[url] = found
        return found
