"""What a user sees in the Dagster UI, read through the real ``dagster-webserver``'s GraphQL API (the queries the UI
sends) on the persistent instance ``halo-pipeline`` makes, after a sync through the CLI:

* every materialized partition of every asset that has checks has each check's outcome for THAT partition
  (Passed, or Failed where the data is wrong), never Skipped, never missing;
* each partition's ``dagster/row_count`` is the rows of its own Parquet file, and its preview shows its own rows;
* a partition backfill launched with ``launchPartitionBackfill`` over every month of a player (what the UI's
  "Materialize all" sends), run by the real daemon, ends with no failed run and zero stats API calls (every match
  is landed), and the player then has no missing partition up to this month.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home
from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.partitions import split_key
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.testing import (
    ASSET_STATUS_QUERY,
    BACKFILL_QUERY,
    LAUNCH_BACKFILL_MUTATION,
    PARTITION_EVENTS_QUERY,
    dagster_daemon,
    dagster_webserver,
    graphql,
)
from halo_pipeline_tests.conftest import REPO
from halo_pipeline_tests.support import player_month_assets

pytestmark = pytest.mark.system  # real webserver, daemon and CLI processes

WORKSPACE = REPO / "workspace.yaml"
CHECKED = ("raw_matches", "match_facts", "team_stats", "medals")
#: Every asset partitioned by player × month (the people and reference families are not).
PARTITIONED = [key.to_user_string() for key in player_month_assets()]


def cli(*args: str, env: dict, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "halo_pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"halo-pipeline {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _keys(ranges: list[dict], field: str) -> set[str]:
    """``month|player`` keys of a multi-partition status (months are the primary, time dimension)."""
    out = set()
    for r in ranges:
        months = Month(r["primaryDimStartKey"]).until(r["primaryDimEndKey"])
        out |= {f"{m}|{player}" for m in months for player in r["secondaryDim"].get(field, [])}
    return out


def statuses(url: str, asset: str) -> dict:
    node = graphql(url, ASSET_STATUS_QUERY, {"key": {"path": [asset]}})["assetNodeOrError"]
    ranges = node["assetPartitionStatuses"]["ranges"]
    out = {"materialized": _keys(ranges, "materializedPartitions"), "failed": _keys(ranges, "failedPartitions"),
           "checks": {}}
    for check in node["assetChecksOrError"].get("checks", []):
        if check["partitionStatuses"] is None:
            continue  # an unpartitioned check (player_sync_fresh)
        check_ranges = check["partitionStatuses"]["ranges"]
        out["checks"][check["name"]] = {status: _keys(check_ranges, f"{status}Partitions") for status in
                                        ("succeeded", "failed", "inProgress", "skipped", "executionFailed")}
    return out


def wait_for_backfill(url: str, backfill_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        backfill = graphql(url, BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return backfill
        assert time.monotonic() < deadline, f"backfill still {backfill['status']}"
        time.sleep(2)


@pytest.mark.timeout(1200)
def test_the_ui_shows_every_partition_s_checks_and_figures_and_backfills_every_month(tmp_path):
    world = SyntheticWorld(seed=12, players=2, months=2, matches_per_month=8)
    xuids = [p.xuid for p in world.players]
    home, data = ensure_home(tmp_path / "home"), tmp_path / "data"
    with Emulator(synthetic=world) as emulator:
        env = {**os.environ, "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url, "HALO_DATA_DIR": str(data)}
        for xuid in xuids:
            cli("players", "add", str(xuid), env=env, cwd=tmp_path)
        cli("sync", env=env, cwd=tmp_path)
        wh = Warehouse(data)
        with dagster_webserver(WORKSPACE, env, tmp_path) as url:
            # 1. Checks per partition: Passed/Failed for every materialized partition, never Skipped.
            for asset in CHECKED:
                seen = statuses(url, asset)
                assert seen["materialized"] and not seen["failed"], asset
                assert seen["checks"], f"{asset} has no partitioned check"
                for name, by_status in seen["checks"].items():
                    evaluated = by_status["succeeded"] | by_status["failed"]
                    assert evaluated == seen["materialized"], (asset, name, evaluated ^ seen["materialized"])
                    assert not (by_status["skipped"] | by_status["inProgress"] | by_status["executionFailed"])
                    assert not by_status["failed"], (asset, name, by_status["failed"])  # consistent data

            # 2. Each partition's own row count and preview.
            for asset in ("raw_matches", "match_facts", "highlight_events", "sessions"):
                keys = sorted(statuses(url, asset)["materialized"])
                events = graphql(url, PARTITION_EVENTS_QUERY, {"key": {"path": [asset]}, "partitions": keys})
                latest: dict[str, dict] = {}
                for event in events["assetOrError"]["assetMaterializations"]:
                    if event["partition"] not in latest or float(event["timestamp"]) > float(
                            latest[event["partition"]]["timestamp"]):
                        latest[event["partition"]] = event
                assert set(latest) == set(keys), asset
                for key, event in latest.items():
                    entries = {e["label"]: e for e in event["metadataEntries"]}
                    xuid, month = split_key(key)
                    rows = wh.read_partition(asset, xuid, month)
                    assert entries["dagster/row_count"]["intValue"] == rows.height, (asset, key)
                    preview = entries["preview"]["mdStr"]
                    if "match_id" in rows.columns and rows.height:  # every row shown is one of this partition's
                        mine = set(rows["match_id"])
                        lines = [line for line in preview.splitlines()[2:] if line.startswith("|")]
                        assert lines and all({c.strip() for c in line.split("|")} & mine for line in lines), \
                            (asset, key, preview)
                    assert all(len(line) < 2000 for line in preview.splitlines())
                    assert str(xuid) in entries["player"]["text"]

            # 3. "Materialize all" of one player's months, run by the daemon: no failure, no stats call.
            player = xuids[0]
            keys = [f"{m}|{player}" for m in FIRST_MONTH.until(Month.current())]
            emulator.reset_counts()
            with dagster_daemon(WORKSPACE, env, tmp_path):
                launched = graphql(url, LAUNCH_BACKFILL_MUTATION, {"params": {
                    "partitionNames": keys, "assetSelection": [{"path": [a]} for a in PARTITIONED]}})
                launched = launched["launchPartitionBackfill"]
                assert launched["__typename"] == "LaunchBackfillSuccess", launched
                backfill = wait_for_backfill(url, launched["backfillId"])
            assert backfill["status"] == "COMPLETED_SUCCESS", backfill
            assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill["runs"]
            assert emulator.counts()["requests"].get("match_stats", 0) == 0, emulator.counts()
            for asset in PARTITIONED:
                mine = {k for k in statuses(url, asset)["materialized"] if k.endswith(f"|{player}")}
                assert mine == set(keys), (asset, sorted(set(keys) - mine)[:5])
