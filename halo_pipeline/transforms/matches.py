"""Match-stats and match-history bodies (the API's raw PascalCase JSON) → typed polars DataFrames.

Pure functions: no Dagster, no I/O, no environment. They read the parsed JSON dicts directly, never spnkr's
models, so a body that spnkr refuses (an unknown medal NameId, a new GameVariantCategory…) still derives.
Enum-like integers are kept as the API's numbers (Outcome: 1 tie, 2 win, 3 loss, 4 left/did not finish,
5 did not start; LifecycleMode: 1 custom, 3 matchmade, 7 LAN custom; PlayerType: 1 human, 2 bot).

Conventions shared by every frame here:

* A player's figures are their match TOTALS over all their ``PlayerTeamStats`` entries (a player who changed
  teams has one entry per team); ``max_killing_spree`` is the maximum over entries.
* ``accuracy`` = ``shots_hit / shots_fired * 100`` from those totals, **null when no shot was fired** (the API
  shows 0.0 there; null keeps a mean over matches from being dragged down by matches without shooting — and
  aggregate accuracy should be ``sum(shots_hit) / sum(shots_fired)`` anyway). The API's ``CoreStats.Accuracy``
  is the same figure truncated toward zero to 2 decimals (61.0859… → 61.08); we keep full precision.
* ``kda`` = ``kills + assists / 3 − deaths`` (Halo's own; ``CoreStats.KDA`` is this value truncated toward
  zero to 2 decimals: 18 + 5/3 − 8 = 11.666… is written 11.66; we keep full precision);
  ``kd_ratio`` = ``kills / max(deaths, 1)``.
* Durations are Float32 seconds; timestamps are ``Datetime("us", "UTC")``.
* xuid is Int64, null for bots (``player_id`` ``"bid(…)"``).
* A match id seen twice in one call is derived once (first body wins), so a batch with a re-landed body does
  not double-count.
* A value that does not fit its declared dtype (e.g. an Outcome of 300) becomes null rather than failing the
  batch; see :func:`halo_pipeline.transforms._common.frame`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import polars as pl

from halo_pipeline.transforms._common import (
    UTC_US,
    duration_seconds,
    empty_columns,
    frame,
    parse_time,
    rows_frame,
    timestamp_us,
    tuples_frame,
    unwrap_player_id,
)

# --------------------------------------------------------------------------------------------------- schemas

#: CoreStats field → column, summed over a player's PlayerTeamStats entries. Int16 counts.
_COUNT_FIELDS: dict[str, str] = {
    "Kills": "kills",
    "Deaths": "deaths",
    "Assists": "assists",
    "HeadshotKills": "headshot_kills",
    "MeleeKills": "melee_kills",
    "GrenadeKills": "grenade_kills",
    "PowerWeaponKills": "power_weapon_kills",
    "Suicides": "suicides",
    "Betrayals": "betrayals",
    "CalloutAssists": "callout_assists",
}
#: CoreStats field → column, summed. Int32 (shots, scores, damage can exceed Int16).
_BIG_FIELDS: dict[str, str] = {
    "ShotsFired": "shots_fired",
    "ShotsHit": "shots_hit",
    "Score": "score",
    "PersonalScore": "personal_score",
    "DamageDealt": "damage_dealt",
    "DamageTaken": "damage_taken",
}

_MATCH_INFO_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "start_time": UTC_US,
    "end_time": UTC_US,
    "duration_seconds": pl.Float32,
    "playable_duration_seconds": pl.Float32,
    "lifecycle_mode": pl.Int8,
    "game_variant_category": pl.Int16,
    "level_id": pl.Utf8,
    "map_id": pl.Utf8,
    "map_version_id": pl.Utf8,
    "game_variant_id": pl.Utf8,
    "game_variant_version_id": pl.Utf8,
    "playlist_id": pl.Utf8,
    "playlist_version_id": pl.Utf8,
    "playlist_experience": pl.Int8,
    "map_mode_pair_id": pl.Utf8,
    "map_mode_pair_version_id": pl.Utf8,
    "season_id": pl.Utf8,
}

MATCH_FACTS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    **{k: v for k, v in _MATCH_INFO_SCHEMA.items() if k != "match_id"},
    "team_id": pl.Int8,
    "outcome": pl.Int8,
    "rank": pl.Int16,
    "kills": pl.Int16,
    "deaths": pl.Int16,
    "assists": pl.Int16,
    "kda": pl.Float32,
    "kd_ratio": pl.Float32,
    "accuracy": pl.Float32,
    "shots_fired": pl.Int32,
    "shots_hit": pl.Int32,
    "score": pl.Int32,
    "personal_score": pl.Int32,
    "damage_dealt": pl.Int32,
    "damage_taken": pl.Int32,
    "headshot_kills": pl.Int16,
    "melee_kills": pl.Int16,
    "grenade_kills": pl.Int16,
    "power_weapon_kills": pl.Int16,
    "suicides": pl.Int16,
    "betrayals": pl.Int16,
    "max_killing_spree": pl.Int16,
    "callout_assists": pl.Int16,
    "medal_count": pl.Int16,
    "time_played_seconds": pl.Float32,
    "present_at_beginning": pl.Boolean,
    "joined_in_progress": pl.Boolean,
    "left_in_progress": pl.Boolean,
    "present_at_completion": pl.Boolean,
}

MATCH_PARTICIPANTS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "player_id": pl.Utf8,
    "xuid": pl.Int64,
    "is_human": pl.Boolean,
    "player_type": pl.Int8,
    "bot_difficulty": pl.Int8,
    "team_id": pl.Int8,
    "team_count": pl.Int8,
    "team_ids": pl.List(pl.Int8),
    "outcome": pl.Int8,
    "rank": pl.Int16,
    "kills": pl.Int16,
    "deaths": pl.Int16,
    "assists": pl.Int16,
    "kda": pl.Float32,
    "kd_ratio": pl.Float32,
    "accuracy": pl.Float32,
    "shots_fired": pl.Int32,
    "shots_hit": pl.Int32,
    "score": pl.Int32,
    "personal_score": pl.Int32,
    "damage_dealt": pl.Int32,
    "damage_taken": pl.Int32,
    "headshot_kills": pl.Int16,
    "max_killing_spree": pl.Int16,
    "medal_count": pl.Int16,
    "time_played_seconds": pl.Float32,
    "present_at_beginning": pl.Boolean,
    "joined_in_progress": pl.Boolean,
    "left_in_progress": pl.Boolean,
    "present_at_completion": pl.Boolean,
}

MEDALS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "player_id": pl.Utf8,
    "xuid": pl.Int64,
    "name_id": pl.Int64,
    "count": pl.Int16,
    "total_personal_score": pl.Int32,
}

#: Same shape as :data:`MEDALS_SCHEMA` (from ``CoreStats.PersonalScores``).
PERSONAL_SCORES_SCHEMA: dict[str, pl.DataType] = dict(MEDALS_SCHEMA)

TEAM_STATS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "team_id": pl.Int8,
    "outcome": pl.Int8,
    "rank": pl.Int16,
    "score": pl.Int32,
    "kills": pl.Int16,
    "deaths": pl.Int16,
    "assists": pl.Int16,
    "personal_score": pl.Int32,
}

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "start_time": UTC_US,
    "end_time": UTC_US,
    "duration_seconds": pl.Float32,
    "lifecycle_mode": pl.Int8,
    "game_variant_category": pl.Int16,
    "playlist_id": pl.Utf8,
    "map_id": pl.Utf8,
    "map_mode_pair_id": pl.Utf8,
    "game_variant_id": pl.Utf8,
    "team_id": pl.Int8,
    "outcome": pl.Int8,
    "rank": pl.Int16,
    "present_at_end": pl.Boolean,
}

# --------------------------------------------------------------------------------------------------- helpers


def _unique(bodies: Iterable[dict]) -> list[dict]:
    """Bodies with a MatchId, first occurrence of each id only."""
    seen: set[str] = set()
    out = []
    for body in bodies:
        match_id = body.get("MatchId") if isinstance(body, dict) else None
        if match_id is None or match_id in seen:
            continue
        seen.add(match_id)
        out.append(body)
    return out


def _asset(info: dict, key: str) -> tuple[str | None, str | None]:
    ref = info.get(key)
    if not ref:
        return None, None
    return ref.get("AssetId"), ref.get("VersionId")


def _match_info_values(info: dict) -> tuple:
    """``MatchInfo`` as the values of :data:`_MATCH_INFO_SCHEMA` after ``match_id``, in its order (timestamps
    as epoch microseconds, see :func:`~halo_pipeline.transforms._common.timestamp_us`)."""
    map_id, map_version = _asset(info, "MapVariant")
    variant_id, variant_version = _asset(info, "UgcGameVariant")
    playlist_id, playlist_version = _asset(info, "Playlist")
    pair_id, pair_version = _asset(info, "PlaylistMapModePair")
    return (
        timestamp_us(info.get("StartTime")),
        timestamp_us(info.get("EndTime")),
        duration_seconds(info.get("Duration")),
        duration_seconds(info.get("PlayableDuration")),
        info.get("LifecycleMode"),
        info.get("GameVariantCategory"),
        info.get("LevelId"),
        map_id,
        map_version,
        variant_id,
        variant_version,
        playlist_id,
        playlist_version,
        info.get("PlaylistExperience"),
        pair_id,
        pair_version,
        info.get("SeasonId"),
    )


def _other_team_ids(entries, last_team_id) -> list | None:
    """The ``TeamId`` of each PlayerTeamStats entry, in order, each once (a player who changed teams has several);
    ``None`` when that is just ``[last_team_id]`` (nearly always: building a list column from Python lists costs
    ≈ 6 µs a row, so :func:`match_participants` fills those rows from ``team_id`` in one vectorized step)."""
    if len(entries) == 1 and (entries[0] or {}).get("TeamId") == last_team_id:
        return None
    return list(dict.fromkeys((entry or {}).get("TeamId") for entry in entries))


def _core_entries(player: dict) -> list[dict]:
    out = []
    for entry in player.get("PlayerTeamStats") or ():
        core = ((entry or {}).get("Stats") or {}).get("CoreStats")
        if core:
            out.append(core)
    return out


#: CoreStats fields summed over a player's entries, in the order :func:`_player_figures` unpacks them.
_SUM_FIELDS: tuple[str, ...] = tuple(_COUNT_FIELDS) + tuple(_BIG_FIELDS)
_read_sum_fields = itemgetter(*_SUM_FIELDS)


def _medal_count(core: dict) -> int:
    return sum([medal.get("Count") or 0 for medal in core.get("Medals") or ()])


def _summed(cores: list[dict]) -> tuple[Sequence, Any, int]:
    """(the :data:`_SUM_FIELDS` totals, max killing spree, medal count) over a player's CoreStats entries; a
    missing or null field counts as 0."""
    if len(cores) == 1:  # the common case: read the values, no summing
        core = cores[0]
        try:
            sums = _read_sum_fields(core)  # one C-level call for all the fields
        except KeyError:
            sums = [core.get(field) for field in _SUM_FIELDS]
        if None in sums:
            sums = [value or 0 for value in sums]
        return sums, core.get("MaxKillingSpree") or 0, _medal_count(core)
    sums = [0] * len(_SUM_FIELDS)
    spree = medal_count = 0
    for core in cores:
        for i, field in enumerate(_SUM_FIELDS):
            sums[i] += core.get(field) or 0
        spree = max(spree, core.get("MaxKillingSpree") or 0)
        medal_count += _medal_count(core)
    return sums, spree, medal_count


#: The per-player columns of :data:`MATCH_FACTS_SCHEMA` (those after ``rank``), the order of
#: :func:`_player_figures`; :data:`MATCH_PARTICIPANTS_SCHEMA` takes a subset of them.
_FIGURES: tuple[str, ...] = tuple(MATCH_FACTS_SCHEMA)[tuple(MATCH_FACTS_SCHEMA).index("rank") + 1:]


def _player_figures(player: dict) -> tuple:
    """A player's :data:`_FIGURES`: match totals over all their PlayerTeamStats entries, derived ratios, then
    their ``ParticipationInfo``."""
    sums, spree, medal_count = _summed(_core_entries(player))
    (kills, deaths, assists, headshot_kills, melee_kills, grenade_kills, power_weapon_kills, suicides, betrayals,
     callout_assists, shots_fired, shots_hit, score, personal_score, damage_dealt, damage_taken) = sums  # _SUM_FIELDS
    participation = player.get("ParticipationInfo") or {}
    return (
        kills,
        deaths,
        assists,
        kills + assists / 3 - deaths,  # kda
        kills / max(deaths, 1),  # kd_ratio
        shots_hit / shots_fired * 100 if shots_fired else None,  # accuracy
        shots_fired,
        shots_hit,
        score,
        personal_score,
        damage_dealt,
        damage_taken,
        headshot_kills,
        melee_kills,
        grenade_kills,
        power_weapon_kills,
        suicides,
        betrayals,
        spree,
        callout_assists,
        medal_count,
        duration_seconds(participation.get("TimePlayed")),
        participation.get("PresentAtBeginning"),
        participation.get("JoinedInProgress"),
        participation.get("LeftInProgress"),
        participation.get("PresentAtCompletion"),
    )


# --------------------------------------------------------------------------------------------------- frames


def match_facts(bodies: Sequence[dict], owner_xuid: int) -> pl.DataFrame:
    """One row per match the owner played, from match-stats bodies (``GET /hi/matches/{id}/stats``).

    Matches where ``xuid({owner_xuid})`` is not among ``Players`` are skipped. Rows are sorted by
    ``(start_time, match_id)``.

    Columns (:data:`MATCH_FACTS_SCHEMA`):
        match_id Utf8; xuid Int64 (the owner); start_time, end_time Datetime(us, UTC) (``MatchInfo``);
        duration_seconds, playable_duration_seconds Float32 (s); lifecycle_mode Int8; game_variant_category Int16;
        level_id, map_id, map_version_id, game_variant_id, game_variant_version_id, playlist_id,
        playlist_version_id Utf8; playlist_experience Int8; map_mode_pair_id, map_mode_pair_version_id,
        season_id Utf8 (playlist/pair/season null for customs);
        team_id Int8 (``LastTeamId``); outcome Int8; rank Int16;
        kills, deaths, assists Int16; kda, kd_ratio, accuracy Float32 (accuracy in %, null when 0 shots fired);
        shots_fired, shots_hit, score, personal_score, damage_dealt, damage_taken Int32;
        headshot_kills, melee_kills, grenade_kills, power_weapon_kills, suicides, betrayals, max_killing_spree,
        callout_assists, medal_count (total medals earned) Int16;
        time_played_seconds Float32 (s); present_at_beginning, joined_in_progress, left_in_progress,
        present_at_completion Boolean (``ParticipationInfo``).
    All figures are totals over the owner's PlayerTeamStats entries.
    """
    owner = int(owner_xuid)
    owner_id = f"xuid({owner})"
    rows: list[tuple] = []
    for body in _unique(bodies):
        for player in body.get("Players") or ():
            if player.get("PlayerId") != owner_id:
                continue
            rows.append((  # MATCH_FACTS_SCHEMA order
                body["MatchId"],
                owner,
                *_match_info_values(body.get("MatchInfo") or {}),
                player.get("LastTeamId"),
                player.get("Outcome"),
                player.get("Rank"),
                *_player_figures(player),
            ))
            break
    rows.sort(key=_facts_order)
    return tuples_frame(rows, MATCH_FACTS_SCHEMA)


def _facts_order(row: tuple) -> tuple:
    """Sort key of a :func:`match_facts` row: ``(start_time, match_id)``, null start times last."""
    match_id, start = row[0], row[2]
    return (start is None, start or 0, match_id)


#: Picks the :data:`MATCH_PARTICIPANTS_SCHEMA` figures (its columns after ``rank``) out of :data:`_FIGURES`.
_participant_figures = itemgetter(*(
    _FIGURES.index(column)
    for column in tuple(MATCH_PARTICIPANTS_SCHEMA)[tuple(MATCH_PARTICIPANTS_SCHEMA).index("rank") + 1:]
))


def match_participants(bodies: Sequence[dict]) -> pl.DataFrame:
    """Every player (humans and bots) of every match, in body then ``Players`` order.

    Columns (:data:`MATCH_PARTICIPANTS_SCHEMA`):
        match_id, player_id Utf8 (``"xuid(…)"`` or ``"bid(…)"``); xuid Int64 (null for bots);
        is_human Boolean (PlayerType 1); player_type Int8; bot_difficulty Int8 (``BotAttributes.Difficulty``,
        null for humans); team_id Int8 (``LastTeamId``); team_count Int8 (number of PlayerTeamStats entries,
        > 1 when the player changed teams); team_ids List(Int8) (the ``TeamId`` of each entry, in order, each
        once); outcome Int8; rank Int16; kills, deaths, assists Int16;
        kda, kd_ratio, accuracy Float32; shots_fired, shots_hit, score, personal_score, damage_dealt,
        damage_taken Int32; headshot_kills, max_killing_spree, medal_count Int16; time_played_seconds Float32 (s);
        present_at_beginning, joined_in_progress, left_in_progress, present_at_completion Boolean.
    Figures are totals over each player's PlayerTeamStats entries.
    """
    rows: list[tuple] = []
    for body in _unique(bodies):
        match_id = body["MatchId"]
        for player in body.get("Players") or ():
            player_id = player.get("PlayerId")
            player_type = player.get("PlayerType")
            entries = player.get("PlayerTeamStats") or ()
            last_team_id = player.get("LastTeamId")
            rows.append((  # MATCH_PARTICIPANTS_SCHEMA order
                match_id,
                player_id,
                unwrap_player_id(player_id),
                player_type == 1,
                player_type,
                (player.get("BotAttributes") or {}).get("Difficulty"),
                last_team_id,
                len(entries),
                _other_team_ids(entries, last_team_id),
                player.get("Outcome"),
                player.get("Rank"),
                *_participant_figures(_player_figures(player)),
            ))
    df = tuples_frame(rows, MATCH_PARTICIPANTS_SCHEMA)
    return df.with_columns(team_ids=pl.coalesce("team_ids", pl.concat_list(pl.col("team_id"))))


def _sum_awards(cores: list[dict], key: str, name_ids: list, counts: list, scores: list) -> None:
    """Append a player's ``key`` awards summed per name_id over their CoreStats entries, in first-appearance
    order; awards without a NameId are skipped."""
    totals: dict[int, list[int]] = {}
    for core in cores:
        for award in core.get(key) or ():
            name_id = award.get("NameId")
            if name_id is None:
                continue
            acc = totals.setdefault(name_id, [0, 0])
            acc[0] += award.get("Count") or 0
            acc[1] += award.get("TotalPersonalScoreAwarded") or 0
    for name_id, (count, score) in totals.items():
        name_ids.append(name_id)
        counts.append(count)
        scores.append(score)


def _awards(bodies: Sequence[dict], key: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    columns = empty_columns(schema)
    match_ids, player_ids, xuids, name_ids, counts, scores = columns.values()  # MEDALS_SCHEMA order
    for body in _unique(bodies):
        match_id = body["MatchId"]
        for player in body.get("Players") or ():
            cores = _core_entries(player)
            start = len(name_ids)
            if len(cores) == 1:  # the common case: one entry, each name_id listed once: nothing to sum
                for award in cores[0].get(key) or ():
                    name_ids.append(award.get("NameId"))
                    counts.append(award.get("Count") or 0)
                    scores.append(award.get("TotalPersonalScoreAwarded") or 0)
                listed = name_ids[start:]
                if None in listed or len(set(listed)) < len(listed):  # not so: undo, then sum
                    del name_ids[start:], counts[start:], scores[start:]
                    _sum_awards(cores, key, name_ids, counts, scores)
            else:
                _sum_awards(cores, key, name_ids, counts, scores)
            if n := len(name_ids) - start:
                player_id = player.get("PlayerId")
                match_ids.extend([match_id] * n)
                player_ids.extend([player_id] * n)
                xuids.extend([unwrap_player_id(player_id)] * n)
    return frame(columns, schema)


def medals(bodies: Sequence[dict]) -> pl.DataFrame:
    """Medals earned: one row per (match, player, medal name_id), from ``CoreStats.Medals``.

    Columns (:data:`MEDALS_SCHEMA`): match_id, player_id Utf8; xuid Int64 (null for bots); name_id Int64 (the
    API's ``NameId``, any value, known to spnkr or not); count Int16; total_personal_score Int32
    (``TotalPersonalScoreAwarded``). Count and score are summed over the player's PlayerTeamStats entries.
    """
    return _awards(bodies, "Medals", MEDALS_SCHEMA)


def personal_scores(bodies: Sequence[dict]) -> pl.DataFrame:
    """Personal-score awards: one row per (match, player, name_id), from ``CoreStats.PersonalScores``.

    Columns (:data:`PERSONAL_SCORES_SCHEMA`): match_id, player_id Utf8; xuid Int64 (null for bots);
    name_id Int64; count Int16; total_personal_score Int32. Summed over the player's PlayerTeamStats entries.
    """
    return _awards(bodies, "PersonalScores", PERSONAL_SCORES_SCHEMA)


def team_stats(bodies: Sequence[dict]) -> pl.DataFrame:
    """One row per team of every match, from ``Teams[]`` (empty for free-for-all / infection matches).

    Columns (:data:`TEAM_STATS_SCHEMA`): match_id Utf8; team_id Int8; outcome Int8; rank Int16; score Int32;
    kills, deaths, assists Int16; personal_score Int32 (all from ``Teams[].Stats.CoreStats``).
    """
    rows: list[tuple] = []
    for body in _unique(bodies):
        for team in body.get("Teams") or ():
            core = (team.get("Stats") or {}).get("CoreStats") or {}
            rows.append((  # TEAM_STATS_SCHEMA order
                body["MatchId"],
                team.get("TeamId"),
                team.get("Outcome"),
                team.get("Rank"),
                core.get("Score"),
                core.get("Kills"),
                core.get("Deaths"),
                core.get("Assists"),
                core.get("PersonalScore"),
            ))
    return tuples_frame(rows, TEAM_STATS_SCHEMA)


def history_frame(history_results: Sequence[dict], owner_xuid: int) -> pl.DataFrame:
    """Match-history entries (``GET /hi/players/{player}/matches`` → ``Results[]``) of one owner.

    Duplicate match ids keep their first entry; rows sorted by ``(start_time, match_id)``.

    Columns (:data:`HISTORY_SCHEMA`): match_id Utf8; xuid Int64 (= ``owner_xuid``); start_time, end_time
    Datetime(us, UTC); duration_seconds Float32 (s); lifecycle_mode Int8; game_variant_category Int16;
    playlist_id (null for customs), map_id, map_mode_pair_id, game_variant_id Utf8; team_id Int8
    (``LastTeamId``); outcome Int8; rank Int16; present_at_end Boolean (``PresentAtEndOfMatch``).
    """
    rows = []
    for entry in _unique(history_results):
        info = entry.get("MatchInfo") or {}
        rows.append({
            "match_id": entry["MatchId"],
            "xuid": int(owner_xuid),
            "start_time": parse_time(info.get("StartTime")),
            "end_time": parse_time(info.get("EndTime")),
            "duration_seconds": duration_seconds(info.get("Duration")),
            "lifecycle_mode": info.get("LifecycleMode"),
            "game_variant_category": info.get("GameVariantCategory"),
            "playlist_id": _asset(info, "Playlist")[0],
            "map_id": _asset(info, "MapVariant")[0],
            "map_mode_pair_id": _asset(info, "PlaylistMapModePair")[0],
            "game_variant_id": _asset(info, "UgcGameVariant")[0],
            "team_id": entry.get("LastTeamId"),
            "outcome": entry.get("Outcome"),
            "rank": entry.get("Rank"),
            "present_at_end": entry.get("PresentAtEndOfMatch"),
        })
    rows.sort(key=_history_order)
    return rows_frame(rows, HISTORY_SCHEMA)


def _history_order(row: dict[str, Any]) -> tuple:
    start = row["start_time"]
    return (start is None, start.timestamp() if start is not None else 0.0, row["match_id"])
