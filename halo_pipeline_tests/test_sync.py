"""Sync orchestration: delta-sync sensor ticks (ephemeral instance) against the emulator, gap-free retries,
players, backfills with zero API calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.definitions import defs as load_defs
from halo_pipeline.defs.sync.requests import PLAYER_TAG
from halo_pipeline.defs.sync.sensors import declared_players_sensor, delta_sync_sensor
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.ids import InvalidInput
from halo_pipeline.instance import add_player, registered, remove_player
from halo_pipeline.partitions import PLAYERS, partition_range_of, partition_range_tags
from halo_pipeline.runner import QUIET, run_backfill, sync_players
from halo_pipeline.services.backfill import plan_backfill
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline.tables import names

defs = load_defs()
ASSET_NAMES = {key.to_user_string() for key in defs.resolve_all_asset_keys()}

REPO = Path(__file__).resolve().parents[1]
TABLES = names(group="matches") + names(group="stats")
RUN_SPECIFIC = ["fetched_in_run"]


def warehouse_tables(data_dir: Path) -> dict[str, pl.DataFrame]:
    wh = Warehouse(data_dir)
    out = {}
    for table in TABLES:
        df = wh.read_table(table, schema={"match_id": pl.Utf8})
        out[table] = df.drop(RUN_SPECIFIC, strict=False).sort(pl.all())
    return out


def assert_same_warehouse(a: Path, b: Path) -> None:
    left, right = warehouse_tables(a), warehouse_tables(b)
    for table in TABLES:
        assert left[table].equals(right[table]), f"{table} differs"


def requested_partitions(result: dg.SensorResult) -> set[str]:
    keys = set()
    for request in result.run_requests or []:
        xuid, first, last = partition_range_of(request.tags)
        keys |= {f"{m}|{xuid}" for m in first.until(last)}
    return keys


def backfill_plan(instance: dg.DagsterInstance, wh: Warehouse, *args, **kwargs):
    """:func:`plan_backfill` against the instance's registered players and the code location's assets."""
    return plan_backfill(wh, instance.get_dynamic_partitions(PLAYERS), ASSET_NAMES, *args, **kwargs)


def month_keys(world: SyntheticWorld, xuid: int, ids: list[str] | None = None) -> set[str]:
    import orjson

    out = set()
    for mid in ids if ids is not None else world.match_ids(xuid):
        start = datetime.fromisoformat(orjson.loads(world.match_stats_body(mid))["MatchInfo"]["StartTime"])
        out.add(f"{start:%Y-%m}-01|{xuid}")
    return out


class Harness:
    """An ephemeral instance, the sensor's resources, and running what a tick requested."""

    def __init__(self, emulator: Emulator, data_dir: Path, reference_dir: Path):
        self.instance = dg.DagsterInstance.ephemeral()
        self.emulator = emulator
        self.data_dir = data_dir
        self.resources = {"halo_api": HaloApiResource(api_url=emulator.url),
                          "warehouse": WarehouseResource(data_dir=str(data_dir), reference_dir=str(reference_dir))}
        self.cursor = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = delta_sync_sensor(context)
        self.cursor = result.cursor
        return result

    def run(self, result: dg.SensorResult, **resource_overrides) -> list[bool]:
        outcomes = []
        for request in result.run_requests:
            outcome = defs.resolve_job_def("sync_job").execute_in_process(
                instance=self.instance, tags={**request.tags, "dagster/run_key": request.run_key},
                run_config={**QUIET, **request.run_config}, resources={**self.resources, **resource_overrides},
                raise_on_error=False)
            outcomes.append(outcome.success)
        return outcomes


