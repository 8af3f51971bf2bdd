"""The SQLite session store under a pile of pending sign-ins: time per write.

``python bench/store_bench.py``: fills a store with N unexpired records (pending sign-ins),
then times one more write (each write also sweeps expired records), with the ``exp`` index and,
for comparison, without it (the state before the index existed). Median of 50 writes.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from smart_app.smart.store import SQLiteKV


def write_ms(kv: SQLiteKV, n: int = 50) -> float:
    for i in range(20):  # warm-up: the WAL checkpoint after the bulk insert
        kv.set(f"warm:{i}", b"x", 600)
    times = []
    for i in range(n):
        started = time.perf_counter()
        kv.set(f"probe:{i}", b"x" * 600, 600)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    for pending in (3_000, 200_000):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s.sqlite3"
            kv = SQLiteKV(str(path))
            now = time.time()
            with sqlite3.connect(path) as db:
                db.executemany("INSERT INTO kv (k, v, exp) VALUES (?, ?, ?)",
                               ((f"state:{i}", b"x" * 600, now + 600) for i in range(pending)))
            indexed = write_ms(kv)
            with sqlite3.connect(path) as db:
                db.execute("DROP INDEX kv_exp")
            scanned = write_ms(kv)
        print(f"{pending:>7,} pending: {indexed:6.2f} ms per write with the expiry index, "
              f"{scanned:6.2f} ms without")


if __name__ == "__main__":
    main()
