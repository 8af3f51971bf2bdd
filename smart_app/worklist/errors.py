"""The one error a worklist run reports when it cannot go on."""

from __future__ import annotations


class WorklistError(RuntimeError):
    """The run cannot go on; the message is safe to print (no PHI, no token)."""