@pytest.mark.slow
def test_delta_sensor_requests_exactly_new_months_and_leaves_no_gap(tmp_path):
    world = SyntheticWorld(seed=11, players=2, months=3, matches_per_month=16)
    a, b = (p.xuid for p in world.players)
    with Emulator(synthetic=world) as emulator:
        h = Harness(emulator, tmp_path / "data", DEFAULT_REFERENCE_DIR)
        h.instance.add_dynamic_partitions(PLAYERS, [str(a), str(b)])

        first = h.tick()  # first import: exactly the months holding each player's matches
        assert requested_partitions(first) == month_keys(world, a) | month_keys(world, b)
        assert all(h.run(first))
        emulator.reset_counts()
        assert not h.tick().run_requests  # nothing new: nothing requested …
        assert emulator.counts()["requests"]["match_history"] == 2  # … for one history call per player

        new = world.add_matches([a], n=3, when=datetime(2025, 8, 3, 20, 0, tzinfo=UTC))
        second = h.tick()
        assert requested_partitions(second) == month_keys(world, a, new) == {f"2025-08-01|{a}"}
        again = h.tick()  # a repeated tick before the run: the same run_key (deduped by Dagster)
        assert [r.run_key for r in again.run_requests] == [r.run_key for r in second.run_requests]

        # The run meets a 500 on every stats call and does not retry: its matches are recorded as failed.
        emulator.set_faults("5xx:rate=1,codes=500,on=match_stats")
        h.run(second, halo_api=HaloApiResource(api_url=emulator.url, max_attempts=1))
        index = Warehouse(h.data_dir).read_partition("raw_matches", a, "2025-08-01")
        assert set(index["stats_status"]) == {"failed"} and index["error"].str.contains("500").all()
        emulator.set_faults(None)

        retry = h.tick()  # the watermark did not move: the next tick asks again, with a new run_key
        assert requested_partitions(retry) == {f"2025-08-01|{a}"}
        assert retry.run_requests[0].run_key != second.run_requests[0].run_key
        assert all(h.run(retry))
        assert not h.tick().run_requests

    # The final warehouse equals a fault-free sync of the same world, row for row.
    with Emulator(synthetic=world) as emulator:
        clean = Harness(emulator, tmp_path / "clean", DEFAULT_REFERENCE_DIR)
        clean.instance.add_dynamic_partitions(PLAYERS, [str(a), str(b)])
        assert all(clean.run(clean.tick()))
    assert_same_warehouse(h.data_dir, clean.data_dir)


def test_sensor_tick_is_bounded_and_round_robin(tmp_path, monkeypatch):
    from halo_pipeline.defs.sync import sensors

    monkeypatch.setattr(sensors, "PLAYERS_PER_TICK", 2)
    world = SyntheticWorld(seed=2, players=3, months=1, matches_per_month=6)
    with Emulator(synthetic=world) as emulator:
        h = Harness(emulator, tmp_path / "data", DEFAULT_REFERENCE_DIR)
        xuids = sorted(str(p.xuid) for p in world.players)
        h.instance.add_dynamic_partitions(PLAYERS, xuids)
        seen = []
        for _ in range(3):
            result = h.tick()
            seen.append({r.tags[PLAYER_TAG] for r in result.run_requests})
        assert seen[0] == set(xuids[:2]) and seen[1] == {xuids[2], xuids[0]} and seen[2] == {xuids[1], xuids[2]}


