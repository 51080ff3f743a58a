"""The Dagster commands of the README, run as written from a clean checkout's layout, with nothing exported but the
emulator's URL: ``halo-pipeline`` declares its instance in ``./.env`` and ``dg``/``dagster`` commands run from the
same folder use that instance (where the registered players live). The CLI also works from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.testing import dg_dev, graphql
from halo_pipeline_tests.conftest import REPO

pytestmark = pytest.mark.system  # the CLIs as processes

BIN = Path(sys.executable).parent


def checkout(to: Path) -> Path:
    """The tracked files of the repository (what a fresh clone holds: no .env, no data) under ``to``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            target = to / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / name).read_bytes())
    return to


def run(*args: str, cwd: Path, env: dict) -> str:
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} (in {cwd}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.timeout(1200)
def test_readme_dagster_commands_from_a_fresh_checkout(tmp_path):
    world = SyntheticWorld(seed=14, players=1, months=2, matches_per_month=6)
    xuid = world.players[0].xuid
    repo = checkout(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HALO_"))}
    with Emulator(synthetic=world) as emulator:
        env["HALO_API_URL"] = emulator.url  # the only variable: which API (README: "Against the emulator")
        halo = str(BIN / "halo-pipeline")
        out = run(halo, "players", "add", str(xuid), cwd=repo, env=env)
        assert (repo / ".env").read_text().count("DAGSTER_HOME=") == 1, out
        home = Path((repo / ".env").read_text().split("DAGSTER_HOME=")[1].strip())
        assert home == (repo / "data" / "dagster_home").resolve()

        # The CLI from another folder (reference files are package data), on the same data and instance.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        run(halo, "sync", cwd=elsewhere, env={**env, "HALO_DATA_DIR": str(repo / "data"), "DAGSTER_HOME": str(home)})
        wh = Warehouse(repo / "data")
        assert wh.read_table("match_facts").height == len(world.match_ids(xuid))

        first, last = "2025-05-01", "2025-06-01"
        emulator.reset_counts()
        commands = [
            [str(BIN / "dg"), "launch", "--assets", "match_facts", "--partition", f"{last}|{xuid}"],
            [str(BIN / "dg"), "launch", "--assets", "group:stats", "--partition-range",
             f"{first}|{xuid}...{last}|{xuid}"],
            [str(BIN / "dagster"), "asset", "materialize", "-m", "halo_pipeline.definitions", "--select",
             "match_facts", "--partition", f"{last}|{xuid}"],
            [str(BIN / "dagster"), "asset", "materialize", "-m", "halo_pipeline.definitions", "--select",
             "group:stats", "--partition-range", f"{first}|{xuid}...{last}|{xuid}"],
            # A month without matches is a real partition: it materializes, empty, with zero API calls.
            [str(BIN / "dagster"), "asset", "materialize", "-m", "halo_pipeline.definitions", "--select",
             "match_history,raw_matches,match_facts", "--partition", f"2024-10-01|{xuid}"],
            [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "rederive_job", "--partitions",
             f"{first}|{xuid},{last}|{xuid}", "--noprompt"],
            [str(BIN / "dagster"), "sensor", "start", "delta_sync_sensor", "-w", "workspace.yaml"],
            [str(BIN / "dagster"), "schedule", "start", "daily_delta_sync", "-w", "workspace.yaml"],
        ]
        for command in commands:
            run(*command, cwd=repo, env=env)
        assert sum(emulator.counts()["requests"].values()) == 0, emulator.counts()
        assert wh.read_partition("match_facts", xuid, "2024-10-01").is_empty()

        with dg.DagsterInstance.from_config(str(home)) as instance:  # everything reached the one instance
            assert instance.get_dynamic_partitions(PLAYERS) == [str(xuid)]
            assert len(instance.get_backfills()) == 1  # `dagster job backfill`: its runs wait for the daemon
            materialized = instance.get_materialized_partitions(dg.AssetKey("match_facts"))
            assert {f"{last}|{xuid}", f"2024-10-01|{xuid}"} <= materialized
            sensors = {s.name: s.status.value for s in instance.all_instigator_state()}
            assert sensors.get("delta_sync_sensor") == "RUNNING" and sensors.get("daily_delta_sync") == "RUNNING"

        # The UI: `dg dev` (webserver + daemon) on the same instance sees the registered player.
        with dg_dev(repo, env) as url:
            found = graphql(url, "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode "
                                 "{ partitionKeysByDimension { name partitionKeys } } } }",
                            {"key": {"path": ["match_facts"]}})
            dims = {d["name"]: d["partitionKeys"] for d in found["assetNodeOrError"]["partitionKeysByDimension"]}
            assert dims["player"] == [str(xuid)]
