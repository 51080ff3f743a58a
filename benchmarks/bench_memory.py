"""(e) Memory: peak RSS of a first import of ``small`` vs ``large`` matches (latency 0, no rate limit).

The emulator runs in this process; each import runs in a fresh subprocess (``--child``) that reports its own
peak RSS (``VmHWM``; not ``ru_maxrss``, which Linux carries over from the parent across fork + exec) plus the
peaks of its process-pool workers (film decoding, stats derivation), so the emulator's world never counts.
Target: large / small ≤ 1.5 (flat in the history's size)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from benchmarks._common import REPO, Result, peak_rss_mib, require_success, timer, workers_peak_rss_mib
from benchmarks.bench_first_import import import_all, world_of


def child(url: str, data_dir: str, xuids: list[int]) -> None:
    """In the subprocess: the first import of every player ``xuids`` (only their ids cross the process)."""
    world = SimpleNamespace(players=[SimpleNamespace(xuid=x) for x in xuids])
    seconds, ok = import_all(world, url, Path(data_dir), 1000.0, "2025-01-01")  # type: ignore[arg-type]
    workers = workers_peak_rss_mib()
    print(json.dumps({"peak_rss_mib": peak_rss_mib() + workers, "workers_mib": workers, "seconds": seconds,
                      "ok": ok}))


def measure(matches: int) -> dict:
    from halo_pipeline.emulator.server import Emulator

    world = world_of(matches)
    with Emulator(synthetic=world) as emulator, tempfile.TemporaryDirectory(prefix="halo-bench-mem-") as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_memory", "--child", emulator.url, tmp,
             json.dumps([p.xuid for p in world.players])],
            cwd=REPO, capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    require_success(figures["ok"], f"the first import of {matches:,} matches")
    figures["matches"] = len(world.match_ids())
    return figures


def run(smoke: bool = False) -> Result:
    small, large = (10, 40) if smoke else (2000, 20000)
    result = Result(f"(e) Memory: first import of {small:,} vs {large:,} matches (peak RSS, process + pool)")
    with timer() as t:
        a = measure(small)
        b = a if smoke else measure(large)  # smoke: one child, the path only
    ratio = b["peak_rss_mib"] / a["peak_rss_mib"]
    result.add(f"peak RSS, {a['matches']:,} matches", a["peak_rss_mib"], "MiB")
    result.add(f"peak RSS, {b['matches']:,} matches", b["peak_rss_mib"], "MiB", a["peak_rss_mib"], ratio,
               "≤ 1.5", ratio <= 1.5 if not smoke else None)
    result.notes.append(f"of which process-pool workers: {a['workers_mib']:.0f} and {b['workers_mib']:.0f} MiB")
    result.notes.append(f"imports: {a['seconds']:.1f} s and {b['seconds']:.1f} s (latency 0, no rate limit); "
                        f"total {t[0]:.0f} s with world generation")
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], sys.argv[i + 2], json.loads(sys.argv[i + 3]))
    else:
        run("--smoke" in sys.argv).print()