def use_emulator(monkeypatch, emulator: Emulator, data_dir: Path) -> None:
    """Point the default resources (what ``halo-pipeline sync`` uses) at ``emulator`` and ``data_dir``."""
    monkeypatch.setenv("HALO_API_URL", emulator.url)
    monkeypatch.setenv("HALO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(DEFAULT_REFERENCE_DIR))


@pytest.mark.slow
def test_backfill_rederives_everything_with_zero_api_calls(tmp_path, monkeypatch):
    world = SyntheticWorld(seed=4, players=1, months=3, matches_per_month=12)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world) as emulator:
        use_emulator(monkeypatch, emulator, tmp_path / "data")
        instance = dg.DagsterInstance.ephemeral()
        wh = WarehouseResource().warehouse()
        add_player(instance, wh.landing, HaloApiResource().client, str(xuid))
        assert sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None).ok
        before = warehouse_tables(wh.data_dir)
        files_before = {p: p.read_bytes() for p in wh.root.rglob("*.parquet")}

        emulator.reset_counts()
        dry = backfill_plan(instance, wh, str(xuid), "2025-04", "2025-06", refetch=False)
        assert sum(len(v) for v in dry.match_ids.values()) == len(world.match_ids(xuid))
        assert {p: p.read_bytes() for p in wh.root.rglob("*.parquet")} == files_before  # dry run wrote nothing

        report = run_backfill(defs, instance, dry, WarehouseResource())
        assert report.ok
        assert sum(emulator.counts()["requests"].values()) == 0
        after = warehouse_tables(wh.data_dir)
        for table in TABLES:
            assert after[table].equals(before[table]), table
        for path in wh.root.rglob("*.parquet"):
            df = pl.read_parquet(path)
            assert df.height == df.unique().height, f"duplicates in {path}"

        with pytest.raises(InvalidInput, match="before the first partition month"):
            backfill_plan(instance, wh, str(xuid), "2019-01", "2019-02")
        with pytest.raises(InvalidInput, match="unknown asset"):
            backfill_plan(instance, wh, str(xuid), "2025-04", "2025-05", assets="nope")
        # Months without matches (the sync walked the whole history) are real, empty partitions: a backfill over
        # them succeeds with zero API calls; a month never walked (another player, never synced) is refused.
        emulator.reset_counts()
        empty_months = backfill_plan(instance, wh, str(xuid), "2025-01", "2025-05")
        assert [len(ids) for ids in empty_months.match_ids.values()][:3] == [0, 0, 0]
        assert run_backfill(defs, instance, empty_months, WarehouseResource()).ok
        assert sum(emulator.counts()["requests"].values()) == 0
        assert wh.read_partition("match_facts", xuid, "2025-02-01").is_empty()
        other = 2533274999999999  # registered, never synced
        instance.add_dynamic_partitions(PLAYERS, [str(other)])
        with pytest.raises(InvalidInput, match="never synced"):
            backfill_plan(instance, wh, str(other), "2025-01", "2025-05")


def test_players_add_list_remove_and_declared_file(tmp_path, monkeypatch):
    world = SyntheticWorld(seed=9, players=3, months=1, matches_per_month=6)
    p1, p2, p3 = world.players
    with Emulator(synthetic=world) as emulator:
        instance = dg.DagsterInstance.ephemeral()
        wh = Warehouse(tmp_path / "data")
        api = HaloApiResource(api_url=emulator.url)
        assert add_player(instance, wh.landing, api.client, p1.gamertag).xuid == p1.xuid
        with pytest.raises(InvalidInput, match="already registered"):
            add_player(instance, wh.landing, api.client, str(p1.xuid))
        with pytest.raises(InvalidInput, match="unknown gamertag"):
            add_player(instance, wh.landing, api.client, "Nobody Here")
        with pytest.raises(InvalidInput, match="invalid xuid"):
            add_player(instance, wh.landing, api.client, "12345")
        with pytest.raises(InvalidInput, match="invalid gamertag"):
            add_player(instance, wh.landing, api.client, "../etc|x")
        assert [(p.xuid, p.gamertag) for p in registered(instance, wh.landing)] == [(p1.xuid, p1.gamertag)]

        players_file = tmp_path / "players.yaml"
        players_file.write_text(f"players:\n  - gamertag: {p2.gamertag}\n  - {p3.xuid}\n  - {p1.gamertag}\n")
        monkeypatch.setenv("HALO_PLAYERS_FILE", str(players_file))
        resources = {"halo_api": api, "warehouse": WarehouseResource(data_dir=str(wh.data_dir))}
        result = declared_players_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        (request,) = result.dynamic_partitions_requests
        assert sorted(request.partition_keys) == sorted([str(p2.xuid), str(p3.xuid)])

        wh.write_partition("match_facts", p1.xuid, "2025-01-01", pl.DataFrame({"match_id": ["x"]}))
        remove_player(instance, wh, str(p1.xuid))
        assert wh.partition_files("match_facts", p1.xuid)  # data kept
        instance.add_dynamic_partitions(PLAYERS, [str(p1.xuid)])
        remove_player(instance, wh, str(p1.xuid), purge=True)
        assert not wh.partition_files("match_facts", p1.xuid)
        with pytest.raises(InvalidInput, match="not registered"):
            remove_player(instance, wh, str(p1.xuid))


