"""Exit codes and the one-line error every configuration-level command prints."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_CONFIG = 0, 2


def fail(message: str) -> int:
    print(f"pml-risk: {message}", file=sys.stderr)
    return EXIT_CONFIG
