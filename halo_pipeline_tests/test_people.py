"""People: profiles (once per player per day), declared friends (nicknames, removal, bad input), teammates —
checked against figures computed here from the raw JSON, on the recordings and on a synthetic world with team
changes, through the real sync (emulator over HTTP, the runner's Dagster runs, Parquet files, DuckDB catalog)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import polars as pl
import pytest
from click.testing import CliRunner
from spnkr.models.economy import PlayerCareerRank, PlayerCustomization
from spnkr.models.gamecms_hacs import CareerRewardTrack

from halo_pipeline.api.client import HaloApiClient, run_api
from halo_pipeline.api.resilience import process_gate
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.cli import main
from halo_pipeline.definitions import defs as load_defs
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.ids import InvalidInput
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.runner import refresh_friends, sync_players
from halo_pipeline.services import people as sp
from halo_pipeline.services.friends import CLI, Friend, FriendsStore, collect_friends
from halo_pipeline.services.maintenance import export_table
from halo_pipeline.storage.catalog import build_catalog, connect_catalog
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms import people as tp
from halo_pipeline_tests.conftest import OWNER_XUID, REPO, stats_files

defs = load_defs()
REFERENCE = DEFAULT_REFERENCE_DIR
SUMS = ("matches_together", "matches_same_team", "matches_opposed", "wins_together", "losses_together",
        "ties_together", "wins_against", "losses_against", "owner_kills", "owner_deaths", "teammate_kills",
        "teammate_deaths")


# --------------------------------------------------------------------------------------------------- the raw JSON


def _teams(player: dict) -> set:
    return {e["TeamId"] for e in player["PlayerTeamStats"]}


def _totals(player: dict, field: str) -> int:
    return sum(e["Stats"]["CoreStats"][field] for e in player["PlayerTeamStats"])


def _xuid(player: dict) -> int | None:
    pid = player["PlayerId"]
    return int(pid[5:-1]) if player["PlayerType"] == 1 and pid.startswith("xuid(") else None


def raw_teammates(bodies: list[dict], owner: int) -> dict[int, Counter]:
    """Per other human of the owner's matches, straight from the stats JSON: same team = a TeamId shared over
    every PlayerTeamStats entry of both."""
    out: dict[int, Counter] = {}
    seen = set()
    for body in bodies:
        players = {_xuid(p): p for p in body["Players"] if _xuid(p)}
        if body["MatchId"] in seen or owner not in players:
            continue
        seen.add(body["MatchId"])
        me = players.pop(owner)
        for xuid, other in players.items():
            row = out.setdefault(xuid, Counter())
            same = bool(_teams(me) & _teams(other))
            row["matches_together"] += 1
            row["matches_same_team" if same else "matches_opposed"] += 1
            outcome = {2: "wins", 3: "losses", 1: "ties"}.get(me["Outcome"])
            if same:
                if outcome:
                    row[f"{outcome}_together"] += 1
                for who, p in (("owner", me), ("teammate", other)):
                    row[f"{who}_kills"] += _totals(p, "Kills")
                    row[f"{who}_deaths"] += _totals(p, "Deaths")
            elif outcome in ("wins", "losses"):
                row[f"{outcome}_against"] += 1
    return out


def raw_friends(bodies: list[dict], owner: int, friends: set[int]) -> dict[str, list[int]]:
    """match id → the owner's friends present (either team), sorted."""
    return {b["MatchId"]: sorted({_xuid(p) for p in b["Players"]} & friends)
            for b in bodies if f"xuid({owner})" in {p["PlayerId"] for p in b["Players"]}}


def warehouse_teammates(wh: Warehouse, owner: int) -> dict[int, Counter]:
    summed = wh.read_table("teammates", owner).group_by("teammate_xuid").agg(pl.col(list(SUMS)).sum())
    return {r["teammate_xuid"]: Counter({k: v for k, v in r.items() if k in SUMS and v})
            for r in summed.iter_rows(named=True)}


def sync(instance) -> None:
    report = sync_players(defs, instance, HaloApiResource(), WarehouseResource(), log=lambda _: None)
    assert all(ok for _, job, _, ok in report.runs if job != "sync_job"), report.runs


# --------------------------------------------------------------------------------------------------- recordings


