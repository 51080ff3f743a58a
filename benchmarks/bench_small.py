"""(i) Small syncs, as a player runs them: ``halo-pipeline`` as a process (imports, instance, runs included)
against the emulator in its own process (a film for every matchmade match).

* ``players add`` of a new player;
* the first import of a player with 6 matches (``halo-pipeline sync``: reference data, one run, catalog);
* a no-op delta (``halo-pipeline sync`` with nothing new: one history call, no run), median of three.

Baseline in the same run: a Python process that only imports Dagster (the floor of any command that opens the
instance).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import EmulatorProcess, Result
from halo_pipeline.emulator.synthetic import SyntheticWorld

WORLD = {"seed": 42, "players": 1, "months": 1, "matches_per_month": 6}


def _timed(args: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[-2:])} failed: {done.stderr[-2000:]}")
    return seconds


def run(smoke: bool = False) -> Result:
    result = Result("(i) Small syncs: halo-pipeline as a process, 6-match player")
    halo = [sys.executable, "-W", "ignore", "-m", "halo_pipeline.cli"]
    xuid = SyntheticWorld(**WORLD).players[0].xuid
    with EmulatorProcess(**WORLD) as emulator, tempfile.TemporaryDirectory(prefix="halo-bench-small-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HALO_"))}
        env["HALO_API_URL"] = emulator.url
        cwd = Path(tmp)
        floor = statistics.median(_timed([sys.executable, "-c", "import dagster"], cwd, env) for _ in range(3))
        add = _timed([*halo, "players", "add", str(xuid)], cwd, env)
        first = _timed([*halo, "sync"], cwd, env)
        noop = statistics.median(_timed([*halo, "sync"], cwd, env) for _ in range(1 if smoke else 3))
        calls = emulator.counts()["requests"]
    result.add("python -c 'import dagster' (the floor)", floor, "s")
    result.add("players add", add, "s", floor, add / floor)
    result.add("first import, 6 matches", first, "s", floor, first / floor, "≤ 8 s", first <= 8 if not smoke else None)
    result.add("no-op delta", noop, "s", floor, noop / floor, "≤ 2 s", noop <= 2 if not smoke else None)
    result.notes.append(f"requests the emulator answered: {calls}; load average {os.getloadavg()[0]:.1f}")
    return result


if __name__ == "__main__":
    run("--smoke" in sys.argv).print()
