"""The serving store (``halo.duckdb``: tables + mv roll-ups materialized, published as snapshots) equals the
Parquet partitions after a sync, a re-derive, two concurrent runs and a killed update; a reader holding a
read-only connection during updates sees one consistent snapshot and is never blocked; updates cost the rows
they change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import duckdb
import polars as pl
import pytest

from benchmarks.bench_queries import build
from halo_pipeline import tables
from halo_pipeline.storage import catalog, serving
from halo_pipeline.storage.serving import Partition
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline_tests.conftest import REPO

P0, P1 = 2533274900000000, 2533274900000001


def store_equals_views(wh: Warehouse) -> None:
    """Every table and roll-up of the published store equals the same query over the Parquet files (the views
    of :func:`catalog.refresh_catalog`), row for row."""
    with serving.connect(wh) as store, duckdb.connect() as views:
        catalog.refresh_catalog(views, wh)
        for name in [*tables.TABLES, *catalog.ROLLUPS]:
            columns = [r[0] for r in views.execute(f'DESCRIBE "{name}"').fetchall()]
            listed = ", ".join(f'"{c}"' for c in columns)
            a = store.execute(f'SELECT {listed} FROM "{name}" ORDER BY ALL').fetchall()
            b = views.execute(f'SELECT {listed} FROM "{name}" ORDER BY ALL').fetchall()
            assert _rounded(a) == _rounded(b), name


def _rounded(rows: list[tuple]) -> list[tuple]:
    """Floats to 10 significant digits: sums of the same floats in another order differ in the last bits."""
    return [tuple(float(f"{v:.10g}") if isinstance(v, float) else v for v in row) for row in rows]


def assert_converged(wh: Warehouse) -> None:
    result = serving.compare(wh)
    assert result.mismatches == [] and result.pending == [] and result.compared > 0, result


def rewrite(wh: Warehouse, table: str, xuid: int, month: str, keep: int) -> Partition:
    """Replace a partition file with its first ``keep`` rows (a re-materialization that changed it)."""
    df = wh.read_partition(table, xuid, month)
    wh.write_partition(table, xuid, month, df.head(keep))
    return Partition(table, xuid, month)


@pytest.fixture()
def small(tmp_path) -> Warehouse:
    """3 players × 3 months × 10 matches of synthetic partitions (facts, participants, the stats tables)."""
    build(tmp_path, 3, 3, 10)
    return Warehouse(tmp_path)


# ------------------------------------------------------------------------------------- storage, fast tier


def test_incremental_update_reloads_only_the_changed_partition_and_its_players_rollups(small):
    first = serving.update(small)
    assert first.mode == "rebuild" and small.catalog_path.is_symlink()
    store_equals_views(small)
    assert serving.update(small).mode == "noop"  # nothing changed: nothing written

    before = small.read_partition("map_stats", P1, "2023-02-01").height
    changed = rewrite(small, "map_stats", P1, "2023-02-01", keep=2)
    report = serving.update(small, partitions=[changed, Partition("map_stats", P0, "2023-01-01")])
    assert report.mode == "incremental" and report.touched == [changed]  # P0's file did not change: skipped
    assert (report.rows_deleted, report.rows_inserted, report.players_rolled_up) == (before, 2, 1)
    assert report.slot != first.slot  # written in another slot, then published
    store_equals_views(small)
    assert_converged(small)


def test_reconcile_finds_new_changed_and_removed_files_and_new_columns(small):
    serving.update(small)
    rewrite(small, "match_facts", P0, "2023-03-01", keep=1)
    extra = small.read_partition("global_stats", P1, "2023-01-01").with_columns(pl.lit(7).alias("new_figure"))
    small.write_partition("global_stats", P1, "2023-01-01", extra)  # a column the store does not have yet
    for path in small.partition_files("session_stats", 2533274900000002):
        path.unlink()  # the player's partitions are gone (a purge)
    report = serving.update(small)  # no change list: every file is scanned
    assert report.mode == "reconcile" and report.changed == 1 + 1 + 3
    with serving.connect(small) as con:
        assert con.execute("SELECT sum(new_figure) FROM global_stats").fetchone()[0] == 7
        assert con.execute("SELECT count(*) FROM session_stats WHERE owner_xuid = 2533274900000002").fetchone() == (0,)
    store_equals_views(small)
    assert_converged(small)


def test_check_finds_a_store_that_differs_from_parquet(small):
    serving.update(small)
    assert_converged(small)
    slot = serving.published_slot(small)
    with duckdb.connect(str(slot)) as con:  # corrupt the published snapshot behind the store's back
        con.execute(f"UPDATE match_facts SET kills = kills + 1 WHERE owner_xuid = {P1} AND match_id = "
                    f"(SELECT min(match_id) FROM match_facts WHERE owner_xuid = {P1})")
    result = serving.compare(small)
    assert [(m.partition.table, m.partition.owner, m.what) for m in result.mismatches] == [
        ("match_facts", P1, "sum(kills)")]
    from halo_pipeline.defs.warehouse.assets import check_store

    check = check_store(small)  # the asset's check: the latest update's partitions and a sample (here: all 54)
    assert not check.passed and check.metadata["mismatches"].value == 1


def test_adding_a_rollup_is_one_entry(small, monkeypatch):
    serving.update(small)
    extra = catalog.Rollup("mv_best_map", "SELECT owner_xuid AS xuid, arg_max(map_id, kills) AS map_id "
                           "FROM map_stats GROUP BY owner_xuid", ("map_stats",))
    monkeypatch.setitem(catalog.ROLLUPS, extra.name, extra)
    rewrite(small, "map_stats", P0, "2023-01-01", keep=1)
    serving.update(small)
    store_equals_views(small)  # the new roll-up was created, and re-aggregated for P0


def _frame(schema: dict, rows: list[dict]) -> pl.DataFrame:
    """``rows`` with every other column of ``schema`` null (numbers 1)."""
    return pl.DataFrame([{c: r.get(c, 1 if t.is_numeric() else None) for c, t in schema.items()} for r in rows],
                        schema=schema)


def test_people_tables_and_top_teammates_follow_incremental_updates(tmp_path):
    """``players`` (one global file) and ``friends`` (rewritten whole by an unpartitioned asset: a partition with
    no owner, every owner's file examined and a removed one dropped) are served, and ``mv_top_teammates`` over
    them follows: the whole roll-up for ``players``, the owners whose friends changed."""
    from halo_pipeline.services.friends import friends_path
    from halo_pipeline.services.people import players_path
    from halo_pipeline.transforms import people as tp

    wh, mate = Warehouse(tmp_path), 2533274900000009
    for owner in (P0, P1):
        wh.write_partition("teammates", owner, "2025-01-01", _frame(tp.TEAMMATES_SCHEMA, [
            {"xuid": owner, "month_start": "2025-01-01", "teammate_xuid": mate, "matches_same_team": 3}]))
    friend = friends_path(wh, P0)
    friend.parent.mkdir(parents=True)
    _frame(tp.FRIENDS_SCHEMA, [{"xuid": P0, "friend_xuid": mate, "nickname": "Bestie"}]).write_parquet(friend)
    players_path(wh).parent.mkdir(parents=True)
    _frame(tp.PLAYERS_SCHEMA, [{"xuid": mate, "gamertag": "Mate"}]).write_parquet(players_path(wh))
    serving.update(wh)
    store_equals_views(wh)

    _frame(tp.PLAYERS_SCHEMA, [{"xuid": mate, "gamertag": "Renamed"}]).write_parquet(players_path(wh))
    report = serving.update(wh, partitions=[Partition("players")])
    assert report.touched == [Partition("players")]
    names = "SELECT xuid, name, is_friend FROM mv_top_teammates ORDER BY xuid"
    with serving.connect(wh) as con:
        assert con.execute(names).fetchall() == [(P0, "Bestie (Renamed)", True), (P1, "Renamed", False)]

    friend.unlink()  # P0's friend removed, P1 declares one
    friends_path(wh, P1).parent.mkdir(parents=True)
    _frame(tp.FRIENDS_SCHEMA, [{"xuid": P1, "friend_xuid": mate, "nickname": "Pal"}]).write_parquet(
        friends_path(wh, P1))
    report = serving.update(wh, partitions=[Partition("friends")])
    assert report.touched == [Partition("friends", P0), Partition("friends", P1)]
    with serving.connect(wh) as con:
        assert con.execute(names).fetchall() == [(P0, "Renamed", False), (P1, "Pal (Renamed)", True)]
    store_equals_views(wh)
    assert_converged(wh)


# ------------------------------------------------------------------------ separate processes, full tier

_KILLED_WRITER = """
import sys, time
from pathlib import Path
from halo_pipeline.storage import serving
from halo_pipeline.storage.warehouse import Warehouse
root, point, signal_file = sys.argv[1:4]
original = getattr(serving, point)
def stall(*args, **kwargs):
    original(*args, **kwargs) if point == "_refresh_rollups" else None
    Path(signal_file).write_text("ready")
    time.sleep(600)
setattr(serving, point, stall)
serving.update(Warehouse(Path(root)))
"""


@pytest.mark.system
@pytest.mark.parametrize("point", ["_refresh_rollups", "_publish"])  # inside the transaction / after COMMIT
def test_update_killed_leaves_the_old_state_and_the_next_update_converges(small, tmp_path, point):
    serving.update(small)
    for month in ("2023-01-01", "2023-02-01"):  # two published updates: the spare slot is one update behind
        serving.update(small, partitions=[rewrite(small, "global_stats", 2533274900000002, month, keep=0)])
    before = serving.state(small)
    changed = [rewrite(small, "match_participants", P0, "2023-02-01", keep=3),
               rewrite(small, "mode_category_stats", P1, "2023-03-01", keep=1)]
    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(small.data_dir), point, str(ready)],
                              cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer never reached the point"
            time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    # Killed: the published snapshot is the old state, whole and consistent; the changes are pending.
    assert serving.state(small)["seq"] == before["seq"]
    result = serving.compare(small)
    assert result.mismatches == [] and result.pending == sorted(changed)
    report = serving.update(small)  # the next update (a reconcile here) takes over the killed one's slot
    assert report.seq == before["seq"] + 1
    store_equals_views(small)
    assert_converged(small)


_READER = """
import json, sys, time
from pathlib import Path
import duckdb
from halo_pipeline.storage import serving
from halo_pipeline.storage.warehouse import Warehouse
wh, stop = Warehouse(Path(sys.argv[1])), Path(sys.argv[2])
QUERY = '''SELECT (SELECT seq FROM serving_state), (SELECT count(*) FROM match_participants),
  (SELECT sum(rows) FROM serving_partitions WHERE table_name = 'match_participants' AND fingerprint IS NOT NULL),
  (SELECT sum(matches) FROM global_stats), (SELECT sum(matches) FROM mv_global_stats)'''
held = serving.connect(wh)  # a notebook's connection, held through every update
first = held.execute(QUERY).fetchone()
seen, violations, slowest, rounds = set(), [], 0.0, 0
while not stop.exists():
    t = time.perf_counter()
    with serving.connect(wh) as con:  # a fresh reader, e.g. `halo-pipeline stats`
        slowest = max(slowest, time.perf_counter() - t)
        row = con.execute(QUERY).fetchone()
    seen.add(row[0])
    if row[1] != row[2] or row[3] != row[4]:
        violations.append(row)
    if held.execute(QUERY).fetchone() != first:
        violations.append(("held snapshot moved", first))
    rounds += 1
print(json.dumps({"seen": sorted(seen), "violations": violations, "slowest_open": slowest, "rounds": rounds}))
"""


@pytest.mark.system
def test_reader_holding_a_connection_sees_one_consistent_snapshot_and_never_blocks_updates(small, tmp_path):
    serving.update(small)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(small.data_dir), str(stop)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)  # the reader holds its connection
        for i, (table, keep) in enumerate([("match_participants", 5), ("global_stats", 0), ("match_participants", 1),
                                           ("global_stats", 1), ("match_participants", 2)]):
            t = time.perf_counter()
            report = serving.update(small, partitions=[rewrite(small, table, P0 + i % 3, "2023-01-01", keep)])
            assert report.mode == "incremental" and time.perf_counter() - t < 30
            time.sleep(0.3)
        slots_while_held = len(list(serving.serving_dir(small).glob("slot-*.duckdb")))
    finally:
        stop.write_text("stop")
        out, _ = reader.communicate(timeout=60)
    seen = json.loads(out)
    assert seen["violations"] == [] and seen["rounds"] > 5
    assert len(seen["seen"]) >= 3  # fresh readers followed the publications
    assert seen["slowest_open"] < serving.READ_WAIT_SECONDS
    assert 3 <= slots_while_held <= serving.MAX_SLOTS  # the held slot was never written: updates used others
    rewrite(small, "map_stats", P0, "2023-03-01", keep=1)
    serving.update(small)
    assert len(list(serving.serving_dir(small).glob("slot-*.duckdb"))) == serving.KEEP_SLOTS  # released: reclaimed
    assert_converged(small)


def _catalog_runs(instance: dg.DagsterInstance) -> list[dict]:
    """The metadata of each ``warehouse_catalog`` materialization, oldest first."""
    records = instance.fetch_materializations(dg.AssetKey("warehouse_catalog"), limit=100, ascending=True).records
    return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records]


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_store_follows_a_sync_a_rederive_and_two_concurrent_runs(tmp_path, monkeypatch):
    """Through Dagster on the persistent instance the CLI creates: after a sync, after re-deriving months (an
    incremental update costing those partitions' rows), and after two ``halo-pipeline backfill`` processes
    that run — and update the store — at the same time, the store equals the Parquet partitions and its
    cursor has every materialization."""
    from halo_pipeline.api.resource import HaloApiResource
    from halo_pipeline.definitions import defs
    from halo_pipeline.defs.warehouse.assets import latest_event_id
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    from halo_pipeline.instance import ensure_home
    from halo_pipeline.months import month_blocks
    from halo_pipeline.partitions import PLAYERS
    from halo_pipeline.runner import run_backfill, sync_players
    from halo_pipeline.services.backfill import plan_backfill
    from halo_pipeline.storage.resource import WarehouseResource
    from halo_pipeline.storage.warehouse import month_of_path

    world = SyntheticWorld(seed=5, players=2, months=2, matches_per_month=5)
    a, b = (p.xuid for p in world.players)
    data, home, reference = tmp_path / "data", ensure_home(tmp_path / "home"), DEFAULT_REFERENCE_DIR
    wh = Warehouse(data)
    resource = WarehouseResource(data_dir=str(data), reference_dir=str(reference))
    with Emulator(synthetic=world) as emulator, dg.DagsterInstance.from_config(str(home)) as instance:
        env = {"HALO_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url,
               "HALO_REFERENCE_DIR": str(reference)}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance.add_dynamic_partitions(PLAYERS, [str(a), str(b)])
        report = sync_players(defs(), instance, HaloApiResource(api_url=emulator.url), resource, log=lambda _: None)
        assert report.ok, report.runs
        assert serving.state(wh)["event_cursor"] == latest_event_id(instance)
        store_equals_views(wh)
        assert_converged(wh)

        months = {x: list(month_blocks(month_of_path(p) for p in wh.partition_files("raw_matches", x))[0])
                  for x in (a, b)}  # a block of contiguous synced months of each player
        known = {k.to_user_string() for k in defs().resolve_all_asset_keys()}
        plan = plan_backfill(wh, [str(a), str(b)], known, str(a), months[a][0][:7], months[a][-1][:7])
        assert run_backfill(defs(), instance, plan, resource).ok
        update = _catalog_runs(instance)[-1]
        total = sum(n for k, n in update.items() if k.startswith("rows/") and k[5:] in tables.TABLES)
        assert update["update"] == "incremental" and update["partitions_changed"] > 0
        assert 0 < update["rows_inserted"] < total  # the re-derived partitions' rows, not the warehouse
        store_equals_views(wh)
        assert_converged(wh)

        runs = [subprocess.Popen([sys.executable, "-m", "halo_pipeline.cli", "backfill", "--player", str(x),
                                  "--from", months[x][0][:7], "--to", months[x][-1][:7]], cwd=REPO,
                                 env=dict(os.environ),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for x in (a, b)]
        outputs = [r.communicate(timeout=400)[0] for r in runs]
        assert [r.returncode for r in runs] == [0, 0], outputs
        assert serving.state(wh)["event_cursor"] == latest_event_id(instance)  # nothing left behind
        store_equals_views(wh)
        assert_converged(wh)


@pytest.mark.system
@pytest.mark.slow
def test_serve_command_builds_checks_and_reconciles(small, tmp_path):
    """``halo-pipeline serve`` (a catalog_job run on the persistent instance), ``serve --check`` (exit 1 on a
    partition not applied yet), ``serve --reconcile`` (files changed outside Dagster), ``stats``."""
    env = {**os.environ, "HALO_DATA_DIR": str(small.data_dir), "DAGSTER_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "halo_pipeline.cli", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    built = cli("serve")
    assert built.returncode == 0 and "serving store:" in built.stdout, built.stdout + built.stderr
    assert cli("serve", "--check").returncode == 0
    changed = rewrite(small, "map_stats", P0, "2023-02-01", keep=1)  # outside Dagster: no materialization
    check = cli("serve", "--check")
    assert check.returncode == 1 and f"pending  map_stats 2023-02-01|{P0}" in check.stdout
    assert cli("serve").returncode == 0 and serving.compare(small).pending == [changed]  # the feed saw nothing
    assert cli("serve", "--reconcile").returncode == 0
    assert cli("serve", "--check").returncode == 0
    stats = cli("stats")
    assert stats.returncode == 0 and "mv_map_stats" in stats.stdout and str(P0) in stats.stdout
