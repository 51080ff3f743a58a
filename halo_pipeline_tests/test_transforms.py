"""The "every figure equals the raw JSON" ladder for the pure transforms.

Expectations are computed here directly from the recorded JSON (summing over ``PlayerTeamStats``), independently
of the transform code, for every recorded match-stats body, for the owner and for every human participant.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from datetime import UTC
from pathlib import Path

import polars as pl
import pytest
import spnkr.film.highlight_events as spnkr_events
from pydantic import ValidationError
from spnkr.models.stats import MatchStats

from halo_pipeline.transforms import film, matches, skill
from halo_pipeline.transforms._common import duration_seconds, parse_time
from halo_pipeline.transforms.film import FilmDecodeError
from halo_pipeline_tests.conftest import OWNER_XUID

ODDBALL_FILM = "38_63391382-6b88-43f9-9ff4-6313404c419c.gzip"


# ----------------------------------------------------------------------------------------------- helpers


def _expected(player: dict) -> dict:
    """Independent expectations for one player: plain sums over their PlayerTeamStats entries."""
    cores = [entry["Stats"]["CoreStats"] for entry in player["PlayerTeamStats"]]
    medal_counts: Counter[int] = Counter()
    for core in cores:
        for medal in core["Medals"]:
            medal_counts[medal["NameId"]] += medal["Count"]
    return {
        "kills": sum(c["Kills"] for c in cores),
        "deaths": sum(c["Deaths"] for c in cores),
        "assists": sum(c["Assists"] for c in cores),
        "shots_fired": sum(c["ShotsFired"] for c in cores),
        "shots_hit": sum(c["ShotsHit"] for c in cores),
        "score": sum(c["Score"] for c in cores),
        "personal_score": sum(c["PersonalScore"] for c in cores),
        "damage_dealt": sum(c["DamageDealt"] for c in cores),
        "damage_taken": sum(c["DamageTaken"] for c in cores),
        "outcome": player["Outcome"],
        "rank": player["Rank"],
        "team_id": player["LastTeamId"],
        "medal_count": sum(medal_counts.values()),
        "medals": dict(medal_counts),
    }


_FIGURES = ("kills", "deaths", "assists", "shots_fired", "shots_hit", "score", "personal_score",
            "damage_dealt", "damage_taken", "outcome", "rank", "team_id", "medal_count")


def _medals_of(medals_df: pl.DataFrame, match_id: str, player_id: str) -> dict[int, int]:
    rows = medals_df.filter((pl.col("match_id") == match_id) & (pl.col("player_id") == player_id))
    return dict(zip(rows["name_id"].to_list(), rows["count"].to_list(), strict=False))


def _trunc2(value: float) -> float:
    """Truncate toward zero to 2 decimals, as the API does for KDA and Accuracy."""
    return math.trunc(round(value * 100, 6)) / 100


@pytest.fixture(scope="module")
def bodies(recorded_stats: dict[str, dict]) -> list[dict]:
    return list(recorded_stats.values())


# ----------------------------------------------------------------------------------------------- match stats


def test_owner_figures_equal_raw_json(recorded_stats: dict[str, dict]) -> None:
    assert len(recorded_stats) == 8
    owner_id = f"xuid({OWNER_XUID})"
    for name, body in recorded_stats.items():
        facts = matches.match_facts([body], OWNER_XUID)
        assert facts.height == 1, name
        row = facts.row(0, named=True)
        owner = next(p for p in body["Players"] if p["PlayerId"] == owner_id)
        expected = _expected(owner)
        for key in _FIGURES:
            assert row[key] == expected[key], f"{name}: {key} {row[key]} != {expected[key]}"
        assert _medals_of(matches.medals([body]), body["MatchId"], owner_id) == expected["medals"], name
        info = body["MatchInfo"]
        assert row["match_id"] == body["MatchId"] and row["xuid"] == OWNER_XUID
        assert row["start_time"].isoformat().startswith(info["StartTime"][:19]), name
        assert row["end_time"].isoformat().startswith(info["EndTime"][:19]), name
        assert row["game_variant_category"] == info["GameVariantCategory"]
        assert row["lifecycle_mode"] == info["LifecycleMode"]
        assert row["map_id"] == info["MapVariant"]["AssetId"]
        assert row["game_variant_id"] == info["UgcGameVariant"]["AssetId"]
        if info["Playlist"] is None:  # customs: no playlist, pair or season
            assert row["playlist_id"] is None and row["map_mode_pair_id"] is None and row["season_id"] is None
        else:
            assert row["playlist_id"] == info["Playlist"]["AssetId"]
            assert row["playlist_version_id"] == info["Playlist"]["VersionId"]
            assert row["map_mode_pair_id"] == info["PlaylistMapModePair"]["AssetId"]
            assert row["season_id"] == info["SeasonId"]
        participation = owner["ParticipationInfo"]
        assert row["present_at_completion"] == participation["PresentAtCompletion"]
        assert row["left_in_progress"] == participation["LeftInProgress"]
        assert row["kd_ratio"] == pytest.approx(expected["kills"] / max(expected["deaths"], 1), rel=1e-6)


def test_every_human_participant_equals_raw_json(bodies: list[dict]) -> None:
    participants = matches.match_participants(bodies)
    medals = matches.medals(bodies)
    assert participants.height == sum(len(b["Players"]) for b in bodies)
    checked = 0
    for body in bodies:
        match_id = body["MatchId"]
        for player in body["Players"]:
            rows = participants.filter((pl.col("match_id") == match_id)
                                       & (pl.col("player_id") == player["PlayerId"]))
            assert rows.height == 1
            row = rows.row(0, named=True)
            assert row["is_human"] == (player["PlayerType"] == 1)
            if player["PlayerType"] != 1:
                assert row["xuid"] is None and player["PlayerId"].startswith("bid(")
                continue
            assert row["xuid"] == int(player["PlayerId"][5:-1])
            expected = _expected(player)
            for key in _FIGURES:
                assert row[key] == expected[key], f"{match_id} {player['PlayerId']}: {key}"
            assert _medals_of(medals, match_id, player["PlayerId"]) == expected["medals"]
            checked += 1
    assert checked == sum(p["PlayerType"] == 1 for b in bodies for p in b["Players"]) == 48


def test_stockpile_owner_totals_span_team_changes(recorded_stats: dict[str, dict]) -> None:
    body = recorded_stats["get_match_stats_stockpile.json"]
    owner = next(p for p in body["Players"] if p["PlayerId"] == f"xuid({OWNER_XUID})")
    assert len(owner["PlayerTeamStats"]) == 2
    assert owner["PlayerTeamStats"][0]["Stats"]["CoreStats"]["ShotsFired"] == 6
    row = matches.match_facts([body], OWNER_XUID).row(0, named=True)
    assert row["shots_fired"] == 28
    assert row["accuracy"] == pytest.approx(row["shots_hit"] / 28 * 100, rel=1e-6)


def test_kda_and_accuracy_equal_core_stats_for_single_entry_players(bodies: list[dict]) -> None:
    participants = matches.match_participants(bodies)
    checked = 0
    for body in bodies:
        for player in body["Players"]:
            if len(player["PlayerTeamStats"]) != 1:
                continue
            core = player["PlayerTeamStats"][0]["Stats"]["CoreStats"]
            row = participants.filter((pl.col("match_id") == body["MatchId"])
                                      & (pl.col("player_id") == player["PlayerId"])).row(0, named=True)
            # The API writes KDA and Accuracy truncated (toward zero) to 2 decimals: 18 + 5/3 - 8 → 11.66.
            kda = core["Kills"] + core["Assists"] / 3 - core["Deaths"]
            assert row["kda"] == pytest.approx(kda, abs=1e-5)
            assert _trunc2(kda) == core["KDA"]
            if core["ShotsFired"] == 0:
                assert row["accuracy"] is None  # documented choice: undefined, not the API's 0.0
            else:
                accuracy = core["ShotsHit"] / core["ShotsFired"] * 100
                assert row["accuracy"] == pytest.approx(accuracy, abs=1e-4)
                assert _trunc2(accuracy) == core["Accuracy"]
            checked += 1
    assert checked > 50


def test_team_stats_equal_raw_json(bodies: list[dict]) -> None:
    teams = matches.team_stats(bodies)
    assert teams.height == sum(len(b["Teams"]) for b in bodies)
    for body in bodies:
        for team in body["Teams"]:
            row = teams.filter((pl.col("match_id") == body["MatchId"])
                               & (pl.col("team_id") == team["TeamId"])).row(0, named=True)
            core = team["Stats"]["CoreStats"]
            assert (row["outcome"], row["rank"]) == (team["Outcome"], team["Rank"])
            assert (row["score"], row["kills"], row["deaths"], row["assists"], row["personal_score"]) == (
                core["Score"], core["Kills"], core["Deaths"], core["Assists"], core["PersonalScore"])


def test_personal_scores_equal_raw_json(bodies: list[dict]) -> None:
    scores = matches.personal_scores(bodies)
    for body in bodies:
        for player in body["Players"]:
            expected: Counter[int] = Counter()
            for entry in player["PlayerTeamStats"]:
                for award in entry["Stats"]["CoreStats"]["PersonalScores"]:
                    expected[award["NameId"]] += award["TotalPersonalScoreAwarded"]
            rows = scores.filter((pl.col("match_id") == body["MatchId"])
                                 & (pl.col("player_id") == player["PlayerId"]))
            got = zip(rows["name_id"].to_list(), rows["total_personal_score"].to_list(), strict=False)
            assert dict(got) == dict(expected)


def test_history_frame_equals_raw_json(halo_api_dir: Path) -> None:
    results = json.loads((halo_api_dir / "responses" / "get_match_history.json").read_bytes())["Results"]
    df = matches.history_frame(results, OWNER_XUID)
    assert df.height == len(results) == 25
    assert dict(df.schema) == matches.HISTORY_SCHEMA
    by_id = {r["match_id"]: r for r in df.iter_rows(named=True)}
    for entry in results:
        row = by_id[entry["MatchId"]]
        assert (row["outcome"], row["rank"], row["team_id"], row["present_at_end"]) == (
            entry["Outcome"], entry["Rank"], entry["LastTeamId"], entry["PresentAtEndOfMatch"])
        assert row["game_variant_category"] == entry["MatchInfo"]["GameVariantCategory"]
        assert row["map_id"] == entry["MatchInfo"]["MapVariant"]["AssetId"]
        assert row["xuid"] == OWNER_XUID
    assert df["start_time"].is_sorted()


def test_rerun_gives_identical_frames(bodies: list[dict]) -> None:
    for fn in (lambda b: matches.match_facts(b, OWNER_XUID), matches.match_participants, matches.medals,
               matches.personal_scores, matches.team_stats):
        first, second = fn(bodies), fn(copy.deepcopy(bodies))
        assert first.equals(second, null_equal=True)
    # match_facts is ordered by time, so input order does not matter either
    assert matches.match_facts(bodies, OWNER_XUID).equals(matches.match_facts(bodies[::-1], OWNER_XUID))


def test_duplicate_bodies_are_derived_once(bodies: list[dict]) -> None:
    assert matches.match_facts(bodies + bodies, OWNER_XUID).height == len(bodies)
    assert matches.medals(bodies + bodies).equals(matches.medals(bodies))


@pytest.mark.parametrize("records", [False, True])
def test_dtypes_are_the_declared_ones(bodies: list[dict], records: bool) -> None:
    data = bodies if records else []
    cases = [
        (matches.match_facts(data, OWNER_XUID), matches.MATCH_FACTS_SCHEMA),
        (matches.match_participants(data), matches.MATCH_PARTICIPANTS_SCHEMA),
        (matches.medals(data), matches.MEDALS_SCHEMA),
        (matches.personal_scores(data), matches.PERSONAL_SCORES_SCHEMA),
        (matches.team_stats(data), matches.TEAM_STATS_SCHEMA),
        (matches.history_frame(data, OWNER_XUID), matches.HISTORY_SCHEMA),
        (skill.player_match_skill([]), skill.PLAYER_MATCH_SKILL_SCHEMA),
    ]
    for df, schema in cases:
        assert dict(df.schema) == schema
        assert (df.height > 0) == records or schema is skill.PLAYER_MATCH_SKILL_SCHEMA
    facts = matches.match_facts(bodies, OWNER_XUID)
    assert facts.schema["start_time"] == pl.Datetime("us", "UTC")
    assert facts.schema["outcome"] == pl.Int8 and facts.schema["kills"] == pl.Int16
    assert facts.schema["accuracy"] == pl.Float32 and facts.schema["xuid"] == pl.Int64


def test_unknown_enum_values_still_derive(recorded_stats: dict[str, dict]) -> None:
    body = copy.deepcopy(recorded_stats["get_match_stats.json"])
    body["MatchInfo"]["GameVariantCategory"] = 999
    owner = next(p for p in body["Players"] if p["PlayerId"] == f"xuid({OWNER_XUID})")
    core = owner["PlayerTeamStats"][0]["Stats"]["CoreStats"]
    core["Medals"].append({"NameId": 1, "Count": 2, "TotalPersonalScoreAwarded": 0})
    with pytest.raises(ValidationError):  # spnkr's strict enums refuse this body…
        MatchStats(**body)
    facts = matches.match_facts([body], OWNER_XUID)  # …the transforms do not
    assert facts["game_variant_category"].to_list() == [999]
    medals = matches.medals([body])
    assert medals.filter(pl.col("name_id") == 1)["count"].to_list() == [2]
    original = matches.match_facts([recorded_stats["get_match_stats.json"]], OWNER_XUID)
    assert facts["medal_count"][0] == original["medal_count"][0] + 2
    # a value too big for its column becomes null instead of failing the batch
    owner["Outcome"] = 300
    assert matches.match_facts([body], OWNER_XUID)["outcome"].to_list() == [None]
    assert matches.match_participants([body]).height == len(body["Players"])


def test_match_without_owner_or_with_missing_parts(recorded_stats: dict[str, dict]) -> None:
    body = recorded_stats["get_match_stats.json"]
    assert matches.match_facts([body], 1234567890123456).height == 0
    stripped = copy.deepcopy(body)
    stripped["MatchInfo"]["Playlist"] = None
    stripped["Teams"] = []
    assert matches.match_facts([stripped], OWNER_XUID)["playlist_id"].to_list() == [None]
    assert matches.team_stats([stripped]).height == 0


def test_iso_durations() -> None:
    assert duration_seconds("PT9M9.4211615S") == pytest.approx(549.4211615)
    assert duration_seconds("PT0S") == 0.0
    assert duration_seconds("PT1H2M3S") == 3723.0
    assert duration_seconds("P1DT1S") == 86401.0
    assert duration_seconds("PT46S") == 46.0
    assert duration_seconds(None) is None and duration_seconds("garbage") is None and duration_seconds("PT") is None


def test_durations_and_times_equal_raw_json(recorded_stats: dict[str, dict]) -> None:
    body = recorded_stats["get_match_stats.json"]
    row = matches.match_facts([body], OWNER_XUID).row(0, named=True)
    assert body["MatchInfo"]["Duration"] == "PT9M9.4211615S"
    assert row["duration_seconds"] == pytest.approx(549.4211615, rel=1e-6)
    assert row["start_time"].isoformat() == "2025-01-29T04:07:25.964000+00:00"


#: Every CoreStats count summed into a column, written out here independently of the transform's own tables.
_CORE_COLUMNS = {
    "Kills": "kills", "Deaths": "deaths", "Assists": "assists", "HeadshotKills": "headshot_kills",
    "MeleeKills": "melee_kills", "GrenadeKills": "grenade_kills", "PowerWeaponKills": "power_weapon_kills",
    "Suicides": "suicides", "Betrayals": "betrayals", "CalloutAssists": "callout_assists",
    "ShotsFired": "shots_fired", "ShotsHit": "shots_hit", "Score": "score", "PersonalScore": "personal_score",
    "DamageDealt": "damage_dealt", "DamageTaken": "damage_taken",
}


def test_every_column_of_every_human_equals_raw_json(bodies: list[dict]) -> None:
    """match_facts taken as each human in turn: every CoreStats count in its own column, the max spree and the
    ParticipationInfo; match_participants holds the same values in the columns the two frames share."""
    participants = matches.match_participants(bodies)
    shared = [c for c in matches.MATCH_FACTS_SCHEMA if c in matches.MATCH_PARTICIPANTS_SCHEMA]
    checked = 0
    for body in bodies:
        for player in body["Players"]:
            if player["PlayerType"] != 1:
                continue
            row = matches.match_facts([body], int(player["PlayerId"][5:-1])).row(0, named=True)
            cores = [entry["Stats"]["CoreStats"] for entry in player["PlayerTeamStats"]]
            for field, column in _CORE_COLUMNS.items():
                assert row[column] == sum(core[field] for core in cores), (body["MatchId"], column)
            assert row["max_killing_spree"] == max(core["MaxKillingSpree"] for core in cores)
            info = player["ParticipationInfo"]
            assert row["time_played_seconds"] == pytest.approx(duration_seconds(info["TimePlayed"]), rel=1e-6)
            assert (row["present_at_beginning"], row["joined_in_progress"], row["left_in_progress"],
                    row["present_at_completion"]) == (info["PresentAtBeginning"], info["JoinedInProgress"],
                                                      info["LeftInProgress"], info["PresentAtCompletion"])
            same = participants.filter((pl.col("match_id") == body["MatchId"])
                                       & (pl.col("player_id") == player["PlayerId"])).row(0, named=True)
            assert {c: row[c] for c in shared} == {c: same[c] for c in shared}
            checked += 1
    assert checked == 48


def _award(name_id: int | None, count: int, score: int | None) -> dict:
    return {"NameId": name_id, "Count": count, "TotalPersonalScoreAwarded": score}


def _award_player(player_id: str, *entries: list[dict]) -> dict:
    """A player with one PlayerTeamStats entry per list of awards (as both Medals and PersonalScores)."""
    return {"PlayerId": player_id, "PlayerType": 1 if player_id.startswith("xuid(") else 2,
            "PlayerTeamStats": [{"TeamId": team, "Stats": {"CoreStats": {"Medals": awards, "PersonalScores": awards}}}
                                for team, awards in enumerate(entries)]}


def test_awards_sum_per_name_id_in_first_appearance_order() -> None:
    body = {"MatchId": "m-awards", "Players": [
        _award_player("xuid(1)", [_award(5, 1, 10), _award(7, 2, 0), _award(5, 3, 5), _award(None, 9, 9)]),
        _award_player("xuid(2)", [_award(7, 1, 1), _award(5, 1, 1)], [_award(9, 1, 0), _award(7, 2, 2)]),
        _award_player("bid(3)", [_award(5, 1, None)]),
        _award_player("xuid(4)", []),
        _award_player("xuid(6)", [_award(8, 1, 1), _award(6, 2, 2)]),
    ]}
    expected = [
        ("xuid(1)", 1, 5, 4, 15), ("xuid(1)", 1, 7, 2, 0),  # a NameId twice in one entry; one without NameId
        ("xuid(2)", 2, 7, 3, 3), ("xuid(2)", 2, 5, 1, 1), ("xuid(2)", 2, 9, 1, 0),  # two entries (team change)
        ("bid(3)", None, 5, 1, 0),  # a bot; a null score counts as 0
        ("xuid(6)", 6, 8, 1, 1), ("xuid(6)", 6, 6, 2, 2),  # the common case: as listed
    ]
    for df in (matches.medals([body]), matches.personal_scores([body])):
        assert df["match_id"].to_list() == ["m-awards"] * len(expected)
        assert df.select("player_id", "xuid", "name_id", "count", "total_personal_score").rows() == expected
    participants = matches.match_participants([body])
    assert participants["team_count"].to_list() == [1, 2, 1, 1, 1]
    assert participants["medal_count"].to_list()[1:] == [5, 1, 0, 3]


def test_timestamps_equal_fromisoformat(recorded_stats: dict[str, dict]) -> None:
    """Timestamps reach polars as epoch microseconds: the same instants as ``datetime.fromisoformat`` (an offset
    is converted, no offset is UTC), null when unparseable; rows sorted by them, nulls last."""
    texts = ["2025-01-29T04:20:33.441Z", "2025-01-29T04:20:33.4411234Z", "2025-01-29T04:20:33+00:00",
             "2025-01-29T06:20:33.5+02:00", "2025-01-29T04:20:33", "2024-12-31T23:59:59.999999Z", "garbage", "",
             None]
    batch = []
    for i, text in enumerate(texts):
        body = copy.deepcopy(recorded_stats["get_match_stats.json"])
        body["MatchId"] = f"m-{i}"
        body["MatchInfo"]["StartTime"] = body["MatchInfo"]["EndTime"] = text
        batch.append(body)
    facts = matches.match_facts(batch, OWNER_XUID)
    assert facts.schema["start_time"] == pl.Datetime("us", "UTC")
    got = dict(zip(facts["match_id"], facts["start_time"], strict=True))
    for i, text in enumerate(texts):
        moment = parse_time(text)
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        assert got[f"m-{i}"] == moment, text
    assert facts["start_time"].to_list() == sorted(facts["start_time"].drop_nulls().to_list()) + [None] * 3
    assert facts["end_time"].equals(facts["start_time"].alias("end_time"))


def test_a_value_too_big_for_its_column_nulls_only_that_value(bodies: list[dict]) -> None:
    body = copy.deepcopy(bodies[0])
    owner = next(p for p in body["Players"] if p["PlayerId"] == f"xuid({OWNER_XUID})")
    owner["PlayerTeamStats"][0]["Stats"]["CoreStats"]["Kills"] = 40_000  # > Int16
    batch = [body, *bodies[1:]]
    facts = matches.match_facts(batch, OWNER_XUID)
    assert facts.filter(pl.col("match_id") == body["MatchId"])["kills"].to_list() == [None]
    assert facts.filter(pl.col("match_id") != body["MatchId"]).equals(
        matches.match_facts(bodies[1:], OWNER_XUID))
    participants = matches.match_participants(batch)
    assert participants["kills"].null_count() == 1
    assert participants.drop("kills", "kda", "kd_ratio").equals(matches.match_participants(bodies).drop(
        "kills", "kda", "kd_ratio"), null_equal=True)


# ----------------------------------------------------------------------------------------------- film


def _spnkr_rows(chunk: bytes, version: int) -> list[tuple]:
    return [(e.xuid, e.gamertag, e.event_type, e.time_ms, e.medal_value, e.medal_name, e.type_hint, e.is_medal)
            for e in spnkr_events.read(chunk, version)]


@pytest.mark.parametrize(("chunk_name", "version", "stats_name", "count"), [
    (ODDBALL_FILM, 38, "get_match_stats_oddball.json", 640),
    ("highlight_events.gzip", 37, "film/match_stats.json", 6),
])
def test_highlight_events_equal_spnkr_reader(halo_api_dir: Path, recorded_stats: dict[str, dict],
                                             chunk_name: str, version: int, stats_name: str, count: int) -> None:
    chunk = (halo_api_dir / "film" / chunk_name).read_bytes()
    stats = recorded_stats[stats_name]
    df = film.highlight_events(stats["MatchId"], chunk, version)
    assert dict(df.schema) == film.HIGHLIGHT_EVENTS_SCHEMA
    assert df.height == count
    assert set(df["match_id"]) == {stats["MatchId"]}
    cols = ["xuid", "gamertag", "event_type", "time_ms", "medal_value", "medal_name", "type_hint", "is_medal"]
    assert df.select(cols).rows() == _spnkr_rows(chunk, version)
    events = list(spnkr_events.read(chunk, version))
    assert spnkr_events.check(events, MatchStats(**stats)) == []  # check returns the list of problems
    # the frame agrees with the stats too: kills/deaths/medals per human equal the JSON totals
    for player in stats["Players"]:
        if player["PlayerType"] != 1:
            continue
        mine = df.filter(pl.col("xuid") == int(player["PlayerId"][5:-1]))
        expected = _expected(player)
        assert (mine["event_type"] == "kill").sum() == expected["kills"]
        assert (mine["event_type"] == "death").sum() == expected["deaths"]
        assert (mine["event_type"] == "medal").sum() == expected["medal_count"]
    aliases = film.aliases_from_events(df)
    assert dict(aliases.schema) == film.ALIASES_SCHEMA
    assert aliases.height == df.select("xuid", "gamertag").unique().height
    assert (OWNER_XUID, "aCurtis X89") in aliases.rows()


@pytest.mark.parametrize("chunk", [b"not a film chunk", b"", b"\x78\x9c\x01"])
def test_unreadable_chunk_raises_one_line_error(chunk: bytes) -> None:
    with pytest.raises(FilmDecodeError) as info:
        film.highlight_events("m-1", chunk, 38)
    assert "\n" not in str(info.value) and "m-1" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_chunk_raises(halo_api_dir: Path) -> None:
    chunk = (halo_api_dir / "film" / ODDBALL_FILM).read_bytes()
    with pytest.raises(FilmDecodeError):
        film.highlight_events("m-2", chunk[: len(chunk) // 2], 38)


def test_aliases_of_empty_frame() -> None:
    empty = pl.DataFrame(schema=film.HIGHLIGHT_EVENTS_SCHEMA)
    assert dict(film.aliases_from_events(empty).schema) == film.ALIASES_SCHEMA


# ----------------------------------------------------------------------------------------------- skill


def test_skill_numbers_equal_raw_json(halo_api_dir: Path) -> None:
    body = json.loads((halo_api_dir / "responses" / "get_match_skill.json").read_bytes())
    df = skill.player_match_skill([("m-skill", body)])
    assert dict(df.schema) == skill.PLAYER_MATCH_SKILL_SCHEMA
    assert df.height == len(body["Value"])
    for entry, row in zip(body["Value"], df.iter_rows(named=True), strict=False):
        result = entry["Result"]
        assert row["match_id"] == "m-skill"
        assert row["xuid"] == int(entry["Id"][5:-1])
        assert row["result_code"] == entry["ResultCode"] == 0
        assert row["team_id"] == result["TeamId"]
        f32 = lambda x: pytest.approx(x, rel=1e-6)  # noqa: E731 — Float32 columns
        assert row["team_mmr"] == f32(result["TeamMmr"])
        others = [v for k, v in result["TeamMmrs"].items() if int(k) != result["TeamId"]]
        assert row["enemy_team_mmr"] == f32(sum(others) / len(others))
        for stat in ("Kills", "Deaths"):
            perf = result["StatPerformances"][stat]
            prefix = stat.lower()
            assert row[prefix] == perf["Count"]
            assert row[f"{prefix}_expected"] == f32(perf["Expected"])
            assert row[f"{prefix}_stddev"] == f32(perf["StdDev"])
        for when, key in (("pre", "PreMatchCsr"), ("post", "PostMatchCsr")):
            csr = result["RankRecap"][key]
            assert row[f"csr_{when}"] == csr["Value"]
            assert row[f"csr_tier_{when}"] == csr["Tier"]
            assert row[f"csr_subtier_{when}"] == csr["SubTier"]


def test_skill_failed_and_unranked_entries(halo_api_dir: Path) -> None:
    body = json.loads((halo_api_dir / "responses" / "get_match_skill.json").read_bytes())
    unranked = copy.deepcopy(body["Value"][0])
    unranked["Id"] = "xuid(2535400000000001)"
    for key in ("PreMatchCsr", "PostMatchCsr"):
        unranked["Result"]["RankRecap"][key].update({"Value": -1, "Tier": "", "SubTier": 0})
    del unranked["Result"]["TeamId"]
    failed = {"Id": "xuid(2535400000000002)", "ResultCode": 1, "Result": None}
    df = skill.player_match_skill([("m", {"Value": [unranked, failed]})])
    first, second = df.rows(named=True)
    assert first["csr_pre"] is None and first["csr_tier_post"] is None and first["csr_subtier_pre"] is None
    assert first["team_id"] is None and first["enemy_team_mmr"] is None and first["team_mmr"] is not None
    assert second["xuid"] == 2535400000000002 and second["result_code"] == 1
    assert all(v is None for k, v in second.items() if k not in ("match_id", "xuid", "result_code"))
    assert not math.isnan(first["kills_expected"])
