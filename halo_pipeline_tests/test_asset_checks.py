"""Each asset check passes on consistent data and fails on data broken on purpose (real Dagster runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.instance import ensure_home
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.services.state import last_syncs, stale_players
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import RAW_MATCHES_SCHEMA
from halo_pipeline.transforms._common import rows_frame
from halo_pipeline.transforms.matches import MATCH_PARTICIPANTS_SCHEMA, MEDALS_SCHEMA, TEAM_STATS_SCHEMA
from halo_pipeline_tests.analytics_data import XUID, fact, facts
from halo_pipeline_tests.support import asset, assets_of, checks

DATA_CHECKS = [c for c in checks() if "player_sync_fresh" not in {k.name for k in c.check_keys}]

MONTH = "2025-03-01"
OTHER = 2533274800000002


def _write(wh: Warehouse, *, facts_rows=None, participants=None, teams=None, medal_ids=(1,), stats_status="landed",
           month: str = MONTH):
    t = datetime.fromisoformat(month).replace(day=2, tzinfo=UTC)
    suffix = "" if month == MONTH else month  # match ids unique across months
    rows = facts_rows or [fact("a" + suffix, t), fact("b" + suffix, t + timedelta(hours=1))]
    ids = list(dict.fromkeys(r["match_id"] for r in rows))
    wh.write_partition("match_facts", XUID, month, facts(rows))
    wh.write_partition("match_participants", XUID, month, rows_frame(participants or [
        {"match_id": m, "xuid": x, "team_id": team, "team_count": 1, "kills": k, "accuracy": 50.0}
        for m in ids for x, team, k in ((XUID, 0, 10), (OTHER, 1, 7))], MATCH_PARTICIPANTS_SCHEMA))
    wh.write_partition("team_stats", XUID, month, rows_frame(teams if teams is not None else [
        {"match_id": m, "team_id": team, "kills": k} for m in ids for team, k in ((0, 10), (1, 7))],
        TEAM_STATS_SCHEMA))
    wh.write_partition("medals", XUID, month, rows_frame(
        [{"match_id": ids[0], "xuid": XUID, "name_id": n, "count": 1} for n in medal_ids], MEDALS_SCHEMA))
    wh.write_reference("medal_definitions", pl.DataFrame({"name_id": [1, 2]}, schema={"name_id": pl.Int64}))
    wh.write_partition("raw_matches", XUID, month, rows_frame(
        [{"match_id": m, "xuid": XUID, "start_time": t, "stats_status": stats_status} for m in ids],
        RAW_MATCHES_SCHEMA))


def _run(tmp_path, instance=None, months=(MONTH, MONTH), evaluations: bool = False):
    """``{check: passed}`` of every data check over ``months``; with ``evaluations``, the evaluations."""
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(XUID)])
    res = {"warehouse": WarehouseResource(data_dir=str(tmp_path)), "halo_api": HaloApiResource(api_url="http://x")}
    result = dg.materialize([asset("raw_matches"), *assets_of("stats"), *DATA_CHECKS], instance=instance,
                            resources=res, selection=dg.AssetSelection.checks(*DATA_CHECKS),
                            tags=partition_range_tags(XUID, *months))
    if evaluations:
        return result.get_asset_check_evaluations()
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_all_checks_pass_on_consistent_data(tmp_path):
    _write(Warehouse(tmp_path))
    assert _run(tmp_path) == dict.fromkeys(
        ["unique_match_id_per_owner", "owner_in_participants", "team_kills_match_participants",
         "no_null_start_time", "accuracy_in_range", "medal_names_defined", "all_matches_landed",
         "levelup_agrees_with_api"], True)  # nothing imported from LevelUp: nothing disagrees


def test_a_run_over_months_records_each_partition_s_own_outcome(tmp_path):
    """A run over several partitions (a sync, a single-run backfill) records every check once per partition,
    with that partition's outcome — never one run-wide result, never a Skipped partition — on the persistent
    instance, where the UI reads them."""
    wh = Warehouse(tmp_path)
    months = ("2025-03-01", "2025-04-01", "2025-05-01")
    for month in months:
        _write(wh, month=month, stats_status="failed" if month == "2025-04-01" else "landed")
    with dg.DagsterInstance.from_config(str(ensure_home(tmp_path / "home"))) as instance:
        _run(tmp_path, instance, (months[0], months[-1]))
        for spec in DATA_CHECKS:
            for key in spec.check_keys:
                records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
                by_partition = {r.partition: r.status.value for r in records}
                expected = {f"{m}|{XUID}": "SUCCEEDED" for m in months}
                if key.name == "all_matches_landed":
                    expected[f"2025-04-01|{XUID}"] = "FAILED"
                assert by_partition == expected, (key.name, by_partition)


T = datetime(2025, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("check, broken", [
    ("unique_match_id_per_owner", {"facts_rows": [fact("a", T), fact("a", T)]}),
    ("owner_in_participants", {"participants": [{"match_id": "a", "xuid": OTHER, "team_id": 1, "team_count": 1,
                                                 "kills": 7}]}),
    ("team_kills_match_participants", {"teams": [{"match_id": "a", "team_id": 0, "kills": 11}]}),
    ("no_null_start_time", {"facts_rows": [fact("a", T), {**fact("b", T), "start_time": None}]}),
    ("accuracy_in_range", {"facts_rows": [fact("a", T, accuracy=140.0)]}),
    ("medal_names_defined", {"medal_ids": (1, 999)}),
    ("all_matches_landed", {"stats_status": "failed"}),
])
def test_check_fails_on_broken_data(tmp_path, check, broken):
    _write(Warehouse(tmp_path), **broken)
    results = _run(tmp_path)
    assert results[check] is False
    assert all(passed for name, passed in results.items() if name != check)


def test_a_match_the_api_answers_404_for_does_not_fail_all_matches_landed(tmp_path):
    """An expired match (stats ``not_found``) can never be landed: counted in the metadata, not failed."""
    _write(Warehouse(tmp_path), stats_status="not_found")
    evaluations = _run(tmp_path, evaluations=True)
    [landed] = [e for e in evaluations if e.check_name == "all_matches_landed"]
    assert landed.passed and landed.metadata["not_found_by_the_api"].value == 2


def test_infection_matches_without_teams_are_not_compared(tmp_path):
    _write(Warehouse(tmp_path), teams=[])  # Teams: [] as in the infection recording
    assert _run(tmp_path)["team_kills_match_participants"] is True


def test_player_sync_fresh_fails_for_a_stale_player(tmp_path):
    wh = Warehouse(tmp_path)
    _write(wh)
    last = last_syncs(wh, [XUID, OTHER])
    now = datetime.now(UTC)
    assert stale_players(last, now) == {OTHER: None}              # never synced
    assert XUID in stale_players(last, now + timedelta(days=3))   # synced, but 3 days ago
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(XUID), str(OTHER)])
    res = {"warehouse": WarehouseResource(data_dir=str(tmp_path)), "halo_api": HaloApiResource(api_url="http://x")}
    result = dg.materialize([asset("raw_matches"), *checks("player_sync_fresh")], instance=instance, resources=res,
                            selection=dg.AssetSelection.checks(*checks("player_sync_fresh")))
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.check_name == "player_sync_fresh" and evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
