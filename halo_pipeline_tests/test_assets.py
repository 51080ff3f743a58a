"""Assets materialized with real partitions into a tmp_path warehouse, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import STATS_TABLES
from halo_pipeline_tests.conftest import OWNER_XUID, REPO
from halo_pipeline_tests.expected import owner_rows
from halo_pipeline_tests.support import SYNC_ASSETS, SYNC_TABLES, asset, assets_of, resources, snapshot

TABLES = SYNC_TABLES


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


@pytest.mark.slow
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
    assert dg.materialize(assets_of("reference"), resources=res).success
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
    result = dg.materialize([asset("playlist_translations")], resources=res, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "Playlist_modes_translations.json" in message and "\n" not in message.strip()


def test_definitions_load_like_dagster_definitions_validate():
    from halo_pipeline.definitions import defs as load

    defs = load()
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"sync_job", "full_sync", "rederive_job", "analytics_job", "reference_job", "catalog_job"} <= jobs
    assert {s.name for s in defs.sensors} >= {"delta_sync_sensor", "declared_players_sensor"}
    assert sorted(s.name for s in defs.schedules) == ["daily_delta_sync", "daily_people_refresh"]


def test_chunked_derivation_equals_one_pass(recorded_emulator, tmp_path, monkeypatch):
    """Stats tables are derived a few bodies at a time (flat memory), in the process pool for a large run; the
    result is the same as one pass in the step's process."""
    from halo_pipeline.services import derive, parallel

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(OWNER_XUID)])
    tags = partition_range_tags(OWNER_XUID, "2025-01-01", "2025-01-01")
    assert dg.materialize(SYNC_ASSETS, instance=instance, resources=resources(recorded_emulator.url, tmp_path),
                          tags=tags).success
    wh = Warehouse(tmp_path)
    whole = derive.derive_partition(wh, OWNER_XUID, "2025-01-01", STATS_TABLES)
    monkeypatch.setattr(derive, "CHUNK", 2)
    chunked = derive.derive_partition(wh, OWNER_XUID, "2025-01-01", STATS_TABLES)
    assert whole["match_facts"].height == 5
    for table, frame in whole.items():
        assert chunked[table].equals(frame), table

    # A large run derives in the process pool, chunk by chunk, ahead of the writes: the same frames…
    monkeypatch.setattr(derive, "POOL_MIN_MATCHES", 1)
    [(_, _, pooled)] = derive.derive_stats_tables(wh, [(OWNER_XUID, "2025-01-01")], STATS_TABLES)
    for table, frame in whole.items():
        assert pooled[table].equals(frame), table
    # … and the same partition files when the assets of a Dagster run take that path.
    files = {t: wh.read_partition(t, OWNER_XUID, "2025-01-01") for t in whole}
    submitted, submit = [], parallel.submit
    monkeypatch.setattr(parallel, "submit", lambda fn, *args: submitted.append(fn) or submit(fn, *args))
    assert dg.materialize(assets_of("stats"), instance=instance, resources={"warehouse": WarehouseResource(
        data_dir=str(tmp_path))}, tags=tags).success
    assert submitted == [parallel.derive_stats] * 3  # 5 matches, CHUNK = 2
    for table, frame in files.items():
        assert wh.read_partition(table, OWNER_XUID, "2025-01-01").equals(frame), table


@pytest.mark.system
@pytest.mark.timeout(1200)
def test_multiprocess_executor_gives_the_same_warehouse(tmp_path):
    """No state is shared between steps through the process (the stats tables of a run are one step): ``sync_job``
    run by ``dagster job execute`` with the multiprocess executor, a process per step, on a persistent instance,
    equals an in-process run of the same partitions."""
    import json
    import os
    import subprocess
    import sys

    from halo_pipeline.instance import ensure_home

    world = SyntheticWorld(seed=23, players=1, months=2, matches_per_month=12)
    xuid = world.players[0].xuid
    first, last = "2025-05-01", "2025-06-01"
    home = ensure_home(tmp_path / "home")
    with Emulator(synthetic=world) as emulator:
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        assert dg.materialize(SYNC_ASSETS, instance=instance, resources=resources(emulator.url, tmp_path / "inproc"),
                              tags=partition_range_tags(xuid, first, last)).success
        with dg.DagsterInstance.from_config(str(home)) as persistent:
            persistent.add_dynamic_partitions(PLAYERS, [str(xuid)])
        env = {**os.environ, "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url,
               "HALO_DATA_DIR": str(tmp_path / "multi")}
        dagster = str(Path(sys.executable).parent / "dagster")
        done = subprocess.run(
            [dagster, "job", "execute", "-m", "halo_pipeline_tests.multiprocess_defs", "-j", "sync_job",
             "--tags", json.dumps(partition_range_tags(xuid, first, last))],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Executing steps using multiprocess executor" in done.stdout + done.stderr  # a process per step
    got, expected = snapshot(Warehouse(tmp_path / "multi")), snapshot(Warehouse(tmp_path / "inproc"))
    assert got["match_facts"].height == len(world.match_ids(xuid))
    for table in SYNC_TABLES:
        assert got[table].equals(expected[table]), table