def test_recordings_teammates_equal_the_raw_json_and_the_friend_shows_by_nickname(
        recorded_emulator, halo_api_dir, tmp_path, monkeypatch):
    bodies = [json.loads(p.read_bytes()) for p in stats_files(halo_api_dir)]
    slayer = next(b for b in bodies if b["MatchId"].startswith("b4be1c44"))
    mate = next(x for p in slayer["Players"] if (x := _xuid(p)) != OWNER_XUID and p["LastTeamId"] == 1)
    players_file = tmp_path / "players.yaml"
    players_file.write_text(f"players:\n  - xuid: {OWNER_XUID}\n    friends:\n      - xuid: {mate}\n"
                            "        nickname: Wingman\n")
    for name, value in (("HALO_DATA_DIR", tmp_path / "data"), ("HALO_REFERENCE_DIR", REFERENCE),
                        ("HALO_PLAYERS_FILE", players_file)):
        monkeypatch.setenv(name, str(value))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(OWNER_XUID)])
    sync(instance)
    wh = Warehouse(tmp_path / "data")

    expected = raw_teammates(bodies, OWNER_XUID)
    assert sum(c["matches_same_team"] for c in expected.values()) > 0
    assert warehouse_teammates(wh, OWNER_XUID) == {x: +c for x, c in expected.items()}

    facts = wh.read_table("match_facts", OWNER_XUID)
    present = raw_friends(bodies, OWNER_XUID, {mate})
    assert dict(zip(facts["match_id"], facts["friends_xuids"].to_list(), strict=True)) == present
    assert facts.filter(pl.col("match_id") == slayer["MatchId"])["known_teammates"].item() == 1
    assert facts["with_friends"].to_list() == [bool(present[m]) for m in facts["match_id"]]

    with connect_catalog(wh) as con:
        name, is_friend = con.execute("SELECT name, is_friend FROM mv_top_teammates WHERE teammate_xuid = ?",
                                      [mate]).fetchone()
        owner = con.execute("SELECT gamertag, is_registered, service_tag, first_seen, matches_seen FROM players "
                            "WHERE xuid = ?", [OWNER_XUID]).fetchone()
    assert name.startswith("Wingman") and is_friend  # "Wingman (<gamertag>)": the film named the teammate
    # the recorded owner's gamertag (responses/get_profiles.json); no economy recording: no service tag
    assert owner[:3] == ("aCurtis X89", True, None) and owner[4] == len(facts)
    assert owner[3] == facts["start_time"].min()
    report = (wh.root / "reports" / f"{OWNER_XUID}.html").read_text()
    assert "Top teammates" in report and f"{name} ★" in report and "Sessions with friends" in report


def test_people_of_participant_rows_equal_those_of_the_bodies(recorded_stats):
    """LevelUp's matches are known from rows only: who played with the owner, read from match_participants,
    equals what the bodies say (team switches included: team_ids)."""
    bodies = list(recorded_stats.values())
    humans = sorted({x for b in bodies for p in b["Players"] if (x := _xuid(p)) and x != OWNER_XUID})
    friends, known = set(humans[::3]), set(humans[::2])
    from_bodies = tp.match_people(bodies, OWNER_XUID, friends, known).sort("match_id")
    from_rows = tp.match_people_of_participants(tm.match_participants(bodies), OWNER_XUID, friends, known)
    assert from_bodies["known_teammates"].sum() > 0 and from_bodies["with_friends"].any()
    assert from_rows.sort("match_id").equals(from_bodies)


# --------------------------------------------------------------------------------------------------- synthetic


