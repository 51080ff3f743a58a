"""The real dagster-daemon with the delta-sync sensor on syncs a synthetic player through the emulator;
the daemon is started in its own process group and stopped by that pid."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline_tests.conftest import start_daemon_with_sensor, stop_process_group

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(400)
def test_daemon_sensor_syncs_a_player(tmp_path):
    world = SyntheticWorld(seed=21, players=1, months=2, matches_per_month=8)
    xuid = world.players[0].xuid
    home = ensure_home(tmp_path / "dagster_home")
    data = tmp_path / "data"
    with Emulator(synthetic=world) as emulator:
        env = {**os.environ, "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url, "HALO_DATA_DIR": str(data),
               "HALO_REFERENCE_DIR": str(DEFAULT_REFERENCE_DIR)}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        daemon = start_daemon_with_sensor(env)
        try:
            wh = Warehouse(data)
            expected = set(world.match_ids(xuid))
            deadline = time.monotonic() + 300
            landed: set[str] = set()
            unfinished = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                          dg.DagsterRunStatus.STARTED]
            while time.monotonic() < deadline:
                if wh.partition_files("sync_meta"):
                    landed = set(wh.read_table("match_facts", xuid)["match_id"].to_list())
                    with dg.DagsterInstance.from_config(str(home)) as instance:
                        running = instance.get_runs_count(dg.RunsFilter(statuses=unfinished))
                    if landed == expected and not running:
                        break  # every match synced, and no run (sync or follow-up) is still going
                time.sleep(3)
            assert landed == expected, f"{len(landed)}/{len(expected)} matches synced by the daemon's runs"
        finally:
            stop_process_group(daemon)
        assert daemon.returncode is not None
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="sync_job"))
            assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            assert all(r.tags.get("dagster/sensor_name") == "delta_sync_sensor" for r in runs)
