"""Assets materialized with real partitions into a tmp_path warehouse, against the emulator."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from halo_pipeline.api.resource import HaloApiResource, WarehouseResource
from halo_pipeline.defs.matches.assets import match_history, raw_matches
from halo_pipeline.defs.reference.assets import medal_definitions, playlist_modes
from halo_pipeline.defs.stats.assets import STATS_ASSETS
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline_tests.conftest import OWNER_XUID
from halo_pipeline_tests.expected import owner_rows

SYNC_ASSETS = [match_history, raw_matches, *STATS_ASSETS]
TABLES = ["match_history", "raw_matches", *(a.key.path[-1] for a in STATS_ASSETS)]


def resources(url: str, data_dir, reference_dir=None) -> dict:
    return {"halo_api": HaloApiResource(api_url=url),
            "warehouse": WarehouseResource(data_dir=str(data_dir), reference_dir=str(reference_dir or ""))}


def snapshot(wh: Warehouse) -> dict[str, pl.DataFrame]:
    out = {}
    for table in TABLES:
        df = wh.read_table(table)
        out[table] = df.drop("fetched_in_run", strict=False).sort(pl.all())
    return out


def test_range_of_months_in_one_run_then_zero_api_rederive(recorded_emulator, recorded_stats, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(OWNER_XUID)])
    res = resources(recorded_emulator.url, tmp_path)
    tags = partition_range_tags(OWNER_XUID, "2024-08-01", "2025-01-01")
    assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res, tags=tags).success

    wh = Warehouse(tmp_path)
    facts = wh.read_table("match_facts")
    expected = owner_rows(recorded_stats.values(), OWNER_XUID)
    assert facts.height == 8 and set(facts["match_id"]) == set(expected)
    assert facts["match_id"].is_unique().all()
    assert len(wh.partition_files("match_facts", OWNER_XUID)) == 6  # 2024-08 … 2025-01, empty months too
    assert wh.read_partition("match_facts", OWNER_XUID, "2024-09-01").height == 2
    assert facts.schema["start_time"] == pl.Datetime("us", "UTC") and facts.schema["outcome"] == pl.Int8
    index = wh.read_table("raw_matches")
    assert set(index["stats_status"]) == {"landed"} and index["spnkr_parse_ok"].all()
    assert set(index.filter(pl.col("match_id") == "63391382-6b88-43f9-9ff4-6313404c419c")["film_status"]) == {"landed"}

    # Materialization events per partition, with row counts and a preview.
    events = instance.fetch_materializations(dg.AssetKey("match_facts"), limit=100).records
    assert len(events) == 6
    assert "preview" in events[0].asset_materialization.metadata

    before = snapshot(wh)
    recorded_emulator.reset_counts()
    assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res, tags=tags,
                          selection=dg.AssetSelection.groups("stats")).success
    assert sum(recorded_emulator.counts()["requests"].values()) == 0
    after = snapshot(wh)
    for table in TABLES:
        assert after[table].equals(before[table]), table


def test_shared_matches_are_fetched_once(tmp_path):
    world = SyntheticWorld(seed=42, players=2, months=1, matches_per_month=30)
    a, b = (p.xuid for p in world.players)
    shared = set(world.match_ids(a)) & set(world.match_ids(b))
    assert shared, "the synthetic world must hold shared matches"
    with Emulator(synthetic=world) as emulator:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(a), str(b)])
        res = resources(emulator.url, tmp_path)
        wh = Warehouse(tmp_path)
        for xuid in (a, b):
            months = sorted(_months(world, xuid))
            assert dg.materialize(SYNC_ASSETS, instance=instance, resources=res,
                                  tags=partition_range_tags(xuid, months[0], months[-1])).success
        stats_calls = emulator.counts()["requests"]["match_stats"]
    assert stats_calls == len(set(world.match_ids(a)) | set(world.match_ids(b)))
    for xuid in (a, b):
        facts = wh.read_table("match_facts", xuid)
        assert set(facts["match_id"]) == set(world.match_ids(xuid))
        participants = wh.read_table("match_participants", xuid)
        assert xuid in set(participants["xuid"].to_list())


def _months(world: SyntheticWorld, xuid: int) -> set[str]:
    from halo_pipeline.emulator.wire import parse_time

    out = set()
    for mid in world.match_ids(xuid):
        start = parse_time(json.loads(world.match_stats_body(mid))["MatchInfo"]["StartTime"])
        out.add(f"{start:%Y-%m}-01")
    return out


def test_reference_assets_from_shared(recorded_emulator, reference_dir, tmp_path):
    res = resources(recorded_emulator.url, tmp_path, reference_dir)
    assert dg.materialize([playlist_modes, medal_definitions], resources=res).success
    wh = Warehouse(tmp_path)
    assert wh.read_reference("playlist_translations").height == 14
    assert wh.read_reference("game_mode_translations").height == 313
    assert wh.read_reference("mode_categories").height == 16
    medals = wh.read_reference("medal_definitions")
    assert medals["name_id"].is_unique().all() and medals.height >= 151


def test_malformed_reference_file_fails_with_one_line(recorded_emulator, tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "Playlist_modes_translations.json").write_text('{"playlists": [], "modes": [}')
    res = resources(recorded_emulator.url, tmp_path / "data", folder)
    result = dg.materialize([playlist_modes], resources=res, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    message = failure.step_failure_data.error.message
    assert "Playlist_modes_translations.json" in message and "\n" not in message.strip()


def test_definitions_load_like_dagster_definitions_validate():
    from halo_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"sync_job", "full_sync", "rederive_job", "analytics_job", "reference_job", "catalog_job"} <= jobs
    assert {s.name for s in defs.sensors} >= {"delta_sync_sensor", "declared_players_sensor"}
    assert [s.name for s in defs.schedules] == ["daily_delta_sync"]


def test_chunked_derivation_equals_one_pass(recorded_emulator, tmp_path, monkeypatch):
    """Stats tables are derived a few bodies at a time (flat memory), in the process pool for a large run; the
    result is the same as one pass in the step's process."""
    from halo_pipeline.defs.stats import single_pass

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(OWNER_XUID)])
    tags = partition_range_tags(OWNER_XUID, "2025-01-01", "2025-01-01")
    assert dg.materialize(SYNC_ASSETS, instance=instance, resources=resources(recorded_emulator.url, tmp_path),
                          tags=tags).success
    wh = Warehouse(tmp_path)
    whole = single_pass.derive_chunked(wh, OWNER_XUID, "2025-01-01", single_pass.TABLES)
    monkeypatch.setattr(single_pass, "CHUNK", 2)
    chunked = single_pass.derive_chunked(wh, OWNER_XUID, "2025-01-01", single_pass.TABLES)
    assert whole["match_facts"].height == 5
    for table, frame in whole.items():
        assert chunked[table].equals(frame), table

    # A large run derives in the process pool, chunk by chunk, ahead of the steps: the same frames…
    monkeypatch.setattr(single_pass, "POOL_MIN_MATCHES", 1)
    with single_pass.run_scope("pooled-run", None):
        assert single_pass.prefetch(wh, [(OWNER_XUID, "2025-01-01")]) == 5
        pooled = {table: single_pass.stats_table(wh, OWNER_XUID, "2025-01-01", table) for table in whole}
    for table, frame in whole.items():
        assert pooled[table].equals(frame), table
    # … and the same partition files when the assets of a Dagster run take that path.
    from halo_pipeline import parallel

    files = {t: wh.read_partition(t, OWNER_XUID, "2025-01-01") for t in whole}
    submitted, submit = [], parallel.submit
    monkeypatch.setattr(parallel, "submit", lambda fn, *args: submitted.append(fn) or submit(fn, *args))
    assert dg.materialize(STATS_ASSETS, instance=instance, resources={"warehouse": WarehouseResource(
        data_dir=str(tmp_path))}, tags=tags).success
    assert submitted == [parallel.derive_stats] * 3  # 5 matches, CHUNK = 2
    for table, frame in files.items():
        assert wh.read_partition(table, OWNER_XUID, "2025-01-01").equals(frame), table
