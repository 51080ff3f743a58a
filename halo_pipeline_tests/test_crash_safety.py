"""Crash safety on the real, persistent instance: a real ``halo-pipeline sync`` process is stopped at a chosen
point (:mod:`halo_pipeline.pausepoint`) and killed with ``kill -9``; the test checks the interruption happened
there (the temp file, the held pool slot, the locked catalog), then runs two ``halo-pipeline sync`` at once:
both finish within a bound, the killed run is failed by recovery, nothing is left held, and the warehouse equals
a fault-free sync's — every table, ``sync_meta`` and the analytics included.

The instance is the SQLite ``DAGSTER_HOME`` that ``halo-pipeline`` creates, or PostgreSQL configured by
``deploy/dagster.yaml`` (a real server, :func:`halo_pipeline.testing.postgres_server`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from halo_pipeline import testing
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.recovery import IN_PROGRESS, claims
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.testing import cli_env, halo, kill_group, start_halo, wait_for_pause
from halo_pipeline_tests.conftest import REPO
from halo_pipeline_tests.support import assert_same_warehouse

pytestmark = [pytest.mark.system, pytest.mark.slow]  # real processes, tens of seconds each

WORLD = dict(seed=17, players=1, months=2, matches_per_month=15)
#: Two syncs started together after the kill must both end within this (seconds; a clean sync takes ≈ 10–20 on an
#: idle machine, several times that on a loaded CI runner; a wedged one never ends: issue 11's waited 26 min).
BOUND_SECONDS = 300


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(**WORLD)


@pytest.fixture(scope="module")
def emulator(world):
    with Emulator(synthetic=world) as emu:
        yield emu


@pytest.fixture(scope="module")
def fault_free(world, emulator, tmp_path_factory) -> Warehouse:
    """The warehouse of one uninterrupted ``halo-pipeline sync``."""
    data = tmp_path_factory.mktemp("fault_free") / "data"
    env = cli_env(data, emulator.url)
    assert halo("players", "add", str(world.players[0].xuid), env=env).returncode == 0
    done = halo("sync", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return Warehouse(data)


def _instance(env: dict) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _check_interrupted(point: str, pause: dict, env: dict, data: Path) -> str:
    """Assert the process really is stopped mid-way at ``point``; returns what was interrupted (for the report)."""
    if point == "before_rename":
        target = Path(pause["detail"])
        temps = list(target.parent.glob(f".{target.name}.{pause['pid']}-*.tmp"))
        assert len(temps) == 1, f"no temp file of {target} at the kill"
        if target.suffix == ".parquet":
            pl.read_parquet(temps[0])  # written whole, fsync'd, not yet renamed
        return f"temp file {temps[0].name} of {target.relative_to(data)}"
    if point == "pool_held":
        with _instance(env) as instance:
            held = [c for c in claims(instance) if c.held and c.pool == "halo_api"]
            assert len(held) == 1, held
            run = instance.get_run_by_id(held[0].run_id)
            assert run.status == dg.DagsterRunStatus.STARTED and run.tags["halo/owner_pid"] == str(pause["pid"])
        return f"pool halo_api held by run {held[0].run_id} step {held[0].step}"
    if point == "catalog_write":
        with pytest.raises(duckdb.IOException, match=f"PID {pause['pid']}"):
            duckdb.connect(pause["detail"])  # the writer holds the catalog's lock
        return "catalog being written (lock held)"
    raise AssertionError(point)


def _two_syncs_at_once(env: dict) -> list[float]:
    started = time.monotonic()
    syncs = [start_halo("sync", env=env) for _ in range(2)]
    durations = []
    for sync in syncs:
        try:
            out, err = sync.communicate(timeout=BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            for s in syncs:
                kill_group(s)
            raise AssertionError(f"a sync after the kill did not finish within {BOUND_SECONDS} s") from None
        assert sync.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
        durations.append(time.monotonic() - started)
    return durations


def crash_then_two_syncs(world: SyntheticWorld, emulator: Emulator, data: Path, env: dict, point: str) -> str:
    """Register the player, start a sync paused at ``point``, check it is stopped mid-way, ``kill -9`` it, run two
    syncs at once; returns what was interrupted."""
    assert halo("players", "add", str(world.players[0].xuid), env=env).returncode == 0
    marker = data.parent / "pause.json"
    victim = start_halo("sync", env=env, pause_at=point, marker=marker)
    try:
        pause = wait_for_pause(victim, marker)
        interrupted = _check_interrupted(point.partition("@")[0], pause, env, data)
    finally:
        kill_group(victim)
    durations = _two_syncs_at_once(env)
    print(f"{point}: interrupted {interrupted}; two syncs after the kill took {max(durations):.1f} s")

    with _instance(env) as instance:
        killed = [r for r in instance.get_runs() if r.tags.get("halo/owner_pid") == str(pause["pid"])]
        assert killed and all(r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for r in killed)
        failed = [r for r in killed if r.status == dg.DagsterRunStatus.FAILURE]
        assert len(failed) == 1, [(r.job_name, r.status) for r in killed]  # the run it was in when killed
        reasons = [e.dagster_event.message for e in instance.all_logs(
            failed[0].run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
        assert len(reasons) == 1 and "halo-pipeline recovery" in reasons[0] and f"process {pause['pid']}" in reasons[0]
        assert not instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS))
        assert not claims(instance)  # no pool slot or pending claim left
    return interrupted


def _assert_recovered(data: Path, env: dict, fault_free: Warehouse) -> None:
    wh = Warehouse(data)
    assert_same_warehouse(wh, fault_free)  # every table, sync_meta and analytics included
    assert sorted(p.name for p in (wh.root / "reports").glob("*.html")) == \
        sorted(p.name for p in (fault_free.root / "reports").glob("*.html"))
    with duckdb.connect(str(wh.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM match_facts").fetchone() == \
            (fault_free.read_table("match_facts").height,)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", [
    "before_rename@/raw/stats/",          # landing a raw body
    "before_rename@/match_facts/",        # writing a Parquet partition
    "pool_held@raw_matches",              # a step holds the halo_api pool slot
    "catalog_write",                      # the DuckDB catalog is being written
    "before_rename@/reports/",            # after sync_meta moved the watermark: the months must be replanned
])
def test_kill_9_at_a_chosen_point_then_two_syncs_equal_a_fault_free_sync(point, world, emulator, fault_free,
                                                                          tmp_path):
    data = tmp_path / "data"
    env = cli_env(data, emulator.url)
    interrupted = crash_then_two_syncs(world, emulator, data, env, point)
    _assert_recovered(data, env, fault_free)

    doctor = halo("doctor", env=env)
    if point.startswith("before_rename"):
        # The killed writer's temp files are hidden from every reader; doctor finds them, --repair deletes them.
        # One at least: Parquet partitions are written from several threads, each may hold one at the kill.
        left = re.search(r"temp files left by killed writers: (\d+)", doctor.stdout)
        assert doctor.returncode == 1 and left and int(left.group(1)) >= 1, doctor.stdout
        assert halo("doctor", "--repair", env=env).returncode == 0
        assert not list(data.rglob("*.tmp")), interrupted
        doctor = halo("doctor", env=env)
    assert doctor.returncode == 0 and "ok: nothing to repair" in doctor.stdout, doctor.stdout


@pytest.mark.timeout(600)
def test_kill_9_holding_the_pool_on_postgres(world, emulator, fault_free, tmp_path, monkeypatch):
    """The same on the PostgreSQL instance of ``deploy/dagster.yaml`` (runs, pools and claims in PostgreSQL)."""
    try:
        testing.postgres_binaries()
    except testing.Unavailable as exc:
        pytest.skip(str(exc))
    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with testing.postgres_server() as pg:
        for name, value in pg.items():
            monkeypatch.setenv(name, value)  # this process opens the instance too
        env = cli_env(data, emulator.url, home, **pg)
        crash_then_two_syncs(world, emulator, data, env, "pool_held@raw_matches")
        with _instance(env) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _assert_recovered(data, env, fault_free)


@pytest.mark.timeout(600)
def test_kill_9_at_a_random_moment_then_two_syncs():
    """Issue 11's reproduction, one try of ``benchmarks/bench_crash_recovery.py`` (run 20 with ``--tries 20``): a
    sync killed at a random moment (seeded), two syncs at once: both end, nothing held, warehouse = fault-free."""
    from benchmarks.bench_crash_recovery import loop

    seed = int(time.time()) % 1000
    results, _, _ = loop(tries=1, seed=seed, baseline=False)
    print(f"seed {seed}: {results}")
    assert len(results) == 1 and results[0]["seconds"] < BOUND_SECONDS
