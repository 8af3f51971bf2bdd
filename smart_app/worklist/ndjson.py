"""NDJSON lines from files or HTTP bodies, streamed and bounded.

An export file can hold gigabytes; it is never read whole. Every line is read with a size cap so
one malformed (newline-less) file cannot take the process's memory, and gzip is recognised by its
magic bytes as well as by the ``.gz`` suffix: some servers send gzipped files without saying so.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

MB = 1024 * 1024
MAX_LINE_BYTES = 16 * MB  # one resource; a chart is many lines, never one huge one
GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


class NdjsonError(ValueError):
    """A file is not usable NDJSON; the message names the file and line, never its content."""


class _Source(io.RawIOBase):
    """A raw stream over anything with ``read(n)`` (a urllib3 response), open until closed
    here: urllib3 reports itself closed once the body is read, which would make a buffered
    reader refuse the lines it already holds."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _maybe_gunzip(stream: Any) -> IO[bytes]:
    """``stream`` itself, or a gzip reader over it when it starts with the gzip magic."""
    buffered: Any = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(
        _Source(stream), buffer_size=256 * 1024
    )
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    return cast(IO[bytes], buffered)


@dataclass(frozen=True)
class Limits:
    """Caps on what an export may make the run hold or write, decompressed (a few hundred KB of
    gzip can expand to gigabytes). Configurable per run (``pml-risk worklist --max-*``)."""

    line_bytes: int = MAX_LINE_BYTES  # one resource
    file_bytes: int = 4 * 1024 * MB  # one export file, decompressed
    run_bytes: int = 32 * 1024 * MB  # every file of the run together, decompressed
    patient_resources: int = 20_000  # one chart (a patient with more gets no estimate)


class Budget:
    """Decompressed bytes read so far in the run, shared by every file of the run."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0


def lines(stream: Any, name: str, max_line: int = MAX_LINE_BYTES,
          budget: Budget | None = None) -> Iterator[bytes]:
    """Non-blank lines of ``stream`` (a binary file, a gzip file, a urllib3 response; gzip or
    plain content), without their line ending.

    Raises ``NdjsonError`` for a line longer than ``max_line``, a corrupt gzip stream, or a file
    (or run) past its decompressed byte cap in ``budget``.
    """
    reader = _maybe_gunzip(stream)
    number = 0
    in_file = 0
    if budget is not None:
        max_line = min(max_line, budget.limits.line_bytes)
    try:
        while True:
            line = reader.readline(max_line + 1)
            if not line:
                return
            number += 1
            if len(line) > max_line and not line.endswith(b"\n"):
                raise NdjsonError(f"{name}: line {number} is longer than {max_line} bytes "
                                  "(--max-line-mb)")
            if budget is not None:
                in_file += len(line)
                budget.used += len(line)
                if in_file > budget.limits.file_bytes:
                    raise NdjsonError(f"{name}: more than {budget.limits.file_bytes} bytes "
                                      "once decompressed (--max-file-mb)")
                if budget.used > budget.limits.run_bytes:
                    raise NdjsonError(f"{name}: the export passed {budget.limits.run_bytes} "
                                      "bytes once decompressed (--max-run-mb)")
            line = line.strip()
            if line:
                yield line
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise NdjsonError(f"{name}: not readable after line {number} "
                          f"({type(exc).__name__})") from exc


def files(directory: Path) -> list[Path]:
    """The NDJSON files of ``directory`` (and its subfolders), in a stable order."""
    if not directory.is_dir():
        raise NdjsonError(f"{directory}: not a directory")
    found = sorted(
        p for p in directory.rglob("*")
        if p.is_file() and p.name.lower().endswith(SUFFIXES)
    )
    if not found:
        raise NdjsonError(f"{directory}: no .ndjson or .ndjson.gz files")
    return found


def file_lines(path: Path, budget: Budget | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from lines(fh, path.name, budget=budget)
