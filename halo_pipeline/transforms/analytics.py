"""Analytics of a player's matches: sessions, the relative performance score and the materialized stats.

Pure functions on polars frames (no Dagster, no I/O, no environment), so every figure here is testable on a
small hand-made ``match_facts`` frame. Inputs are frames shaped like the warehouse tables
(:data:`halo_pipeline.transforms.matches.MATCH_FACTS_SCHEMA`); only the columns named in each docstring are read.

Words:

* **session** — consecutive matches of one player where each match starts at most ``gap_minutes`` (default
  :data:`GAP_MINUTES`) after the previous one ended. Its ``session_id`` is ``"<xuid>:<first match id>"``:
  stable whatever month partition computes it. A session belongs to the month of its first match; the
  asset layer feeds the neighbouring months' matches so that a session crossing a month boundary is whole.
* **performance score** — 0–100, relative to the player's own history (LevelUp's "v4-relative" idea),
  defined once in :data:`PERFORMANCE_METRICS` and :func:`performance_scores`.
* KDA is Halo's ``kills + assists/3 − deaths``; ``kd_ratio = kills / max(deaths, 1)``; accuracy is
  ``sum(shots_hit) / sum(shots_fired) * 100`` over the rows aggregated (null when no shot was fired).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping

import polars as pl

from halo_pipeline.transforms._common import UTC_US
from halo_pipeline.transforms.people import SESSION_PEOPLE_SCHEMA, ensure_people_columns, session_people_aggs

#: Default largest pause (minutes) between a match's end and the next match's start within one session.
GAP_MINUTES = 35
#: A match needs at least this many earlier matches of the player to get a performance score.
MIN_HISTORY = 10
#: The mode category of matches whose map-mode pair is unknown (custom games, names not in the reference).
OTHER = "Other"

#: The performance score's metrics: ``name → (weight, higher_is_better)``. Weights sum to 1.
#: Per-minute figures divide by the match's ``time_played_seconds`` (else ``duration_seconds``) / 60.
#: ``rank_vs_expected`` = (players in the match + 1) / 2 − rank: how far above the middle of the scoreboard.
PERFORMANCE_METRICS: dict[str, tuple[float, bool]] = {
    "kills_per_min": (0.15, True),
    "deaths_per_min": (0.15, False),
    "assists_per_min": (0.10, True),
    "personal_score_per_min": (0.15, True),
    "damage_per_min": (0.10, True),
    "kda": (0.15, True),
    "accuracy": (0.10, True),
    "rank_vs_expected": (0.10, True),
}

SESSIONS_SCHEMA: dict[str, pl.DataType] = {
    "session_id": pl.Utf8,
    "xuid": pl.Int64,
    "start_time": UTC_US,
    "end_time": UTC_US,
    "first_match_id": pl.Utf8,
    "match_count": pl.Int16,
    "wins": pl.Int16,
    "losses": pl.Int16,
    "ties": pl.Int16,
    "kills": pl.Int32,
    "deaths": pl.Int32,
    "assists": pl.Int32,
    "kda": pl.Float32,
    "kd_ratio": pl.Float32,
    "accuracy": pl.Float32,
    "shots_fired": pl.Int32,
    "shots_hit": pl.Int32,
    "time_played_seconds": pl.Float32,
    "duration_seconds": pl.Float32,
    **SESSION_PEOPLE_SCHEMA,  # known_teammates (max of a match), with_friends, friends_xuids (every friend met)
}

PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "start_time": UTC_US,
    "history_matches": pl.Int32,
    **{name: pl.Float32 for name in PERFORMANCE_METRICS},
    "performance_score": pl.Float32,
}

#: Additive figures stored per partition; the catalog's ``mv_*`` views sum them over months and derive the
#: ratios (win_rate, kd_ratio, kda, accuracy, avg_performance_score) from the sums.
_SUMS: dict[str, pl.DataType] = {
    "matches": pl.Int32,
    "wins": pl.Int32,
    "losses": pl.Int32,
    "ties": pl.Int32,
    "kills": pl.Int32,
    "deaths": pl.Int32,
    "assists": pl.Int32,
    "shots_fired": pl.Int64,
    "shots_hit": pl.Int64,
    "time_played_seconds": pl.Float64,
    "performance_score_sum": pl.Float64,
    "performance_score_count": pl.Int32,
}
_RATIOS: dict[str, pl.DataType] = {
    "win_rate": pl.Float32,
    "kd_ratio": pl.Float32,
    "kda": pl.Float32,
    "accuracy": pl.Float32,
    "avg_performance_score": pl.Float32,
}
MAP_STATS_SCHEMA = {"xuid": pl.Int64, "month_start": pl.Utf8, "map_id": pl.Utf8, "map_name": pl.Utf8,
                    **_SUMS, **_RATIOS}
MODE_CATEGORY_STATS_SCHEMA = {"xuid": pl.Int64, "month_start": pl.Utf8, "mode_category": pl.Utf8, **_SUMS, **_RATIOS}
GLOBAL_STATS_SCHEMA = {"xuid": pl.Int64, "month_start": pl.Utf8, **_SUMS, **_RATIOS}
SESSION_STATS_SCHEMA = {**SESSIONS_SCHEMA, "month_start": pl.Utf8, "avg_performance_score": pl.Float32}

#: UGC names seen in a partition (``kind``: maps | mapModePairs | playlists).
UGC_NAMES_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.Utf8, "asset_id": pl.Utf8, "version_id": pl.Utf8, "public_name": pl.Utf8,
}


# --------------------------------------------------------------------------------------------------- sessions


def _ordered(facts: pl.DataFrame) -> pl.DataFrame:
    return facts.filter(pl.col("start_time").is_not_null()).unique("match_id", keep="first").sort(
        "start_time", "match_id")


def assign_sessions(facts: pl.DataFrame, gap_minutes: float = GAP_MINUTES) -> pl.DataFrame:
    """``facts`` of ONE player (any months) sorted by ``(start_time, match_id)`` with a ``session_id`` column.

    A match starts a new session when it starts more than ``gap_minutes`` after the previous match's end
    (``end_time``, else ``start_time + duration_seconds``, else ``start_time``). Rows with a null start_time
    are dropped (the ``no_null_start_time`` check reports them); a repeated match_id counts once.

    Raises:
        ValueError: ``gap_minutes`` is negative, or ``facts`` holds several xuids.
    """
    if gap_minutes < 0:
        raise ValueError(f"gap_minutes must be >= 0, got {gap_minutes}")
    if facts["xuid"].n_unique() > 1:
        raise ValueError(f"sessions are per player: got {facts['xuid'].n_unique()} xuids")
    df = _ordered(facts)
    end = pl.coalesce(
        "end_time",
        pl.col("start_time") + pl.duration(seconds=pl.col("duration_seconds").cast(pl.Float64)),
        "start_time",
    )
    new = (pl.col("start_time") - end.shift(1)) > pl.duration(seconds=gap_minutes * 60)
    return (
        df.with_columns(_n=new.fill_null(True).cast(pl.Int32).cum_sum())
        .with_columns(session_id=pl.format("{}:{}", pl.col("xuid"), pl.col("match_id").first().over("_n")))
        .drop("_n")
    )


def sessions(facts: pl.DataFrame, gap_minutes: float = GAP_MINUTES) -> pl.DataFrame:
    """Sessions of ONE player from their ``match_facts`` rows (columns read: match_id, xuid, start_time,
    end_time, duration_seconds, outcome, kills, deaths, assists, shots_fired, shots_hit, time_played_seconds).

    Returns :data:`SESSIONS_SCHEMA`, one row per session sorted by start_time: start_time (first match's
    start), end_time (last match's end), match_count, wins/losses/ties (outcome 2/3/1; 4 "left" is none),
    kills/deaths/assists totals, kda and kd_ratio of the totals, accuracy = Σhit/Σfired·100 (null without
    shots), time_played_seconds (Σ of the matches), duration_seconds (end_time − start_time, wall clock);
    known_teammates (the most of one match), with_friends (a match had a declared friend), friends_xuids (every
    friend met, sorted; see :mod:`halo_pipeline.transforms.people`).

    Raises:
        ValueError: see :func:`assign_sessions`.
    """
    if facts.is_empty():
        return pl.DataFrame(schema=SESSIONS_SCHEMA)
    df = assign_sessions(ensure_people_columns(facts), gap_minutes)
    end = pl.coalesce("end_time", pl.col("start_time") + pl.duration(
        seconds=pl.col("duration_seconds").cast(pl.Float64)), "start_time")
    out = (
        df.with_columns(_end=end)
        .group_by("session_id", maintain_order=True)
        .agg(
            *session_people_aggs(),
            xuid=pl.col("xuid").first(),
            start_time=pl.col("start_time").min(),
            end_time=pl.col("_end").max(),
            first_match_id=pl.col("match_id").first(),
            match_count=pl.len(),
            wins=(pl.col("outcome") == 2).sum(),
            losses=(pl.col("outcome") == 3).sum(),
            ties=(pl.col("outcome") == 1).sum(),
            kills=pl.col("kills").cast(pl.Int32).sum(),
            deaths=pl.col("deaths").cast(pl.Int32).sum(),
            assists=pl.col("assists").cast(pl.Int32).sum(),
            shots_fired=pl.col("shots_fired").cast(pl.Int32).sum(),
            shots_hit=pl.col("shots_hit").cast(pl.Int32).sum(),
            time_played_seconds=pl.col("time_played_seconds").sum(),
        )
        .with_columns(
            kda=pl.col("kills") + pl.col("assists") / 3 - pl.col("deaths"),
            kd_ratio=pl.col("kills") / pl.max_horizontal(pl.col("deaths"), 1),
            accuracy=pl.when(pl.col("shots_fired") > 0).then(pl.col("shots_hit") / pl.col("shots_fired") * 100),
            duration_seconds=(pl.col("end_time") - pl.col("start_time")).dt.total_microseconds() / 1e6,
        )
    )
    return out.select([pl.col(c).cast(t) for c, t in SESSIONS_SCHEMA.items()]).sort("start_time")


def month_of(column: str = "start_time") -> pl.Expr:
    """The month partition key (``YYYY-MM-01``, UTC) of a datetime column."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-01")


