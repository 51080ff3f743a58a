"""(e) Memory: peak RSS of a first import of ``small`` vs ``large`` matches (latency 0, no rate limit).

The emulator runs in this process; each import runs in a fresh subprocess (``--child``) that reports its own
peak RSS (``ru_maxrss``), so the emulator's world never counts. Target: large / small ≤ 1.5 (flat in the
history's size)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from benchmarks._common import REPO, Result, peak_rss_mib, timer
from benchmarks.bench_first_import import import_all, world_of


def child(url: str, seed_matches: int, data_dir: str) -> None:
    """In the subprocess: import every player of the world (rebuilt from its seed: player ids only)."""
    from halo_pipeline.emulator.synthetic import SyntheticWorld

    world = json.loads(sys.argv[sys.argv.index("--players") + 1])
    players = [type("P", (), {"xuid": x}) for x in world]
    fake = type("W", (), {"players": players})()
    seconds, ok = import_all(fake, url, __import__("pathlib").Path(data_dir), 1000.0, "2025-01-01")  # type: ignore[arg-type]
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "seconds": seconds, "ok": ok}))
    del SyntheticWorld, seed_matches


def measure(matches: int) -> dict:
    from halo_pipeline.emulator.server import Emulator

    world = world_of(matches)
    with Emulator(synthetic=world) as emulator, tempfile.TemporaryDirectory(prefix="halo-bench-mem-") as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_memory", "--child", emulator.url, str(matches), tmp,
             "--players", json.dumps([p.xuid for p in world.players])],
            cwd=REPO, capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["matches"] = len(world.match_ids())
    return figures


def run(smoke: bool = False) -> Result:
    small, large = (10, 40) if smoke else (2000, 20000)
    result = Result(f"(e) Memory: first import of {small:,} vs {large:,} matches (subprocess peak RSS)")
    with timer() as t:
        a = measure(small)
        b = a if smoke else measure(large)  # smoke: one child, the path only
    ratio = b["peak_rss_mib"] / a["peak_rss_mib"]
    result.add(f"peak RSS, {a['matches']:,} matches", a["peak_rss_mib"], "MiB")
    result.add(f"peak RSS, {b['matches']:,} matches", b["peak_rss_mib"], "MiB", a["peak_rss_mib"], ratio,
               "≤ 1.5", ratio <= 1.5 if not smoke else None)
    result.notes.append(f"imports: {a['seconds']:.1f} s and {b['seconds']:.1f} s (latency 0, no rate limit); "
                        f"succeeded: {a['ok'] and b['ok']}; total {t[0]:.0f} s with world generation")
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], int(sys.argv[i + 2]), sys.argv[i + 3])
    else:
        run("--smoke" in sys.argv).print()
