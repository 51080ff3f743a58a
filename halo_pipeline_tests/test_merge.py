"""``halo-pipeline merge <other HALO_DATA_DIR>``: the union of two warehouses' raw landing, then the touched
partitions re-derived with zero API calls."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from halo_pipeline import tables
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.cli import main
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home, ensure_registered
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.runner import sync_players
from halo_pipeline.services.history import WalkIndex
from halo_pipeline.services.merge import merge_warehouse
from halo_pipeline.storage.landing import FILM, PROFILE, STATS, RawLanding
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline_tests.support import fast_defs

#: Columns that say when, not what: dropped before comparing two warehouses.
WHEN = ["fetched_in_run", "last_sync_at"]
PARTITIONED = tables.names(layout="player_month") + tables.names(layout="player")


def snapshot(data_dir: Path) -> dict[str, pl.DataFrame]:
    wh = Warehouse(data_dir)
    out = {}
    for table in PARTITIONED:
        df = wh.read_table(table, schema=tables.schema(table))
        out[table] = df.drop(WHEN, strict=False).sort(pl.all())
    return out


def partition_files(data_dir: Path) -> set[str]:
    root = Warehouse(data_dir).root
    return {str(p.relative_to(root)) for p in root.glob("*/player=*/**/*.parquet")}


def sync(data_dir: Path, xuids: list[int], monkeypatch) -> None:
    """What ``halo-pipeline sync`` does for ``xuids``, on a persistent instance of its own."""
    monkeypatch.setenv("HALO_DATA_DIR", str(data_dir))
    home = ensure_home(data_dir / "dagster_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ensure_registered(instance, xuids)
        report = sync_players(fast_defs(requests_per_second=200), instance, HaloApiResource(), WarehouseResource(),
                              log=lambda _: None)
    assert report.ok, report.runs


@pytest.mark.slow
def test_merge_of_disjoint_players_equals_one_warehouse_that_synced_both(tmp_path, monkeypatch):
    world = SyntheticWorld(seed=31, players=2, months=2, matches_per_month=8)
    x, y = (p.xuid for p in world.players)
    assert set(world.match_ids(x)) & set(world.match_ids(y)), "shared matches make the union non-trivial"
    a, b, both = tmp_path / "a", tmp_path / "b", tmp_path / "both"
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(DEFAULT_REFERENCE_DIR))
    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        sync(a, [x], monkeypatch)
        sync(b, [y], monkeypatch)
        sync(both, [x, y], monkeypatch)
        assert Warehouse(a).read_table("match_facts").height < Warehouse(both).read_table("match_facts").height

        # A merge killed after copying the landing, before its runs; then the CLI merge on a's persistent instance,
        # which finds nothing new to copy but the partitions not derived yet: zero API calls.
        copied = merge_warehouse(Warehouse(a), Warehouse(b))
        assert copied.added[STATS] and copied.touched[y]
        monkeypatch.setenv("HALO_DATA_DIR", str(a))
        monkeypatch.setenv("DAGSTER_HOME", str(a / "dagster_home"))
        emulator.reset_counts()
        result = CliRunner().invoke(main, ["merge", str(b)], catch_exceptions=False)
        assert "0 added, 0 replaced" in result.output and f"re-derive {y}" in result.output
        assert result.exit_code == 0, result.output
        assert sum(emulator.counts()["requests"].values()) == 0
    assert "conflicts" not in result.output  # the matches both played were landed with the same bytes
    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        assert sorted(instance.get_dynamic_partitions(PLAYERS)) == sorted([str(x), str(y)])
    got, expected = snapshot(a), snapshot(both)
    for table in PARTITIONED:
        assert got[table].equals(expected[table]), table
    assert partition_files(a) == partition_files(both)
    assert Warehouse(a).read_table("match_facts", y).height == len(world.match_ids(y))
    walks = WalkIndex.load(Warehouse(a).landing, y).walked  # y's months are as settled here as they were in b
    assert walks and walks == WalkIndex.load(Warehouse(b).landing, y).walked

    # Merging again changes nothing and launches no run.
    again = CliRunner().invoke(main, ["merge", str(b)], catch_exceptions=False)
    assert again.exit_code == 0 and "0 added, 0 replaced" in again.output and "re-derive" not in again.output


def _put(landing: RawLanding, kind: str, key: str, body: bytes, mtime: int) -> Path:
    path = landing.put(kind, key, body)
    os.utime(path, (mtime, mtime))
    return path


def test_only_complete_bodies_and_the_newer_of_a_conflict(tmp_path):
    """Without Dagster: what the union keeps, what it leaves out and what it reports."""
    ours, theirs = Warehouse(tmp_path / "ours"), Warehouse(tmp_path / "theirs")
    body = orjson.dumps({"MatchId": "m1", "MatchInfo": {}, "Players": []})
    newer_body = orjson.dumps({"MatchId": "m1", "MatchInfo": {"Duration": "PT1S"}, "Players": []})
    _put(ours.landing, STATS, "aa-m1", body, 1_000)
    _put(theirs.landing, STATS, "aa-m1", newer_body, 2_000)  # same id, other bytes, landed later: theirs kept
    _put(ours.landing, STATS, "aa-m2", newer_body, 3_000)
    _put(theirs.landing, STATS, "aa-m2", body, 1_000)  # older than ours: ours kept
    _put(theirs.landing, STATS, "aa-m3", body, 1_000)  # new: copied
    truncated = theirs.landing.root / STATS / "aa" / "aa-m4.json.gz"
    truncated.write_bytes(gzip.compress(body)[:-9])  # a partial file: left out
    _put(theirs.landing, STATS, "aa-m5", b'{"MatchId": "m5"}', 1_000)  # whole JSON, but not a stats body
    theirs.landing.mark_absent(FILM, "aa-m3", 404)  # a 404 we never asked: copied
    ours.landing.mark_absent(PROFILE, "123", 404)
    _put(theirs.landing, PROFILE, "123", b'{"xuid": "123", "gamertag": "Someone"}', 1_000)  # a body beats a marker
    before = {p: p.read_bytes() for p in ours.data_dir.rglob("*") if p.is_file()}

    dry = merge_warehouse(ours, theirs, dry_run=True)
    assert {p: p.read_bytes() for p in ours.data_dir.rglob("*") if p.is_file()} == before  # nothing written

    report = merge_warehouse(ours, theirs)
    assert report.added == dry.added and report.conflicts == dry.conflicts
    assert sorted(report.conflicts) == [(STATS, "aa-m1", "theirs"), (STATS, "aa-m2", "ours")]
    assert ours.landing.get(STATS, "aa-m1") == newer_body and ours.landing.get(STATS, "aa-m2") == newer_body
    assert ours.landing.get(STATS, "aa-m3") == body
    assert not ours.landing.has(STATS, "aa-m4") and not ours.landing.has(STATS, "aa-m5")
    assert sorted(name for name, _ in report.incomplete) == ["stats/aa/aa-m4.json.gz", "stats/aa/aa-m5.json.gz"]
    assert ours.landing.absent_status(FILM, "aa-m3") == 404
    assert ours.landing.get(PROFILE, "123") is not None and ours.landing.absent_status(PROFILE, "123") is None
    assert (ours.landing.root / STATS / "aa" / "aa-m3.json.gz").stat().st_mtime == 1_000  # landing time kept
    assert report.changed_matches == {"aa-m1", "aa-m3"}


def test_bad_input_is_one_line(tmp_path, data_env):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["merge", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "not a halo-pipeline data dir" in result.output
    assert result.output.count("\n") == 1