# --------------------------------------------------------------------------------------------------- score


def match_metrics(facts: pl.DataFrame, players_per_match: pl.DataFrame | None = None) -> pl.DataFrame:
    """The score's per-match metrics (:data:`PERFORMANCE_METRICS`) of ``facts`` rows, in time order.

    ``players_per_match``: ``match_id, players`` (participants of each match, bots included) for
    ``rank_vs_expected``; without it that metric is null. A metric whose input is missing (no time played,
    no shot fired, no rank) is null and left out of the score of that match.
    """
    df = _ordered(facts)
    if players_per_match is not None and not players_per_match.is_empty():
        df = df.join(players_per_match.select("match_id", pl.col("players").cast(pl.Float64)), on="match_id",
                     how="left")
    else:
        df = df.with_columns(players=pl.lit(None, pl.Float64))
    seconds = pl.coalesce("time_played_seconds", "duration_seconds").cast(pl.Float64)
    minutes = pl.when(seconds > 0).then(seconds / 60)
    return df.with_columns(
        kills_per_min=pl.col("kills") / minutes,
        deaths_per_min=pl.col("deaths") / minutes,
        assists_per_min=pl.col("assists") / minutes,
        personal_score_per_min=pl.col("personal_score") / minutes,
        damage_per_min=pl.col("damage_dealt") / minutes,
        kda=pl.col("kda").cast(pl.Float64),
        accuracy=pl.col("accuracy").cast(pl.Float64),
        rank_vs_expected=(pl.col("players") + 1) / 2 - pl.col("rank"),
    )


