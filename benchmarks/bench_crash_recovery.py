"""(k) Crash recovery: issue 11's reproduction, in a loop — a real ``halo-pipeline sync`` on a persistent
``DAGSTER_HOME`` made by ``halo-pipeline`` is killed with ``kill -9`` (its whole process group) at a random
moment, then two ``halo-pipeline sync`` are started at once. Every try must end (both syncs exit 0), with the
instance clean (no run in progress, no pool slot held) and the warehouse equal to a fault-free sync's, every
table. Before the fix a kill while a step held the ``halo_api`` pool left both syncs waiting forever.

The API is the emulator replaying ``../shared/halo_api`` (player 2535445291321133, as in the issue), or a small
synthetic player when ``../shared`` is absent. Figures: each try's time (kill → both syncs done) and the
longest; same-run baseline: two syncs started at once on a fresh data dir with no kill.

    .venv/bin/python -m benchmarks.bench_crash_recovery [--tries 20] [--seed 11]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._common import SHARED, Result

RECORDED_OWNER = 2535445291321133
#: Two syncs after a kill taking longer than this is a failure (a wedge), not a slow try.
BOUND_SECONDS = 300


def _two_syncs(env: dict) -> float:
    from halo_pipeline.testing import kill_group, start_halo

    started = time.monotonic()
    syncs = [start_halo("sync", env=env) for _ in range(2)]
    for sync in syncs:
        try:
            out, err = sync.communicate(timeout=max(1.0, BOUND_SECONDS - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            for s in syncs:
                kill_group(s)
            raise AssertionError(f"two syncs after a kill did not end within {BOUND_SECONDS} s: wedged") from None
        if sync.returncode != 0:
            raise AssertionError(f"a sync after the kill failed:\n{out[-1500:]}\n{err[-3000:]}")
    return time.monotonic() - started


def _check(env: dict, data: Path, reference: Path) -> None:
    """The instance holds no run in progress and no pool slot; the warehouse equals ``reference``'s."""
    import dagster as dg
    import polars as pl

    from halo_pipeline.recovery import IN_PROGRESS, claims
    from halo_pipeline.storage.warehouse import Warehouse
    from halo_pipeline.tables import names, schema

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert not instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)), "a run is still in progress"
        assert not claims(instance), "a pool slot or claim is still held"
    got, expected = Warehouse(data), Warehouse(reference)
    for table in names(layout="player_month") + names(layout="player") + names(layout="global"):
        left, right = (w.read_table(table, schema=schema(table)).drop(["fetched_in_run", "last_sync_at"], strict=False)
                       .sort(pl.all()) for w in (got, expected))
        assert left.equals(right), f"{table} differs from the fault-free sync's"


def loop(tries: int, seed: int = 11, log=print, baseline: bool = True) -> tuple[list[dict], float, float | None]:
    """Run ``tries`` kill-and-recover tries; returns (per try: delay before the kill, what the process was doing,
    seconds until both syncs ended), the fault-free sync's time and the baseline (two syncs, no kill; ``None``
    unless ``baseline``). Raises AssertionError when a try wedges, fails or ends with a different warehouse."""
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    from halo_pipeline.testing import cli_env, halo, kill_group, start_halo

    rng = random.Random(seed)
    recorded = (SHARED / "halo_api" / "responses").is_dir()
    world = None if recorded else SyntheticWorld(seed=17, players=1, months=2, matches_per_month=15)
    player = RECORDED_OWNER if recorded else world.players[0].xuid
    root = Path(tempfile.mkdtemp(prefix="halo-crash-"))
    with Emulator(recordings=SHARED / "halo_api" if recorded else None, synthetic=world) as emu:
        def fresh(name: str) -> tuple[dict, Path]:
            data = root / name
            env = cli_env(data, emu.url, **({"HALO_REFERENCE_DIR": str(SHARED / "reference")} if recorded else {}))
            done = halo("players", "add", str(player), env=env)
            assert done.returncode == 0, done.stderr[-2000:]
            return env, data

        env, reference = fresh("fault_free")
        started = time.monotonic()
        assert halo("sync", env=env).returncode == 0
        clean = time.monotonic() - started
        pair = None
        if baseline:
            env, data = fresh("baseline")
            pair = _two_syncs(env)
            _check(env, data, reference)
        pair_text = f"; two syncs at once, no kill: {pair:.1f} s" if pair is not None else ""
        log(f"   fault-free sync {clean:.1f} s{pair_text} "
            f"({'recorded player ' if recorded else 'synthetic player '}{player})")
        results = []
        for i in range(tries):
            env, data = fresh(f"try{i}")
            delay = rng.uniform(0.5, clean)
            victim = start_halo("sync", env=env)
            time.sleep(delay)
            with dg_instance(env) as instance:
                doing = _doing(instance)
            kill_group(victim)
            seconds = _two_syncs(env)
            _check(env, data, reference)
            results.append({"try": i + 1, "kill_after": delay, "doing": doing, "seconds": seconds})
            log(f"   try {i + 1:2d}: kill -9 after {delay:4.1f} s ({doing}); two syncs done in {seconds:.1f} s, "
                "warehouse = fault-free")
    return results, clean, pair


def dg_instance(env: dict):
    import dagster as dg

    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _doing(instance) -> str:
    """What the victim was doing at the kill: the run in progress and the pool slot it held, if any."""
    import dagster as dg

    from halo_pipeline.recovery import IN_PROGRESS, claims

    runs = instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
    held = [c.step for c in claims(instance) if c.held]
    if not runs:
        return "no run in progress: starting, planning or between runs"
    return runs[0].job_name + (f", holding halo_api for {held[0]}" if held else "")


def run(smoke: bool = False, tries: int | None = None, seed: int = 11) -> Result:
    result = Result("(k) Crash recovery: kill -9 a sync at a random moment, then two syncs at once")
    if smoke and tries is None:
        result.skipped = ("minutes of real processes; halo_pipeline_tests/test_crash_safety.py runs one try, "
                          "`python -m benchmarks.bench_crash_recovery --tries 20` the loop")
        return result
    tries = tries if tries is not None else 20
    results, clean, baseline = loop(tries, seed)
    longest = max(r["seconds"] for r in results)
    assert baseline is not None
    held = sum("holding" in r["doing"] for r in results)
    result.add("longest try (kill → both syncs done)", longest, "s", baseline, longest / baseline,
               f"every try ends, ≤ {BOUND_SECONDS} s", ok=True)
    result.add("tries (all ended, warehouse = fault-free)", len(results), "tries")
    result.add("tries killed while holding the halo_api pool", held, "tries")
    result.notes.append("per try (s): " + ", ".join(f"{r['seconds']:.1f}" for r in results)
                        + f"; fault-free single sync {clean:.1f} s")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    run(tries=args.tries, seed=args.seed).print()
