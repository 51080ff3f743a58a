"""Run every benchmark and print its figures, each with a ratio against a baseline measured in the same run.

    .venv/bin/python -m benchmarks.run            # full mode (≈ 25–30 min on 2 cores)
    .venv/bin/python -m benchmarks.run --smoke    # tiny sizes, < 120 s: what the test suite runs
    .venv/bin/python -m benchmarks.run --only first_import,rederive

Benchmarks (modules ``benchmarks/bench_*.py``, each also runnable alone with ``-m``): first_import (a),
delta (b), rederive (c, film chunks from ../shared skipped with a printed reason when absent), overhead (d),
memory (e), queries (f), film_decode (g: spnkr's film reader vs film_decoder on one core; recorded chunks
skipped with a printed reason when ../shared is absent), people (h: the players table vs DuckDB), small (i:
players add, a 6-match first import and a no-op delta of ``halo-pipeline`` as a process), levelup_import (j: a
long LevelUp history landed and derived; skipped without ../shared/legacy), crash_recovery (k: 20 kill -9 + two
syncs; skipped in smoke mode, where ``test_crash_safety.py`` runs one try), serving (l: the serving store vs the
views over Parquet, incremental update vs rebuild, stats, at 50 and 2,000 players), scale (m: players add, the
delta sensor's tick, the asset page's GraphQL query and backfill launches at 2,000 vs 50 registered players). Exit
status 1 when a benchmark raised (a missed target is printed, not an error: speed is measured here, not asserted).

This module imports nothing heavy at import time: the film decoding pool's spawned workers re-import the main
module, and must start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from datetime import date

BENCHMARKS = ["first_import", "delta", "rederive", "overhead", "memory", "queries", "film_decode", "people",
              "small", "levelup_import", "crash_recovery", "serving", "scale"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite's mode)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or BENCHMARKS
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    print(f"halo_pipeline benchmarks — {date.today()} — {os.cpu_count()} cores, {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}{' — SMOKE mode' if args.smoke else ''}")
    failed = []
    for name in names:
        start = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.bench_{name}").run(smoke=args.smoke)
            result.print()
        except Exception:  # noqa: BLE001 - report every benchmark, then fail
            traceback.print_exc()
            failed.append(name)
        print(f"   ({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