def _percentiles(values: list[float | None], min_history: int) -> list[float | None]:
    """For each i ≥ ``min_history``: the mid-rank percentile (0–100) of ``values[i]`` among the known
    ``values[:i]`` (ties count half); None when ``values[i]`` is unknown or no earlier value is known.
    A sorted list of the earlier values + bisection: O(n log n) compares."""
    earlier: list[float] = []
    out: list[float | None] = []
    for i, x in enumerate(values):
        known = x is not None and not math.isnan(x)
        if i >= min_history and known and earlier:
            lo, hi = bisect_left(earlier, x), bisect_right(earlier, x)
            out.append((lo + 0.5 * (hi - lo)) / len(earlier) * 100)
        else:
            out.append(None)
        if known:
            insort(earlier, x)
    return out


def performance_scores(facts: pl.DataFrame, players_per_match: pl.DataFrame | None = None,
                       min_history: int = MIN_HISTORY) -> pl.DataFrame:
    """The performance score (0–100) of every match of ONE player, relative to their earlier matches.

    Formula (the one definition): for match *i* (matches ordered by ``(start_time, match_id)``) with at least
    ``min_history`` earlier matches, each metric *m* of :data:`PERFORMANCE_METRICS` gets the mid-rank
    percentile ``p_m = 100 · (#earlier < x + ½ · #earlier = x) / #earlier`` over the earlier matches where *m*
    is known (``deaths_per_min`` is inverted: fewer is better, so ``p = 100 − p``), and

        score_i = Σ_m w_m · p_m / Σ_m w_m     (over the metrics known for match i)

    Null when there are fewer than ``min_history`` earlier matches or no metric is known. The score of a
    match depends only on that match and the earlier ones: give ``facts`` every earlier month of the player
    (the asset layer does), then keep the rows of the month wanted.

    Returns :data:`PERFORMANCE_SCHEMA`: match_id, xuid, start_time, history_matches (earlier matches), the
    metrics (Float32; per minute where named so) and performance_score (Float32), in time order.

    Raises:
        ValueError: ``facts`` holds several xuids.
    """
    if facts.is_empty():
        return pl.DataFrame(schema=PERFORMANCE_SCHEMA)
    if facts["xuid"].n_unique() > 1:
        raise ValueError(f"performance scores are per player: got {facts['xuid'].n_unique()} xuids")
    df = match_metrics(facts, players_per_match)
    n = df.height
    weighted, weights = [0.0] * n, [0.0] * n
    for name, (weight, higher_is_better) in PERFORMANCE_METRICS.items():
        for i, p in enumerate(_percentiles(df[name].cast(pl.Float64).to_list(), min_history)):
            if p is not None:
                weighted[i] += weight * (p if higher_is_better else 100 - p)
                weights[i] += weight
    score = [weighted[i] / weights[i] if weights[i] > 0 and i >= min_history else None for i in range(n)]
    out = df.with_columns(
        history_matches=pl.Series(range(n), dtype=pl.Int32),
        performance_score=pl.Series(score, dtype=pl.Float64),
    )
    return out.select([pl.col(c).cast(t) for c, t in PERFORMANCE_SCHEMA.items()])


