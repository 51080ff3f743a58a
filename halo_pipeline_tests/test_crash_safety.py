"""Crash safety: ``kill -9`` a materialization while it lands raw bodies, and again while it writes Parquet;
no reader then sees a partial file, the catalog still opens, and a re-run completes to the fault-free
result."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import duckdb
import polars as pl
import pytest

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline_tests.conftest import REPO
from halo_pipeline_tests.support import SYNC_ASSETS, SYNC_TABLES, asset, snapshot

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

WORLD = dict(seed=17, players=1, months=3, matches_per_month=60)
MONTHS = ("2025-04-01", "2025-06-01")

#: The child: its own emulator (same world, slowed down) and a sync of the player, or (``rederive``) the
#: derived tables re-materialized in a loop, until killed.
CHILD = textwrap.dedent("""
    import sys, dagster as dg
    from halo_pipeline.api.resource import HaloApiResource
    from halo_pipeline.storage.resource import WarehouseResource
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    from halo_pipeline.partitions import PLAYERS, partition_range_tags
    from halo_pipeline_tests.test_crash_safety import SYNC_ASSETS, WORLD, MONTHS
    data_dir, mode = sys.argv[1], sys.argv[2]
    world = SyntheticWorld(**WORLD)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world, latency_ms=15) as emu:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        res = {"halo_api": HaloApiResource(api_url=emu.url, requests_per_second=200, max_in_flight=4),
               "warehouse": WarehouseResource(data_dir=data_dir)}
        print("started", flush=True)
        while True:
            dg.materialize(SYNC_ASSETS, instance=instance, resources=res, tags=partition_range_tags(xuid, *MONTHS),
                           selection=None if mode == "sync" else dg.AssetSelection.groups("stats"))
            if mode == "sync":
                break
""")


def start_child(data_dir, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), mode], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the child and its decode pool, by the child's own process group
    proc.wait(timeout=30)


def assert_every_file_whole(data_dir) -> int:
    """Every visible file reads whole; in-flight temp files are hidden ``.*.tmp`` files."""
    checked = 0
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        if path.name.startswith("."):
            assert path.name.endswith(".tmp"), path
            continue
        if path.suffix == ".parquet":
            pl.read_parquet(path)
        elif path.name.endswith(".json.gz"):
            gzip.decompress(path.read_bytes())
        checked += 1
    return checked




@pytest.mark.timeout(300)
def test_kill_9_while_landing_and_while_writing_parquet(tmp_path):
    data = tmp_path / "data"
    wh = Warehouse(data)
    stats_dir = data / "raw" / "stats"

    # 1. Killed while landing raw bodies.
    child = start_child(data, "sync")
    try:
        assert child.stdout.readline().strip() == b"started"
        wait_for(lambda: stats_dir.exists() and sum(1 for _ in stats_dir.rglob("*.json.gz")) >= 40)
    finally:
        kill9(child)
    landed = sum(1 for _ in stats_dir.rglob("*.json.gz"))
    assert 40 <= landed < 180  # mid-way
    assert_every_file_whole(data)

    # 2. Killed while re-deriving (Parquet being written) in a loop.
    world = SyntheticWorld(**WORLD)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world) as emu:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        res = {"halo_api": HaloApiResource(api_url=emu.url, requests_per_second=200),
               "warehouse": WarehouseResource(data_dir=str(data))}
        tags = partition_range_tags(xuid, *MONTHS)
        assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res, tags=tags).success
        facts = wh.table_dir("match_facts")
        child = start_child(data, "rederive")
        try:
            assert child.stdout.readline().strip() == b"started"
            before = max(p.stat().st_mtime_ns for p in facts.rglob("data.parquet"))
            wait_for(lambda: max(p.stat().st_mtime_ns for p in facts.rglob("data.parquet")) > before)
            time.sleep(0.7)  # somewhere in the middle of the loop's writes
        finally:
            kill9(child)
        assert assert_every_file_whole(data) > 100

        # The catalog still builds and opens; a re-run completes to the fault-free result.
        assert dg.materialize([asset("warehouse_catalog")], resources=res, instance=instance).success
        with duckdb.connect(str(wh.catalog_path), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM match_facts").fetchone()[0] == len(world.match_ids(xuid))
        assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res, tags=tags).success

        reference = Warehouse(tmp_path / "reference")
        res_ref = res | {"warehouse": WarehouseResource(data_dir=str(reference.data_dir))}
        assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res_ref, tags=tags).success
    after, expected = snapshot(wh), snapshot(reference)
    for table in SYNC_TABLES:
        assert after[table].equals(expected[table]), table
    assert set(after["match_facts"]["match_id"]) == set(world.match_ids(xuid))
