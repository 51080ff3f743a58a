"""Concurrency: two runs on the same partitions at once, two players sharing matches synced at once, and the
DuckDB catalog refreshed (by this process and by another one) while they write — the same final warehouse
as serial runs, and a catalog file that opens."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import dagster as dg
import duckdb
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

MONTHS = ("2025-05-01", "2025-06-01")

#: Another process refreshing the same catalog file in a loop (DuckDB: one writer process at a time).
REFRESHER = textwrap.dedent("""
    import sys, time, dagster as dg
    from halo_pipeline.storage.resource import WarehouseResource
    from halo_pipeline_tests.support import asset
    res = {"warehouse": WarehouseResource(data_dir=sys.argv[1])}
    deadline = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < deadline:
        assert dg.materialize([asset("warehouse_catalog")], resources=res).success
        n += 1
    print(n)
""")




@pytest.mark.timeout(300)
def test_parallel_runs_equal_serial_runs(tmp_path):
    world = SyntheticWorld(seed=31, players=2, months=2, matches_per_month=40)
    a, b = (p.xuid for p in world.players)
    assert set(world.match_ids(a)) & set(world.match_ids(b)), "the players must share matches"

    with Emulator(synthetic=world, latency_ms=5) as emu:
        def resources(data_dir) -> dict:
            return {"halo_api": HaloApiResource(api_url=emu.url, requests_per_second=300),
                    "warehouse": WarehouseResource(data_dir=str(data_dir))}

        def sync(data_dir, xuid, instance, errors: list) -> None:
            try:
                assert dg.materialize(SYNC_ASSETS, instance=instance, resources=resources(data_dir),
                                      tags=partition_range_tags(xuid, *MONTHS)).success
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        serial = tmp_path / "serial"
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(a), str(b)])
        for xuid in (a, b):
            sync(serial, xuid, instance, errors := [])
            assert not errors

        parallel = tmp_path / "parallel"
        parallel.mkdir()
        refresher = subprocess.Popen([sys.executable, "-c", REFRESHER, str(parallel), "8"], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errors: list = []
        # Same partitions twice (player a), and the player sharing matches with a (b), all at once, while this
        # process refreshes the catalog too.
        threads = []
        for xuid in (a, a, b):
            own = dg.DagsterInstance.ephemeral()  # one per run, as separate processes would have
            own.add_dynamic_partitions(PLAYERS, [str(a), str(b)])
            threads.append(threading.Thread(target=sync, args=(parallel, xuid, own, errors)))
        for thread in threads:
            thread.start()
        catalog_runs = 0
        while any(t.is_alive() for t in threads):
            assert dg.materialize([asset("warehouse_catalog")], resources=resources(parallel)).success
            catalog_runs += 1
        for t in threads:
            t.join()
        out, err = refresher.communicate(timeout=120)
        assert refresher.returncode == 0, err[-2000:]
        assert not errors, errors
        assert catalog_runs >= 1 and int(out.strip()) >= 1

    got, expected = snapshot(Warehouse(parallel)), snapshot(Warehouse(serial))
    for table in SYNC_TABLES:
        assert got[table].equals(expected[table]), table
    catalog = {"warehouse": WarehouseResource(data_dir=str(parallel))}
    assert dg.materialize([asset("warehouse_catalog")], resources=catalog).success
    with duckdb.connect(str(Warehouse(parallel).catalog_path), read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT (owner_xuid, match_id)) FROM match_facts").fetchone()
    assert rows == (len(world.match_ids(a)) + len(world.match_ids(b)),) * 2  # none lost, none duplicated