# --------------------------------------------------------------------------------------------------- names


def mode_category(pair_name: str | None, mode_categories: Mapping[str, str], categories: set[str]) -> str:
    """The mode category of a map-mode pair name (``"Ranked:Slayer on Live Fire"``).

    The reference ``game_mode_translations`` row of that exact name gives it; else the name's prefix before
    ``':'`` when it is a known category (``mode_categories``); else :data:`OTHER` (custom games, new modes).
    """
    if not pair_name:
        return OTHER
    if pair_name in mode_categories:
        return mode_categories[pair_name] or OTHER
    prefix = pair_name.split(":", 1)[0].strip() if ":" in pair_name else None
    return prefix if prefix in categories else OTHER


def label_matches(facts: pl.DataFrame, names: pl.DataFrame, game_modes: pl.DataFrame | None,
                  categories: pl.DataFrame | None) -> pl.DataFrame:
    """``facts`` with ``map_name``, ``pair_name`` and ``mode_category`` columns.

    ``names`` is :data:`UGC_NAMES_SCHEMA` (maps / mapModePairs public names by asset id and version; the
    newest name of an asset id is used when its version is unknown); ``game_modes`` the reference
    ``game_mode_translations`` (name_en, category) and ``categories`` the reference ``mode_categories``
    (category). Unknown map names stay null (the stats show the map_id); unknown modes are :data:`OTHER`.
    """
    def lookup(kind: str, id_col: str, out: str) -> pl.DataFrame:
        sub = names.filter(pl.col("kind") == kind).unique(["asset_id"], keep="last")
        return sub.select(pl.col("asset_id").alias(id_col), pl.col("public_name").alias(out))

    df = facts.join(lookup("maps", "map_id", "map_name"), on="map_id", how="left")
    df = df.join(lookup("mapModePairs", "map_mode_pair_id", "pair_name"), on="map_mode_pair_id", how="left")
    by_name = dict(zip(game_modes["name_en"].to_list(), game_modes["category"].to_list(), strict=True)) \
        if game_modes is not None and not game_modes.is_empty() else {}
    known = set(categories["category"].to_list()) if categories is not None and not categories.is_empty() else set()
    known |= {c for c in by_name.values() if c}
    return df.with_columns(
        mode_category=pl.col("pair_name").map_elements(lambda n: mode_category(n, by_name, known),
                                                       return_dtype=pl.Utf8, skip_nulls=False),
        map_name=pl.coalesce("map_name", pl.col("pair_name").str.extract(r" on (.+)$")),
    )