@pytest.mark.slow
def test_profiles_once_a_day_teammates_with_team_changes_and_a_removed_friend(tmp_path, monkeypatch):
    world = SyntheticWorld(seed=12, players=2, months=3, matches_per_month=30)
    owner, friend = world.players
    bodies = [orjson.loads(world.match_stats_body(m)) for m in world.match_ids(owner.xuid)]
    switched = [b for b in bodies if any(len(p["PlayerTeamStats"]) > 1 and _xuid(p) for p in b["Players"])]
    assert switched, "the world must hold a human who changed teams in the owner's matches"
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(REFERENCE))
    monkeypatch.setenv("HALO_PLAYERS_FILE", str(tmp_path / "none.yaml"))
    wh = Warehouse(tmp_path / "data")
    FriendsStore(wh.data_dir).add(Friend(owner.xuid, friend.xuid, friend.gamertag, "Bestie", CLI))
    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(owner.xuid)])
        sync(instance)
        cursor = dg.evaluate_automation_conditions(defs, instance).cursor
        first = emulator.counts()
        emulator.reset_counts()
        sync(instance)  # the same day: no profile is asked again
        second = emulator.counts()
        # friends re-materialized with the same table: declarative automation re-derives no match_facts
        unchanged = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
        assert not unchanged.get_requested_partitions(dg.AssetKey("match_facts"))
        emulator.reset_counts()
        monkeypatch.setattr(sp, "utc_today", lambda: date.today() + timedelta(days=1))
        sync(instance)  # the next day: asked again, once
        third = emulator.counts()

    # owner + friend (not registered, not every stranger met): customization + career rank each, one users call
    assert first["requests"]["customization"] == first["requests"]["career_rank"] == 2
    assert first["requests"]["career_track"] == 1
    assert not {"customization", "career_rank", "career_track", "users"} & set(second["requests"]), second
    assert third["requests"]["customization"] == third["requests"]["career_rank"] == 2
    assert third["requests"].get("career_track", 0) == 0  # the landed track names every rank

    profiles = sp.read_profiles(wh)
    assert profiles.height == 4 and set(profiles["xuid"]) == {owner.xuid, friend.xuid}
    for row in tp.latest_profiles(profiles).iter_rows(named=True):
        appearance = world.customization(row["xuid"])["Appearance"]
        progress = world.career_rank(row["xuid"])["CurrentProgress"]
        rank = world.career_track()["Ranks"][progress["Rank"] - 1]
        title = " ".join(w for w in (rank[k]["value"] for k in ("RankSubTitle", "RankTitle", "RankTier")) if w)
        assert (row["service_tag"], row["emblem_path"], row["backdrop_path"]) == (
            appearance["ServiceTag"], appearance["Emblem"]["EmblemPath"], appearance["BackdropImagePath"])
        assert (row["career_rank"], row["career_rank_xp"], row["career_rank_tier"], row["career_rank_title"]) == (
            progress["Rank"], progress["PartialProgress"], rank["TierType"], title)

    assert warehouse_teammates(wh, owner.xuid) == {x: +c for x, c in raw_teammates(bodies, owner.xuid).items()}
    players = sp.read_players(wh)  # every human met, one row each; profiles for the owner and the friend only
    assert players.height == players["xuid"].n_unique() > 2
    assert players.filter(pl.col("service_tag").is_not_null())["xuid"].sort().to_list() == sorted(
        [owner.xuid, friend.xuid])
    assert export_table(wh, "players", tmp_path / "p.csv", "csv", str(friend.xuid)) == 1
    assert export_table(wh, "friends", tmp_path / "f.csv", "csv") == 1
    facts = wh.read_table("match_facts", owner.xuid)
    present = raw_friends(bodies, owner.xuid, {friend.xuid})
    assert any(present.values())
    assert dict(zip(facts["match_id"], facts["friends_xuids"].to_list(), strict=True)) == present

    # The friend removed: gone from friends, the flags and the nicknames after the re-derive.
    FriendsStore(wh.data_dir).remove(owner.xuid, "Bestie")
    assert defs.resolve_job_def("people_job").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("friends")]).success
    changed = dg.evaluate_automation_conditions(defs, instance, cursor=unchanged.cursor)
    assert changed.get_requested_partitions(dg.AssetKey("match_facts")) == {  # every month of the owner
        k for k in instance.get_materialized_partitions(dg.AssetKey("match_facts"))}
    assert refresh_friends(defs, instance, WarehouseResource(), owner.xuid, rederive=True).ok
    with connect_catalog(wh) as con:
        assert con.execute("SELECT count(*) FROM friends").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM match_facts WHERE with_friends OR len(friends_xuids) > 0"
                           ).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM sessions WHERE with_friends").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM mv_top_teammates WHERE is_friend OR nickname IS NOT NULL"
                           ).fetchone()[0] == 0
    assert "Bestie" not in (wh.root / "reports" / f"{owner.xuid}.html").read_text()


# --------------------------------------------------------------------------------------------------- bad input