@pytest.mark.slow
def test_delta_sync_refreshes_the_analytics_it_made_stale(tmp_path, monkeypatch):
    """A session crossing a month boundary, synced one month at a time, equals a sync of everything at once."""
    world = SyntheticWorld(seed=8, players=1, months=1, matches_per_month=6)
    xuid = world.players[0].xuid

    def sync(data_dir: Path, instance) -> None:
        monkeypatch.setenv("HALO_DATA_DIR", str(data_dir))
        assert sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None).ok

    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        monkeypatch.setenv("HALO_REFERENCE_DIR", str(DEFAULT_REFERENCE_DIR))
        step = dg.DagsterInstance.ephemeral()
        step.add_dynamic_partitions(PLAYERS, [str(xuid)])
        sync(tmp_path / "step", step)
        world.add_matches([xuid], n=1, when=datetime(2025, 7, 31, 23, 40, tzinfo=UTC))
        sync(tmp_path / "step", step)
        world.add_matches([xuid], n=1, when=datetime(2025, 8, 1, 0, 4, tzinfo=UTC))
        sync(tmp_path / "step", step)  # requests 2025-08 only; the follow-up re-derives 2025-07's sessions

        once = dg.DagsterInstance.ephemeral()
        once.add_dynamic_partitions(PLAYERS, [str(xuid)])
        sync(tmp_path / "once", once)

    step_sessions = Warehouse(tmp_path / "step").read_table("sessions", xuid).sort("start_time")
    once_sessions = Warehouse(tmp_path / "once").read_table("sessions", xuid).sort("start_time")
    assert step_sessions.equals(once_sessions)
    crossing = step_sessions.filter(pl.col("end_time") >= datetime(2025, 8, 1, tzinfo=UTC))
    assert crossing.height == 1 and crossing["start_time"][0] < datetime(2025, 8, 1, tzinfo=UTC)
    for table in ("performance_scores", "session_stats"):
        assert Warehouse(tmp_path / "step").read_table(table, xuid).sort(pl.all()).equals(
            Warehouse(tmp_path / "once").read_table(table, xuid).sort(pl.all())), table


@pytest.mark.slow
def test_full_sync_with_since_and_max_matches(tmp_path, monkeypatch):
    world = SyntheticWorld(seed=6, players=1, months=2, matches_per_month=10)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world) as emulator:
        use_emulator(monkeypatch, emulator, tmp_path / "data")
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        report = sync_players(defs, instance, HaloApiResource(), WarehouseResource(), full=True, since="2025-05",
                              max_matches=4, log=lambda _: None)
    assert report.ok and any(job == "full_sync" for _, job, _, _ in report.runs)
    facts = Warehouse(tmp_path / "data").read_table("match_facts", xuid)
    assert sorted(facts["match_id"]) == sorted(world.match_ids(xuid)[:4])  # the newest 4


@pytest.mark.slow
def test_session_gap_is_one_setting_that_every_run_follows(tmp_path, monkeypatch):
    """The session gap is a definitions-level setting (``HALO_SESSION_GAP_MINUTES``): the sync runs, the follow-up
    analytics run that re-derives the previous month and every month read the same value. A follow-up run once
    used its own default (35) and silently split one player's months between two gaps."""
    import orjson

    from halo_pipeline.transforms import analytics as ta

    world = SyntheticWorld(seed=8, players=1, months=1, matches_per_month=6)
    xuid = world.players[0].xuid
    monkeypatch.setenv("HALO_SESSION_GAP_MINUTES", "10")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
    with Emulator(synthetic=world) as emulator:
        use_emulator(monkeypatch, emulator, tmp_path / "data")
        assert sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None).ok
        [late] = world.add_matches([xuid], n=1, when=datetime(2025, 7, 31, 23, 40, tzinfo=UTC))
        end = datetime.fromisoformat(orjson.loads(world.match_stats_body(late))["MatchInfo"]["EndTime"])
        assert sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None).ok
        # 20 minutes after the July match ended: one session with a 35-minute gap, two with a 10-minute one.
        world.add_matches([xuid], n=1, when=end + timedelta(minutes=20))
        report = sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None)
    assert report.ok and any(job == "analytics_job" for _, job, _, _ in report.runs)  # July re-derived after
    wh = Warehouse(tmp_path / "data")
    facts = wh.read_table("match_facts", xuid)
    assert not ta.sessions(facts, 10).equals(ta.sessions(facts, 35))  # the setting matters for this history
    for month in wh.player_files("sessions", xuid):
        expected = ta.sessions(facts, 10).filter(ta.month_of() == month)
        assert wh.read_partition("sessions", xuid, month).equals(expected), month


