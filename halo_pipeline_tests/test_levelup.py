"""Moving in from LevelUp: ``halo-pipeline import levelup`` on the real LevelUp store of ``../shared/legacy`` (written
by LevelUp's own sync engine from the recorded matches of ``../shared/halo_api``), then a sync against the
emulator replaying those recordings."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from halo_pipeline.cli import main
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.services.levelup import documents, find_players, import_player
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.levelup import award_name_id, disagreements, legacy_frames
from halo_pipeline_tests.conftest import OWNER_XUID, REPO
from halo_pipeline_tests.expected import owner_rows

TEAM_SWITCH = "9a350909-b2bb-448f-a30a-7b234a8b28ef"  # the stockpile recording: the owner changed teams
ODDBALL = "63391382-6b88-43f9-9ff4-6313404c419c"  # its film is recorded (640 events)
EXPIRED_FILM = "01ee3491-1ca1-4822-b23e-63e836104f32"  # film/match_stats.json: its film is left out below


@pytest.fixture(scope="session")
def levelup_dir(shared_dir: Path) -> Path:
    return shared_dir / "legacy" / "levelup"


def store_rows(levelup_dir: Path, sql: str) -> list[dict]:
    with duckdb.connect(str(levelup_dir / "players" / "aCurtis X89" / "stats.duckdb"), read_only=True) as con:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def files_of(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of the data dir but the Dagster instance: path → (size, mtime ns)."""
    return {str(p.relative_to(data_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in data_dir.rglob("*") if p.is_file() and "dagster_home" not in p.parts}


def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"])


def run_count() -> int:
    with instance() as inst:
        return inst.get_runs_count()


# ---- the mapping, without Dagster ----------------------------------------------------------------------------
def test_store_rows_map_to_the_api_figures_of_the_same_matches(levelup_dir, recorded_stats):
    """Every LevelUp figure of the store equals the raw JSON's but the known defect (the team-switch match's shots
    and accuracy): the column mapping (LevelUp's ``score`` is PersonalScore, its ``time_played_seconds`` the match
    duration), the medals and every personal-score award name → NameId."""
    [player] = find_players(levelup_dir)
    assert (player.xuid, player.gamertag, player.layout) == (OWNER_XUID, "aCurtis X89", "player_store")
    docs = list(documents(player, list(player.matches)))
    bodies = {b["MatchId"]: b for b in recorded_stats.values()}
    found = pl.concat([disagreements(doc, bodies[doc["match_id"]]) for doc in docs])
    assert set(found["match_id"]) == {TEAM_SWITCH}
    assert sorted(found.select("table_name", "column_name", "levelup_value").rows()) == [
        ("match_facts", "accuracy", 100.0), ("match_facts", "shots_fired", 6.0),
        ("match_participants", "accuracy", 100.0), ("match_participants", "shots_fired", 6.0)]
    assert set(found.filter(pl.col("column_name") == "shots_fired")["api_value"]) == {28.0}
    scores = legacy_frames(docs)["personal_scores"]
    assert scores.height == 25 and scores["name_id"].null_count() == 0  # every award name resolved
    assert award_name_id("Zone capturée", 8, 400) == 3507884073  # 50 points each: the 50-point NameId
    assert award_name_id("Killed Player", 1, 100) == 1024030246 and award_name_id("Unheard of", 1, 1) is None


def test_shared_matches_layout_reads_the_same_documents(levelup_dir, tmp_path):
    """LevelUp v5+'s ``warehouse/shared_matches.duckdb`` (matches of every player in one file, the player stores
    keeping their own tables): built here from the real store with LevelUp's documented v5 DDL, it yields the same
    rows. (No real v5 file was available: the shape is LevelUp's schema, not a recording.)"""
    data = tmp_path / "data"
    (data / "warehouse").mkdir(parents=True)
    (data / "players" / "aCurtis X89").mkdir(parents=True)
    store = levelup_dir / "players" / "aCurtis X89" / "stats.duckdb"
    with duckdb.connect(str(data / "warehouse" / "shared_matches.duckdb")) as con:
        con.execute(f"ATTACH '{store}' AS v4 (READ_ONLY)")
        con.execute("CREATE TABLE match_registry AS SELECT match_id, start_time, end_time, playlist_id, map_id, "
                    "pair_id, game_variant_id, time_played_seconds AS duration_seconds FROM v4.match_stats")
        con.execute("CREATE TABLE match_participants AS SELECT * FROM v4.match_participants")
        con.execute("CREATE TABLE medals_earned AS SELECT match_id, '2535445291321133' AS xuid, medal_name_id, count "
                    "FROM v4.medals_earned")
        con.execute("CREATE TABLE highlight_events AS SELECT * FROM v4.highlight_events")
    with duckdb.connect(str(data / "players" / "aCurtis X89" / "stats.duckdb")) as con:
        con.execute(f"ATTACH '{store}' AS v4 (READ_ONLY)")
        con.execute("CREATE TABLE sync_meta AS SELECT * FROM v4.sync_meta")
        con.execute("CREATE TABLE personal_score_awards AS SELECT * FROM v4.personal_score_awards")
    [player] = find_players(tmp_path)  # a LevelUp checkout: its data/ folder is found
    [v4] = find_players(levelup_dir)
    assert player.layout == "shared_matches" and player.matches == v4.matches
    new = legacy_frames(documents(player, sorted(player.matches)))
    old = legacy_frames(documents(v4, sorted(v4.matches)))
    figures = ["match_id", "xuid", "kills", "deaths", "assists", "shots_fired", "shots_hit", "outcome", "team_id"]
    assert new["match_facts"].select(figures).equals(old["match_facts"].select(figures))
    for table in ("match_participants", "medals", "personal_scores", "highlight_events"):
        assert new[table].sort(pl.all()).equals(old[table].sort(pl.all())), table


def test_bad_input_is_one_line(tmp_path, levelup_dir, data_env):
    empty = CliRunner().invoke(main, ["import", "levelup", str(tmp_path)])
    assert empty.exit_code == 2 and "no LevelUp store found" in empty.output and empty.output.count("\n") == 1
    nobody = CliRunner().invoke(main, ["import", "levelup", str(levelup_dir), "--player", "Nobody"])
    assert nobody.exit_code == 2 and "aCurtis X89 (2535445291321133)" in nobody.output
    assert not data_env.exists()


def test_an_interrupted_import_is_completed_by_the_next(levelup_dir, data_env):
    """Documents landed but never derived (a kill between the two): the next import sees the partitions are not
    derived although nothing changed, and derives them."""
    [player] = find_players(levelup_dir)
    first = import_player(Warehouse(data_env), player)
    assert first.written == 8 and first.stale
    again = import_player(Warehouse(data_env), player, dry_run=True)
    assert again.written == 0 and again.unchanged == 8
    assert [m.label for m in again.stale] == ["2024-08", "2024-09", "2025-01"]  # not derived yet


# ---- import, sync, import again -------------------------------------------------------------------------------
@pytest.mark.slow
def test_import_then_sync_then_import_again(levelup_dir, halo_api_dir, reference_dir, data_env, recorded_stats,
                                            tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(reference_dir))
    matches = {r["match_id"]: r for r in store_rows(levelup_dir, "SELECT * FROM match_stats")}

    # --dry-run, through the real entry point: players, months, counts; nothing written.
    dry = subprocess.run([sys.executable, "-m", "halo_pipeline.cli", "import", "levelup", str(levelup_dir),
                          "--dry-run"], cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "player 2535445291321133 (aCurtis X89)" in dry.stdout and "8 would write" in dry.stdout
    for line in ("2024-08: 1 match(es)", "2024-09: 2 match(es)", "2025-01: 5 match(es)", "nothing written"):
        assert line in dry.stdout
    assert not data_env.exists()

    # The import into an empty warehouse: every match of the store, its figures, marked levelup.
    out = cli("import", "levelup", str(levelup_dir))
    assert "registered 2535445291321133" in out
    with instance() as inst:
        assert inst.get_dynamic_partitions(PLAYERS) == [str(OWNER_XUID)]
    assert "aCurtis X89" in cli("players", "list")
    wh = Warehouse(data_env)
    facts = wh.read_table("match_facts")
    assert sorted(facts["match_id"]) == sorted(matches) and set(facts["source"]) == {"levelup"}
    for row in facts.iter_rows(named=True):
        mine = matches[row["match_id"]]
        for column in ("kills", "deaths", "assists", "shots_fired", "shots_hit", "outcome", "team_id",
                       "headshot_kills", "max_killing_spree"):
            assert row[column] == mine[column], (row["match_id"], column)
        assert row["start_time"] == mine["start_time"].replace(tzinfo=UTC)
        assert row["accuracy"] == pytest.approx(mine["accuracy"]) and row["kda"] == pytest.approx(mine["kda"])
    participants = wh.read_table("match_participants")
    stored = store_rows(levelup_dir, "SELECT * FROM match_participants")
    assert participants.height == len(stored) == 48 and set(participants["source"]) == {"levelup"}
    got = {(r["match_id"], r["xuid"]): r for r in participants.iter_rows(named=True)}
    for mine in stored:
        row = got[(mine["match_id"], int(mine["xuid"]))]
        assert (row["kills"], row["deaths"], row["assists"], row["shots_fired"], row["shots_hit"],
                row["personal_score"]) == (mine["kills"], mine["deaths"], mine["assists"], mine["shots_fired"],
                                           mine["shots_hit"], mine["score"])
    medals = wh.read_table("medals")
    assert sorted(medals.select("match_id", "name_id", "count").rows()) == sorted(
        (r["match_id"], r["medal_name_id"], r["count"]) for r in store_rows(levelup_dir, "SELECT * FROM medals_earned"))
    assert wh.read_table("personal_scores").height == 25
    events = wh.read_table("highlight_events")
    assert events.height == 646 and set(events["source"]) == {"levelup"}

    # A second import changes nothing: no file, no run.
    before, runs = files_of(data_env), run_count()
    assert "nothing changed" in cli("import", "levelup", str(levelup_dir))
    assert files_of(data_env) == before and run_count() == runs

    # A sync against the emulator (the film of one match expired): the API's figures replace LevelUp's.
    recordings = tmp_path / "recordings"
    shutil.copytree(halo_api_dir / "responses", recordings / "responses")
    (recordings / "film").mkdir()
    for name in ("match_stats.json", f"38_{ODDBALL}.gzip"):  # no film of EXPIRED_FILM
        shutil.copy(halo_api_dir / "film" / name, recordings / "film" / name)
    with Emulator(recordings=recordings) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        assert "FAILED" not in cli("sync")
    facts = wh.read_table("match_facts")
    expected = owner_rows(recorded_stats.values(), OWNER_XUID)
    assert sorted(facts["match_id"]) == sorted(expected) and set(facts["source"]) == {"api"}
    for row in facts.iter_rows(named=True):
        exp = expected[row["match_id"]]
        assert (row["kills"], row["deaths"], row["assists"], row["shots_fired"], row["shots_hit"], row["outcome"]) == (
            exp["kills"], exp["deaths"], exp["assists"], exp["shots_fired"], exp["shots_hit"], exp["outcome"])
    assert facts.filter(pl.col("match_id") == TEAM_SWITCH)["shots_fired"].to_list() == [28]
    owner_medals = wh.read_table("medals").filter(pl.col("xuid") == OWNER_XUID)
    assert set(owner_medals["source"]) == {"api"}
    for match_id, exp in expected.items():
        got_medals = owner_medals.filter(pl.col("match_id") == match_id)
        assert dict(got_medals.select("name_id", "count").rows()) == exp["medals"]
    participants = wh.read_table("match_participants")
    assert set(participants["source"]) == {"api"}
    assert participants.height == sum(len(b["Players"]) for b in recorded_stats.values())  # bots too, now
    events = wh.read_table("highlight_events")
    by_match = dict(events.group_by("match_id", "source").len().select(pl.col("match_id") + "|" + pl.col("source"),
                                                                         "len").rows())
    assert by_match == {f"{ODDBALL}|api": 640, f"{EXPIRED_FILM}|levelup": 6}  # LevelUp's only where no film
    found = wh.read_table("levelup_disagreements")
    assert sorted(found.select("match_id", "table_name", "column_name").rows()) == [
        (TEAM_SWITCH, "match_facts", "accuracy"), (TEAM_SWITCH, "match_facts", "shots_fired"),
        (TEAM_SWITCH, "match_participants", "accuracy"), (TEAM_SWITCH, "match_participants", "shots_fired")]
    with instance() as inst:  # the sync's asset check reports them (a warning: the API's figures are kept)
        history = inst.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("levelup_disagreements"), "levelup_agrees_with_api"), limit=20)
        evaluations = [r.event.dagster_event.event_specific_data for r in history if r.event is not None
                       and r.event.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert [e.metadata["failures"].value for e in evaluations if not e.passed] == [4]  # one partition

    # Importing again after the sync: nothing changes, the report counts the disagreements.
    before, runs = files_of(data_env), run_count()
    out = cli("import", "levelup", str(levelup_dir))
    assert "8 with the API's body landed" in out and "match_facts.shots_fired: 1" in out
    assert files_of(data_env) == before and run_count() == runs
    doc = orjson.loads(gzip.decompress(wh.legacy.path(OWNER_XUID, "2024-09-01", TEAM_SWITCH).read_bytes()))
    assert doc["tables"]["match_stats"][0]["shots_fired"] == 6  # the legacy source is kept as LevelUp wrote it


def test_the_emulator_takes_a_gamertag_where_the_api_does(halo_api_dir):
    """LevelUp pages ``/hi/players/{gamertag}/matches``; the recordings carry no gamertag but their films do."""
    import asyncio

    import aiohttp

    async def go(url: str):
        async with aiohttp.ClientSession(headers={"x-343-authorization-spartan": "t"}) as session:
            async with session.get(f"{url}/halostats/hi/players/aCurtis%20X89/matches?count=25") as history:
                page = await history.json()
            async with session.get(f"{url}/halostats/hi/players/xuid({OWNER_XUID})/matches?count=25") as by_xuid:
                same = await by_xuid.json()
            async with session.get(f"{url}/profile/users/gt(acurtis x89)") as user:
                return page, same, await user.json()

    with Emulator(recordings=halo_api_dir) as emulator:
        page, same, user = asyncio.run(go(emulator.url))
    assert page["ResultCount"] == 8 and page == same
    assert user["xuid"] == str(OWNER_XUID) and user["gamertag"] == "aCurtis X89"
