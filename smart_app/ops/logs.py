"""Application logging for ``pml-risk serve``: plain lines on standard error, no PHI, no tokens.

The code logs identifiers and type names, never chart data; that is the rule. This module is the
net under it: every line (tracebacks included, and gunicorn's own lines) passes through
:func:`redact`, which blanks bearer tokens, JWTs and the OAuth parameters that grant access
(``code``, ``state``, ``*_token``, ``client_assertion``, ``launch``...) wherever they appear, e.g.
in a URL quoted by an exception. The access log stays off: callback URLs carry codes.
"""

from __future__ import annotations

import logging
import re
import sys

from . import audit

# Names of parameters whose values are secrets (not secrets themselves).
_SECRET_PARAMS = "|".join((
    "access_token", "refresh_token", "id_token", "code", "code_verifier", "state",
    "client_assertion", "client_secret", "launch", "password", "token",
))
_PATTERNS = (
    # query strings and form bodies: code=abc&state=def
    (re.compile(rf"(?i)\b({_SECRET_PARAMS})=([^&\s\"']+)"), r"\1=[redacted]"),
    # JSON: "access_token": "..."
    (re.compile(rf'(?i)"({_SECRET_PARAMS})"\s*:\s*"[^"]*"'), r'"\1": "[redacted]"'),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    # credentials in a URL (an egress proxy's http://user:password@host:3128)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,15}://)[^/\s:@]{1,256}:[^/\s@]{1,256}@"),
     r"\1[redacted]@"),
    # /launches/<id>: the id alone opens nothing (it is bound to a cookie) but is kept out
    # of the application log anyway; the audit trail is where launch ids belong.
    (re.compile(r"/launches/[A-Za-z0-9_-]{8,}"), "/launches/[id]"),
)


# JWTs (``eyJ...``.``...``.``...``) are found as whole runs of token characters, each run looked
# at once: a pattern anchored on "eyJ" would rescan the rest of the run from every "eyJ" in it.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_.-]{8,}")
MAX_RECORD = 64 * 1024  # characters of one log record; the rest is cut, not scanned


def _jwt(match: re.Match[str]) -> str:
    run = match.group(0)
    at = run.find("eyJ")
    if at < 0 or run[at:].count(".") < 2 or (at and run[at - 1] not in ".-"):
        return run
    return run[:at] + "[jwt redacted]"


def redact(text: str) -> str:
    """Blank secrets in ``text``. Every pattern is linear in the length of the text (no nested
    or overlapping repetition), so a log line crafted to make a regex backtrack costs nothing."""
    if len(text) > MAX_RECORD:
        text = f"{text[:MAX_RECORD]}...[{len(text) - MAX_RECORD} characters cut]"
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _TOKEN_RUN.sub(_jwt, text)


# Line breaks and other control characters in a message: a value from a request (the callback's
# ``error``) could otherwise end the line and forge a record of its own.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters written as escapes."""
    return _CONTROL.sub(_escape, text)


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner`` (or the default format), then redacts the whole line.

    A record is one line: its message's control characters are escaped. A traceback attached to
    it keeps its line breaks, but each of its lines is indented, so nothing in an exception's
    text can start a line that reads as a record of its own.
    """

    def __init__(self, inner: logging.Formatter | None = None,
                 fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
        super().__init__(fmt)
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        one_line = logging.makeLogRecord(record.__dict__)
        one_line.msg = escape_controls(record.getMessage())
        one_line.args = None
        text = self._inner.format(one_line) if self._inner else super().format(one_line)
        first, *rest = text.split("\n")
        return redact("\n".join([first, *("  " + escape_controls(line) for line in rest)]))


def protect(handler: logging.Handler) -> None:
    """Wrap a handler's formatter (gunicorn's, say) so its lines are redacted too."""
    if not isinstance(handler.formatter, RedactingFormatter):
        handler.setFormatter(RedactingFormatter(handler.formatter))


def configure(audit_path: str = "", level: int = logging.INFO) -> None:
    """Root logger to standard error through the redactor; the audit trail to its own sink."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # The development server's and urllib3's per-request lines would print URLs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    audit.configure(audit_path)
