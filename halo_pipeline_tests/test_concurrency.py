"""Concurrency across processes: two ``halo-pipeline sync`` processes and a run launched by the real
``dagster-daemon`` (from the run queue) at once, on one persistent instance and one warehouse, while another
process holds the serving store (``halo.duckdb``) open — the same final warehouse as a serial sync, no writer
waiting for the reader (updates write another slot), none lost, none duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.emulator.wire import parse_time
from halo_pipeline.instance import ensure_home
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.catalog import build_catalog
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.testing import cli_env, halo, start_halo
from halo_pipeline_tests.conftest import REPO, stop_process_group
from halo_pipeline_tests.support import assert_same_warehouse

pytestmark = [pytest.mark.system, pytest.mark.slow]  # real processes and the real daemon

#: A reader holding the serving store's published snapshot open read-only until ``argv[2]`` is deleted.
READER = textwrap.dedent("""
    import os, sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    queries = 0
    print(os.getpid(), flush=True)
    deadline = time.monotonic() + 900  # the test's own timeout ends it before
    while os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
        con.execute("SELECT count(*) FROM match_facts").fetchone()
        queries += 1
        time.sleep(0.05)
    con.close()
    print(queries, flush=True)
""")
LOCKED = "Could not set lock"  # DuckDB's refusal of a conflicting open


def _collect(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(600)
def test_two_cli_syncs_and_a_daemon_run_with_a_reader_holding_the_catalog_equal_a_serial_sync(tmp_path):
    world = SyntheticWorld(seed=31, players=3, months=2, matches_per_month=20)
    a, b, c = (p.xuid for p in world.players)
    assert set(world.match_ids(a)) & set(world.match_ids(b)), "players must share matches"
    bin_dir = Path(sys.executable).parent
    started = time.monotonic()
    with Emulator(synthetic=world) as emu:
        data, serial = tmp_path / "parallel", tmp_path / "serial"
        env, env_serial = cli_env(data, emu.url), cli_env(serial, emu.url)
        for home in (env["DAGSTER_HOME"], env_serial["DAGSTER_HOME"]):
            with dg.DagsterInstance.from_config(str(ensure_home(Path(home)))) as instance:
                instance.add_dynamic_partitions(PLAYERS, [str(x) for x in (a, b, c)])
        daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        reader = None
        try:
            assert halo("sync", env=env_serial).returncode == 0  # the serial reference, while the daemon starts
            print(f"serial sync done at {time.monotonic() - started:.0f} s")
            wh = Warehouse(data)
            build_catalog(wh)  # an (empty) serving store for the reader to hold
            hold = tmp_path / "hold"
            hold.touch()
            reader = subprocess.Popen([sys.executable, "-c", READER, str(wh.catalog_path), str(hold)],
                                      stdout=subprocess.PIPE, text=True)
            assert reader.stdout.readline().strip().isdigit()  # connected
            syncs = [start_halo("sync", env=env) for _ in range(2)]
            errors: list[list[str]] = [[], []]
            threads = [_collect(sync.stderr, lines) for sync, lines in zip(syncs, errors, strict=True)]
            # Meanwhile the daemon's run: player c's months, through the run queue (QueuedRunCoordinator, then
            # DefaultRunLauncher in the daemon's code server).
            months = _months(world, c)
            tags = partition_range_tags(c, months[0], months[-1]) | {"halo/player": str(c)}
            launched = subprocess.run([str(bin_dir / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j",
                                       "sync_job", "--tags", json.dumps(tags)], cwd=REPO, env=env,
                                      capture_output=True, text=True, timeout=180)
            assert launched.returncode == 0, launched.stderr[-3000:]
            print(f"syncs started, daemon run queued at {time.monotonic() - started:.0f} s")
            # The serving store never makes a writer wait for a reader: both syncs finish (each publishing new
            # snapshots) while the reader keeps querying the snapshot it opened.
            for sync, thread in zip(syncs, threads, strict=True):
                out = sync.stdout.read()
                sync.wait(timeout=400)
                thread.join(timeout=10)
                assert sync.returncode == 0, out[-2000:] + "".join(errors[0] + errors[1])[-4000:]
            assert reader.poll() is None, "the reader lost its connection"
            hold.unlink()
            reader_out, _ = reader.communicate(timeout=60)
            assert reader.returncode == 0 and int(reader_out.strip()) > 0
            assert not [line for e in errors for line in e if LOCKED in line], "a writer waited for the reader"

            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    runs = instance.get_runs()
                    if all(r.is_finished for r in runs):
                        break
                    time.sleep(1)
                daemon_runs = [r for r in runs if r.job_name == "sync_job" and "halo/owner_pid" in r.tags
                               and r.tags.get("halo/player") == str(c) and r.status == dg.DagsterRunStatus.SUCCESS
                               and r.tags.get("halo/sync_key") is None]
                assert all(r.is_finished for r in runs), [(r.job_name, r.status) for r in runs]
                assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [
                    (r.job_name, r.status) for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
                assert daemon_runs, "the daemon did not launch and finish player c's run"
            print(f"all runs finished at {time.monotonic() - started:.0f} s")
        finally:
            stop_process_group(daemon)
            if reader is not None and reader.poll() is None:
                reader.kill()

    assert_same_warehouse(wh, Warehouse(serial))  # every table, sync_meta and the analytics included
    with duckdb.connect(str(wh.catalog_path), read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT (owner_xuid, match_id)) FROM match_facts").fetchone()
    assert rows == (sum(len(world.match_ids(x)) for x in (a, b, c)),) * 2  # none lost, none duplicated


def _months(world: SyntheticWorld, xuid: int) -> list[str]:
    """``YYYY-MM-01`` of the months holding ``xuid``'s matches, ascending."""
    return sorted({f"{parse_time(orjson.loads(world.match_stats_body(m))['MatchInfo']['StartTime']):%Y-%m}-01"
                   for m in world.match_ids(xuid)})