def _files(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} if path.exists() else {}


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_bad_friends_get_one_line_and_change_nothing(data_env, tmp_path, monkeypatch):
    world = SyntheticWorld(seed=3, players=2, months=1, matches_per_month=4)
    owner, other = world.players
    monkeypatch.setenv("HALO_PLAYERS_FILE", str(tmp_path / "players.yaml"))
    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        assert _run("players", "add", owner.gamertag)[0] == 0
        before = _files(data_env)
        for args, words in [
            ((owner.gamertag, "Nobody Here"), "unknown gamertag"),
            ((owner.gamertag, owner.gamertag.upper()), "own friend"),
            ((str(owner.xuid), str(owner.xuid)), "own friend"),
            ((owner.gamertag, other.gamertag, "--nickname", "Bob\x1b[31m"), "control characters"),
            ((owner.gamertag, other.gamertag, "--nickname", "two\nlines"), "control characters"),
            ((owner.gamertag, other.gamertag, "--nickname", "x" * 40), "1 to 32"),
            ((other.gamertag, owner.gamertag), "not registered"),
            ((owner.gamertag, "12345"), "invalid xuid"),
        ]:
            code, _, err = _run("friends", "add", *args)
            assert code == 2 and err.startswith("error:") and err.strip().count("\n") == 0, (args, err)
            assert words in err, (args, err)
            assert _files(data_env) == before, args
        code, _, err = _run("friends", "remove", owner.gamertag, other.gamertag)
        assert code == 2 and "not a friend" in err and _files(data_env) == before

        # A players file declaring the owner as its own friend: one line naming the entry; the friends asset
        # fails and the last table stays.
        assert _run("friends", "add", owner.gamertag, other.gamertag, "--nickname", "Pal")[0] == 0
        table = _files(data_env / "warehouse" / "friends")
        assert table
        (tmp_path / "players.yaml").write_text(
            f"players:\n  - xuid: {owner.xuid}\n    friends:\n      - xuid: {owner.xuid}\n")
        code, _, err = _run("friends", "list")
        assert code == 2 and "own friend" in err and "players[0].friends[0]" in err and err.count("\n") == 1
        (tmp_path / "players.yaml").write_text(  # only resolving the owner's gamertag shows it
            f"players:\n  - gamertag: {owner.gamertag}\n    friends:\n      - xuid: {owner.xuid}\n")
        wh = Warehouse(data_env)
        with pytest.raises(InvalidInput, match=r"players\[0\]\.friends\[0\]: .*own friend"):
            collect_friends(wh, [], HaloApiResource().client, tmp_path / "players.yaml")
        assert not refresh_friends(defs, dg.DagsterInstance.get(), WarehouseResource()).ok
        assert _files(data_env / "warehouse" / "friends") == table
        (tmp_path / "players.yaml").write_text(
            f"players:\n  - gamertag: {owner.gamertag}\n    friends:\n      - xuid: {other.xuid}\n"
            "        nickname: \"tab\\there\"\n")
        with pytest.raises(InvalidInput, match="control characters"):
            collect_friends(wh, [], HaloApiResource().client, tmp_path / "players.yaml")


# --------------------------------------------------------------------------------------------------- units


def _participant(match_id: str, xuid: int | None, teams: list[int], outcome: int = 2, kills: int = 5,
                 deaths: int = 3) -> dict:
    return {"match_id": match_id, "xuid": xuid, "team_id": teams[-1], "team_ids": teams, "outcome": outcome,
            "kills": kills, "deaths": deaths, "assists": 1, "time_played_seconds": 600.0}


def test_teammates_hand_computed_with_a_team_change():
    me, ally, foe, mover = 1, 2, 3, 4
    rows = [_participant("a", me, [0], outcome=2, kills=10, deaths=2), _participant("a", ally, [0], kills=4),
            _participant("a", foe, [1]), _participant("a", mover, [1, 0], kills=6, deaths=6),
            _participant("a", None, [0]),  # a bot: never a teammate
            _participant("b", me, [1], outcome=3, kills=2, deaths=8), _participant("b", ally, [0]),
            _participant("b", mover, [1, 0], kills=1, deaths=1)]
    participants = pl.DataFrame(rows, schema=_schema())
    facts = pl.DataFrame({"match_id": ["a", "b"], "start_time": [date(2025, 1, 1), date(2025, 1, 2)]}).with_columns(
        pl.col("start_time").cast(pl.Datetime("us", "UTC")))
    out = {r["teammate_xuid"]: r for r in tp.teammates(participants, facts, me, "2025-01-01").iter_rows(named=True)}
    assert set(out) == {ally, foe, mover}
    assert (out[ally]["matches_same_team"], out[ally]["matches_opposed"], out[ally]["wins_against"]) == (1, 1, 0)
    assert out[ally]["losses_against"] == 1 and out[foe]["wins_against"] == 1
    # the mover shared a team with the owner in both matches (over every entry): 10+6 kills, 2+6 deaths, then 2+1, 8+1
    assert (out[mover]["matches_same_team"], out[mover]["wins_together"], out[mover]["losses_together"]) == (2, 1, 1)
    assert out[mover]["combined_kd"] == pytest.approx((10 + 6 + 2 + 1) / (2 + 6 + 8 + 1))
    assert out[ally]["win_rate_together"] == 1.0 and out[foe]["win_rate_together"] is None