# --------------------------------------------------------------------------------------------------- stats


def _aggregate(df: pl.DataFrame, keys: list[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Additive sums of :data:`_SUMS` and the ratios over groups ``keys`` of labelled facts + scores."""
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    out = df.group_by(keys, maintain_order=True).agg(
        matches=pl.len(),
        wins=(pl.col("outcome") == 2).sum(),
        losses=(pl.col("outcome") == 3).sum(),
        ties=(pl.col("outcome") == 1).sum(),
        kills=pl.col("kills").cast(pl.Int32).sum(),
        deaths=pl.col("deaths").cast(pl.Int32).sum(),
        assists=pl.col("assists").cast(pl.Int32).sum(),
        shots_fired=pl.col("shots_fired").cast(pl.Int64).sum(),
        shots_hit=pl.col("shots_hit").cast(pl.Int64).sum(),
        time_played_seconds=pl.col("time_played_seconds").cast(pl.Float64).sum(),
        performance_score_sum=pl.col("performance_score").cast(pl.Float64).sum(),
        performance_score_count=pl.col("performance_score").count(),
    )
    return with_ratios(out).select([pl.col(c).cast(t) for c, t in schema.items()]).sort(keys, nulls_last=True)


def with_ratios(df: pl.DataFrame) -> pl.DataFrame:
    """Ratios from the additive sums (the same formulas as the catalog's ``mv_*`` views):
    win_rate = wins / matches; kd_ratio = kills / max(deaths, 1); kda = (kills + assists/3 − deaths) / matches
    (the mean per-match KDA); accuracy = shots_hit / shots_fired · 100 (null without shots);
    avg_performance_score = performance_score_sum / performance_score_count (null without scores)."""
    return df.with_columns(
        win_rate=pl.col("wins") / pl.col("matches"),
        kd_ratio=pl.col("kills") / pl.max_horizontal(pl.col("deaths"), 1),
        kda=(pl.col("kills") + pl.col("assists") / 3 - pl.col("deaths")) / pl.col("matches"),
        accuracy=pl.when(pl.col("shots_fired") > 0).then(pl.col("shots_hit") / pl.col("shots_fired") * 100),
        avg_performance_score=pl.when(pl.col("performance_score_count") > 0).then(
            pl.col("performance_score_sum") / pl.col("performance_score_count")),
    )


def _scored(labelled: pl.DataFrame, scores: pl.DataFrame, month: str) -> pl.DataFrame:
    df = labelled.join(scores.select("match_id", "performance_score"), on="match_id", how="left")
    return df.with_columns(month_start=pl.lit(month))


def map_stats(labelled: pl.DataFrame, scores: pl.DataFrame, month: str) -> pl.DataFrame:
    """Per map of one player × month (:data:`MAP_STATS_SCHEMA`) from :func:`label_matches` rows of that month
    and their :func:`performance_scores`."""
    return _aggregate(_scored(labelled, scores, month), ["xuid", "month_start", "map_id", "map_name"], MAP_STATS_SCHEMA)


def mode_category_stats(labelled: pl.DataFrame, scores: pl.DataFrame, month: str) -> pl.DataFrame:
    """Per mode category of one player × month (:data:`MODE_CATEGORY_STATS_SCHEMA`)."""
    return _aggregate(_scored(labelled, scores, month), ["xuid", "month_start", "mode_category"],
                      MODE_CATEGORY_STATS_SCHEMA)


def global_stats(facts: pl.DataFrame, scores: pl.DataFrame, month: str) -> pl.DataFrame:
    """One row for one player × month (:data:`GLOBAL_STATS_SCHEMA`)."""
    return _aggregate(_scored(facts, scores, month), ["xuid", "month_start"], GLOBAL_STATS_SCHEMA)


def session_stats(session_rows: pl.DataFrame, facts: pl.DataFrame, scores: pl.DataFrame, month: str) -> pl.DataFrame:
    """:func:`sessions` rows of a month with ``month`` and ``avg_performance_score`` (mean of the scores of
    the session's matches: those starting within its [start_time, end_time]). ``facts`` / ``scores`` must
    cover every match of those sessions (the next month's too when a session crosses the boundary)."""
    if session_rows.is_empty():
        return pl.DataFrame(schema=SESSION_STATS_SCHEMA)
    bounds = session_rows.select("session_id", "xuid", "start_time", _session_end="end_time").sort("start_time")
    members = _ordered(facts).select("match_id", "xuid", "start_time").join_asof(
        bounds, on="start_time", by="xuid", strategy="backward", check_sortedness=False
    ).filter(pl.col("start_time") <= pl.col("_session_end"))
    avg = members.join(scores.select("match_id", "performance_score"), on="match_id", how="left").group_by(
        "session_id").agg(avg_performance_score=pl.col("performance_score").mean())
    out = ensure_people_columns(session_rows).join(avg, on="session_id", how="left").with_columns(
        month_start=pl.lit(month))
    return out.select([pl.col(c).cast(t) for c, t in SESSION_STATS_SCHEMA.items()]).sort("start_time")


# --------------------------------------------------------------------------------------------------- checks


def duplicate_match_ids(facts: pl.DataFrame) -> pl.DataFrame:
    """``match_id, xuid, rows`` of owner rows appearing more than once (one owner row per match expected)."""
    return facts.group_by("match_id", "xuid").agg(rows=pl.len()).filter(pl.col("rows") > 1).sort("match_id")


def owners_missing_from_participants(facts: pl.DataFrame, participants: pl.DataFrame) -> pl.DataFrame:
    """``match_id, xuid`` of owner rows whose xuid is not among that match's participants."""
    seen = participants.select("match_id", "xuid").drop_nulls().unique()
    return facts.select("match_id", "xuid").join(seen, on=["match_id", "xuid"], how="anti").sort("match_id")


def team_kill_mismatches(participants: pl.DataFrame, teams: pl.DataFrame) -> pl.DataFrame:
    """``match_id, team_id, team_kills, participant_kills`` where the kills of a team's players (by
    ``team_id`` = last team) differ from the team's ``Teams[]`` kills. Matches without team rows (infection,
    free-for-all: ``Teams: []``) are not compared; nor are matches where a player changed teams
    (``team_count`` > 1: their kills are split between teams)."""
    switched = participants.filter(pl.col("team_count") > 1).select("match_id").unique()
    sums = participants.join(switched, on="match_id", how="anti").group_by("match_id", "team_id").agg(
        participant_kills=pl.col("kills").cast(pl.Int64).sum())
    joined = teams.select("match_id", "team_id", team_kills=pl.col("kills").cast(pl.Int64)).join(
        sums, on=["match_id", "team_id"], how="inner")
    return joined.filter(pl.col("team_kills") != pl.col("participant_kills")).sort("match_id", "team_id")


def accuracy_out_of_range(df: pl.DataFrame) -> pl.DataFrame:
    """Rows whose ``accuracy`` (%) is outside [0, 100] (null is allowed: no shot fired)."""
    return df.filter(~pl.col("accuracy").is_between(0, 100) & pl.col("accuracy").is_not_null())


def undefined_medals(medals: pl.DataFrame, definitions: pl.DataFrame) -> list[int]:
    """Medal name_ids seen in ``medals`` that have no row in ``medal_definitions``, sorted."""
    return sorted(set(medals["name_id"].drop_nulls().to_list()) - set(definitions["name_id"].to_list()))
