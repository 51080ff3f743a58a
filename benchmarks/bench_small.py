"""(i) Small syncs, as a player runs them: ``halo-pipeline`` as a process (imports, instance, runs included)
against the emulator in its own process (a film for every matchmade match).

* ``players add`` of a new player;
* the first import of a player with 6 matches (``halo-pipeline sync``: reference data, one run, catalog);
* a no-op delta (``halo-pipeline sync`` with nothing new: one history call, no run), median of three.

Baseline in the same run: a Python process that only imports Dagster (the floor of any command that opens the
instance). Bytecode is cached, as on any install (pip compiles site-packages; our package's own ``__pycache__`` is
compiled before the first command here, as a user's first command would leave it).

Also printed, to show what bounds the first import: the wall time of each run it launched (from the instance), the
rest of the command (imports, instance, planning), and the API floor: the busiest API service's calls at
``requests_per_second`` (5), evenly spaced as the limiter spaces them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import halo_pipeline
from benchmarks._common import EmulatorProcess, Result
from halo_pipeline.api.resource import HaloApiResource
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
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DAGSTER_", "HALO_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env["HALO_API_URL"] = emulator.url
        cwd = Path(tmp)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(halo_pipeline.__file__).parent)],
                       env=env, check=True)
        floor = statistics.median(_timed([sys.executable, "-c", "import dagster"], cwd, env) for _ in range(3))
        add = _timed([*halo, "players", "add", str(xuid)], cwd, env)
        emulator.reset_counts()
        first = _timed([*halo, "sync"], cwd, env)
        by_service = emulator.counts()["by_service"]
        runs = _run_seconds(cwd / "data" / "dagster_home")
        noop = statistics.median(_timed([*halo, "sync"], cwd, env) for _ in range(1 if smoke else 3))
        opened = {**env, "DAGSTER_HOME": str(cwd / "data" / "dagster_home")}
        instance_floor = statistics.median(_timed(
            [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().get_runs(limit=1)"], cwd, opened)
            for _ in range(3))
        calls = emulator.counts()["requests"]
    result.add("python -c 'import dagster' (the floor)", floor, "s")
    result.add("players add", add, "s", floor, add / floor)
    result.add("first import, 6 matches", first, "s", floor, first / floor, "≤ 8 s", first <= 8 if not smoke else None)
    result.add("no-op delta", noop, "s", floor, noop / floor, "≤ 2 s", noop <= 2 if not smoke else None)
    result.add("python: import dagster + open this instance (the floor of a no-op)", instance_floor, "s", noop,
               instance_floor / noop)
    busiest = max(by_service, key=by_service.get)
    api_floor = (by_service[busiest] - 1) / REQUESTS_PER_SECOND
    result.add(f"first import: API floor ({busiest}: {by_service[busiest]} calls at {REQUESTS_PER_SECOND:g}/s)",
               api_floor, "s")
    result.notes.append("first import, wall time of each run: " + ", ".join(f"{job} {s:.2f} s" for job, s in runs)
                        + f"; outside the runs (imports, instance, planning): {first - sum(s for _, s in runs):.2f} s")
    result.notes.append(f"first import, calls per API service: {by_service}")
    result.notes.append(f"requests the emulator answered: {calls}; load average {os.getloadavg()[0]:.1f}")
    return result


#: The client's limit per API service (its default).
REQUESTS_PER_SECOND = HaloApiResource().requests_per_second


def _run_seconds(dagster_home: Path) -> list[tuple[str, float]]:
    """``(job, seconds from creation to end)`` of every run of the instance at ``dagster_home``, oldest first."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records()
    return [(r.dagster_run.job_name, r.end_time - r.create_timestamp.timestamp()) for r in reversed(records)]


if __name__ == "__main__":
    run("--smoke" in sys.argv).print()