def _schema() -> dict:
    return {"match_id": pl.Utf8, "xuid": pl.Int64, "team_id": pl.Int8, "team_ids": pl.List(pl.Int8),
            "outcome": pl.Int8, "kills": pl.Int16, "deaths": pl.Int16, "assists": pl.Int16,
            "time_played_seconds": pl.Float32}


def test_top_teammates_equal_the_catalog_view(tmp_path):
    """The report's roll-up (polars) and the catalog's mv_top_teammates (SQL) give the same figures."""
    wh = Warehouse(tmp_path)
    teammates = pl.concat([
        tp.with_teammate_ratios(pl.DataFrame({
            "xuid": [1, 1], "month_start": [m, m], "teammate_xuid": [2, 3], "matches_together": [3, 2],
            "matches_same_team": [3, n], "matches_opposed": [0, 2 - n], "wins_together": [2, n],
            "losses_together": [1, 0], "ties_together": [0, 0], "wins_against": [0, 1], "losses_against": [0, 0],
            "owner_kills": [30, 5], "owner_deaths": [20, 5], "owner_assists": [3, 1], "teammate_kills": [9, 2],
            "teammate_deaths": [12, 1], "teammate_assists": [1, 1], "time_played_together_seconds": [900.0, 60.0],
            "first_match_at": [None, None], "last_match_at": [None, None]})).select(
            [pl.col(c).cast(t) for c, t in tp.TEAMMATES_SCHEMA.items()])
        for m, n in (("2025-01-01", 1), ("2025-02-01", 0))])
    for m in ("2025-01-01", "2025-02-01"):
        wh.write_partition("teammates", 1, m, teammates.filter(pl.col("month_start") == m))
    friends = pl.DataFrame([{"xuid": 1, "friend_xuid": 3, "gamertag": "Three", "nickname": "Trey", "source": "cli",
                             "registered": False, "added_at": None}], schema=tp.FRIENDS_SCHEMA)
    (wh.root / "friends" / "player=1").mkdir(parents=True)
    friends.write_parquet(wh.root / "friends" / "player=1" / "data.parquet")
    players = pl.DataFrame({"xuid": [2, 3], "gamertag": ["Two", "Three"]}).with_columns(
        [pl.lit(None, t).alias(c) for c, t in tp.PLAYERS_SCHEMA.items() if c not in ("xuid", "gamertag")]).select(
        list(tp.PLAYERS_SCHEMA)).cast(tp.PLAYERS_SCHEMA)
    (wh.root / "players").mkdir(parents=True)
    players.write_parquet(sp.players_path(wh))
    build_catalog(wh)
    top = tp.top_teammates(teammates, friends, players)
    with duckdb.connect(str(wh.catalog_path), read_only=True) as con:
        view = con.execute("SELECT teammate_xuid, name, is_friend, teammate_rank, matches_same_team, wins_together, "
                           "combined_kd, win_rate_together FROM mv_top_teammates ORDER BY teammate_rank").fetchall()
    assert [r[:6] for r in view] == [(2, "Two", False, 1, 6, 4), (3, "Trey (Three)", True, 2, 1, 1)]
    assert [r[:6] for r in view] == list(top.select("teammate_xuid", "name", "is_friend", "teammate_rank",
                                                     "matches_same_team", "wins_together").iter_rows())
    ratios = [v for row in top.select("combined_kd", "win_rate_together").iter_rows() for v in row]
    assert [v for r in view for v in r[6:]] == pytest.approx(ratios)
    assert view[0][6] == pytest.approx((60 + 18) / (40 + 24))


def test_sessions_with_friends_and_old_partitions():
    from halo_pipeline.transforms import analytics as ta
    from halo_pipeline_tests.analytics_data import crossing_month

    facts = crossing_month()
    assert ta.sessions(facts)["with_friends"].to_list() == [False, False]  # derived before the columns existed
    facts = facts.with_columns(known_teammates=pl.Series([1, 0, 2, 0], dtype=pl.Int16),
                               with_friends=pl.Series([True, False, True, False]),
                               friends_xuids=pl.Series([[7], [], [7, 9], []], dtype=pl.List(pl.Int64)))
    out = ta.sessions(facts)
    assert out.select("known_teammates", "with_friends", "friends_xuids").rows() == [(2, True, [7, 9]),
                                                                                     (0, False, [])]


