"""Where the CPU of a first import with films goes: a sampling profile (py-spy: every thread, the process pool's
workers included) of a first import of the synthetic world (a film for every matchmade match) against the
emulator, without latency or rate limit so that the figure is CPU, not waiting. Prints CPU seconds and ms per match
by kind of work: HTTP (aiohttp, asyncio), landing (gzip, files), JSON parse, spnkr's pydantic models, film
decoding, the stats transforms, Parquet/polars, Dagster (events, runs, storage), other.

    .venv/bin/pip install py-spy   # a sampling profiler, not a dependency of the project
    .venv/bin/python -m benchmarks.profile_import [--matches 400] [--rate 1000]

(The child process runs ``benchmarks.bench_first_import``'s import; py-spy samples it at 200 Hz.)
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

#: Kind of work → substrings of a frame's file or function (first match of the innermost frames wins).
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("film decoding", ("film_decoder", "highlight_events (halo_pipeline/transforms/film")),
    ("spnkr/pydantic models", ("pydantic", "spnkr/models")),
    ("JSON parse (orjson)", ("orjson",)),
    ("stats transforms", ("halo_pipeline/transforms/",)),
    ("landing (gzip, files)", ("halo_pipeline/storage/landing", "gzip.py", "zlib", "halo_pipeline/storage/files")),
    ("HTTP (aiohttp, asyncio)", ("aiohttp", "asyncio", "selectors", "ssl.py", "multidict", "yarl", "aiolimiter",
                                 "tenacity", "halo_pipeline/api/")),
    ("Parquet, polars", ("polars",)),
    ("Dagster (events, runs, storage)", ("dagster", "sqlalchemy", "sqlite3")),
]

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from benchmarks._common import EmulatorProcess, cpu_seconds
    from benchmarks.bench_first_import import world_spec, import_all
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    matches, rate, data = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    spec = world_spec(matches, players=2, months=3)
    world = SyntheticWorld(**spec)
    with EmulatorProcess(**spec) as emu:
        print("READY", flush=True)
        sys.stdin.readline()  # the profiler is attached
        before = cpu_seconds(exclude=(emu.process.pid,))
        seconds, ok = import_all(world, emu.url, data, rate)
        cpu = cpu_seconds(exclude=(emu.process.pid,)) - before
        n = emu.counts()["requests"].get("match_stats", 0)
    print(f"DONE {n} {seconds:.2f} {cpu:.2f} {ok}", flush=True)
""")


def kind_of(stack: str) -> str:
    """The kind of work of one collapsed stack (``frame;frame;…``, innermost last)."""
    for frame in reversed(stack.split(";")):
        for kind, needles in KINDS:
            if any(n in frame for n in needles):
                return kind
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=400)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s per service (no waiting)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="halo-profile-") as tmp:
        child = subprocess.Popen([sys.executable, "-W", "ignore", "-c", CHILD, str(args.matches), str(args.rate),
                                  f"{tmp}/data"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=Path(__file__).resolve().parents[1])
        assert child.stdout.readline().strip() == "READY"
        raw = Path(tmp) / "profile.txt"
        # The emulator is a child of the child: sampled too, then left out by its frames (halo_pipeline/emulator).
        spy = subprocess.Popen([py_spy, "record", "--pid", str(child.pid), "--subprocesses", "--rate", "200",
                                "--format", "raw", "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child.stdin.write("go\n")
        child.stdin.flush()
        done = child.stdout.readline().split()
        child.wait()
        spy.wait(timeout=60)
        samples: collections.Counter[str] = collections.Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit() or "emulator" in stack:
                continue
            samples[kind_of(stack)] += int(count)
    matches, seconds, cpu = int(done[1]), float(done[2]), float(done[3])
    total = sum(samples.values()) or 1
    print(f"first import of {matches} matches with films: {seconds:.1f} s wall, {cpu:.1f} s CPU "
          f"({cpu / max(matches, 1) * 1000:.0f} ms of CPU per match, pool workers included), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'kind of work':<34}{'share':>7}{'ms/match':>10}")
    for kind, count in samples.most_common():
        share = count / total
        print(f"{kind:<34}{share:>7.1%}{share * cpu / max(matches, 1) * 1000:>10.1f}")


if __name__ == "__main__":
    main()
