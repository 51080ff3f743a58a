"""The README's first command, ``halo-pipeline demo``, as a user runs it: a process in an empty folder with no
``HALO_*`` / ``DAGSTER_*`` variables (a fresh machine), on a smaller synthetic world than its defaults (the same
code path: emulator, registration, sync of every month, images, catalog, summary)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.partitions import PLAYERS, partition_key
from halo_pipeline.testing import HALO_CLI
from halo_pipeline_tests.support import player_month_assets

pytestmark = [pytest.mark.system, pytest.mark.slow]

WORLD = {"players": 1, "months": 2, "matches_per_month": 4, "seed": 5}


@pytest.mark.timeout(900)
def test_demo_in_an_empty_folder_materializes_every_partition_and_reports_no_failure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "DAGSTER_"))}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in WORLD.items()]
    done = subprocess.run([str(HALO_CLI), "demo", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failures: none" in done.stdout, done.stdout[-3000:]
    home = tmp_path / "data" / "dagster_home"
    assert f"DAGSTER_HOME={home}" in (tmp_path / ".env").read_text()  # dg / dagster commands here find it

    world = SyntheticWorld(seed=WORLD["seed"], players=WORLD["players"], months=WORLD["months"],
                           matches_per_month=WORLD["matches_per_month"])
    keys = {str(partition_key(p.xuid, m)) for p in world.players for m in FIRST_MONTH.until(Month.current())}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert sorted(instance.get_dynamic_partitions(PLAYERS)) == sorted(str(p.xuid) for p in world.players)
        for asset in player_month_assets():
            missing = keys - instance.get_materialized_partitions(asset)
            assert not missing, (asset.to_user_string(), sorted(missing)[:5])
    assert (tmp_path / "data" / "warehouse" / "halo.duckdb").exists()