def test_emulator_profiles_parse_with_spnkr_and_the_recordings_answer_what_they_hold(halo_api_dir):
    world = SyntheticWorld(seed=5, players=1, months=1, matches_per_month=2)
    xuid = world.players[0].xuid
    with Emulator(recordings=halo_api_dir, synthetic=world) as emulator:
        async def go():
            api = await HaloApiClient.open(spartan_token="t", clearance_token="t", gate=process_gate(50, 4),
                                           base_url=emulator.url)
            async with api:
                bodies = [orjson.loads(await f()) for f in (lambda: api.player_customization(xuid),
                                                            lambda: api.player_career_rank(xuid),
                                                            api.career_reward_track)]
                users = await api.users_by_xuid([OWNER_XUID])
                try:
                    await api.player_customization(OWNER_XUID)
                except Exception as exc:  # noqa: BLE001 - its status is the assertion
                    return bodies, users, getattr(exc, "status", None)
            return bodies, users, None

        (custom, career, track), users, status = run_api(go())
        assert emulator.counts()["by_service"]["economy"] == 3  # the :443 economy host is redirected too
    assert PlayerCustomization(**custom).appearance.service_tag == custom["Appearance"]["ServiceTag"]
    assert PlayerCareerRank(**career).current_progress.rank == career["CurrentProgress"]["Rank"]
    assert len(CareerRewardTrack(**track).ranks) == 272
    assert custom == world.customization(xuid)  # deterministic: the same seed, the same profile
    assert [u["gamertag"] for u in users] == ["aCurtis X89"]  # responses/get_profiles.json
    assert status == 404  # no customization recording for the recorded owner


def test_readme_lists_the_people_tables_with_their_columns():
    readme = (REPO / "README.md").read_text()
    for table, columns in (("players", tp.PLAYERS_SCHEMA), ("friends", tp.FRIENDS_SCHEMA),
                           ("teammates", tp.TEAMMATES_SCHEMA), ("mv_top_teammates", ["name", "nickname",
                                                                                       "teammate_rank"])):
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{table}` |")), None)
        assert row is not None, f"README table of tables: no row for {table}"
        missing = [c for c in columns if c not in row and c not in ("xuid",)]
        assert not missing, (table, missing)


def test_concurrent_friends_commands_lose_no_friend(tmp_path):
    """Two processes declaring friends at once (read, add, write the whole store): every friend is kept."""
    import multiprocessing

    from halo_pipeline_tests.friends_worker import add_friends

    owner, n = 2533274800000001, 40
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=add_friends, args=(str(tmp_path), owner, 2533274810000000 + k * 100, n,
                                                          barrier)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert len({f.xuid for f in FriendsStore(tmp_path).read()}) == 2 * n


def test_declared_players_sensor_registers_friends_and_requests_the_people_job(tmp_path, monkeypatch):
    from halo_pipeline.defs.sync.sensors import declared_players_sensor

    world = SyntheticWorld(seed=9, players=2, months=1, matches_per_month=2)
    owner, friend = world.players
    players_file = tmp_path / "players.yaml"
    players_file.write_text(f"players:\n  - gamertag: {owner.gamertag}\n    friends:\n"
                            f"      - {{gamertag: {friend.gamertag}, nickname: Pal, register: true}}\n")
    monkeypatch.setenv("HALO_PLAYERS_FILE", str(players_file))
    with Emulator(synthetic=world) as emulator:
        instance = dg.DagsterInstance.ephemeral()
        resources = {"halo_api": HaloApiResource(api_url=emulator.url),
                     "warehouse": WarehouseResource(data_dir=str(tmp_path / "data"))}
        ticks = [declared_players_sensor(dg.build_sensor_context(instance=instance, resources=resources))
                 for _ in range(2)]
    (added,) = ticks[0].dynamic_partitions_requests
    assert sorted(added.partition_keys) == sorted([str(owner.xuid), str(friend.xuid)])
    assert [r.run_key for r in ticks[0].run_requests] == [r.run_key for r in ticks[1].run_requests]  # deduped
    assert len(ticks[0].run_requests) == 1
