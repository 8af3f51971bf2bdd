"""The worklist command configures logging as a process entry point does; in-process tests put
the root and audit loggers back afterwards so later tests see them as they were."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from smart_app.ops import audit


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger(), logging.getLogger(audit.LOGGER),
               logging.getLogger("werkzeug"), logging.getLogger("urllib3")]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.propagate, logger.level = propagate, level