def _run_automation(instance: dg.DagsterInstance, cursor=None, ticks: int = 6):
    """What the daemon's ``follow_upstream`` sensor does, tick by tick (Dagster's own evaluator): evaluate the
    automation conditions, run what they requested (one range run per player over the requested months; the
    resources as the daemon's runs resolve them, from the environment), until a tick requests nothing. Returns
    ``(cursor, {asset: requested partition keys})`` over all ticks."""
    requested: dict[str, set] = {}
    job = defs.resolve_job_def("sync_job")  # every partitioned asset
    for _ in range(ticks):
        result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
        cursor = result.cursor
        if not result.total_requested:
            return cursor, requested
        by_player: dict[int, tuple[set, set]] = {}
        unpartitioned = set()
        for key in defs.resolve_all_asset_keys():
            keys = result.get_requested_partitions(key)
            requested.setdefault(key.to_user_string(), set()).update(keys)
            for partition in keys:
                if partition is None:
                    unpartitioned.add(key)
                    continue
                xuid, month = partition_range_of({"dagster/asset_partition_range_start": partition,
                                                  "dagster/asset_partition_range_end": partition})[:2]
                assets, months = by_player.setdefault(xuid, (set(), set()))
                assets.add(key)
                months.add(month)
        for xuid, (assets, months) in by_player.items():
            tags = partition_range_tags(xuid, min(months), max(months))
            assert job.execute_in_process(instance=instance, asset_selection=sorted(assets), tags=tags,
                                          run_config=QUIET).success
        for name in ("people_job", "catalog_job"):  # the unpartitioned ones, after the partitions they read
            other = defs.resolve_job_def(name)
            if keys := sorted(unpartitioned & other.asset_layer.executable_asset_keys):
                assert other.execute_in_process(instance=instance, asset_selection=keys).success
    raise AssertionError(f"automation still requesting after {ticks} ticks: {requested}")


@pytest.mark.slow
def test_automation_re_derives_what_a_delta_run_made_stale(tmp_path, monkeypatch):
    """Where the daemon runs, declarative automation (the ``follow_upstream`` sensor) replaces the follow-up runs:
    the delta sensor's run over August makes July's sessions stale (a session crossing the month boundary);
    automation requests July's sessions and the roll-ups, and the warehouse then equals a sync at once."""
    world = SyntheticWorld(seed=8, players=1, months=1, matches_per_month=6)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world) as emulator:
        use_emulator(monkeypatch, emulator, tmp_path / "step")
        h = Harness(emulator, tmp_path / "step", DEFAULT_REFERENCE_DIR)
        h.instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        assert all(h.run(h.tick()))
        cursor, _ = _run_automation(h.instance)
        world.add_matches([xuid], n=1, when=datetime(2025, 7, 31, 23, 40, tzinfo=UTC))
        assert all(h.run(h.tick()))
        cursor, _ = _run_automation(h.instance, cursor)
        world.add_matches([xuid], n=1, when=datetime(2025, 8, 1, 0, 4, tzinfo=UTC))
        tick = h.tick()
        assert requested_partitions(tick) == {f"2025-08-01|{xuid}"}  # the sensor asks for August only
        assert all(h.run(tick))
        cursor, requested = _run_automation(h.instance, cursor)
        assert f"2025-07-01|{xuid}" in requested["sessions"]  # automation: July's sessions follow August's data

        once = Harness(emulator, tmp_path / "once", DEFAULT_REFERENCE_DIR)
        once.instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
        assert all(once.run(once.tick()))
    for table in ("sessions", "performance_scores", "session_stats", "global_stats", "map_stats"):
        step = Warehouse(tmp_path / "step").read_table(table, xuid).sort(pl.all())
        at_once = Warehouse(tmp_path / "once").read_table(table, xuid).sort(pl.all())
        assert step.equals(at_once), table
    crossing = Warehouse(tmp_path / "step").read_table("sessions", xuid).filter(
        pl.col("end_time") >= datetime(2025, 8, 1, tzinfo=UTC))
    assert crossing.height == 1 and crossing["start_time"][0] < datetime(2025, 8, 1, tzinfo=UTC)
