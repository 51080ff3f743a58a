"""Match-skill bodies (``GET /hi/matches/{id}/skill``, raw PascalCase JSON) → a typed polars DataFrame.

Pure: no Dagster, no I/O. Reads the JSON dicts directly (not spnkr's ``MatchSkill``) so an unexpected value
(an unknown tier, a missing ``Counterfactuals``) never loses the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from halo_pipeline.transforms._common import tuples_frame, unwrap_player_id

PLAYER_MATCH_SKILL_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "result_code": pl.Int16,
    "team_id": pl.Int8,
    "team_mmr": pl.Float32,
    "enemy_team_mmr": pl.Float32,
    "kills": pl.Int16,
    "kills_expected": pl.Float32,
    "kills_stddev": pl.Float32,
    "deaths": pl.Int16,
    "deaths_expected": pl.Float32,
    "deaths_stddev": pl.Float32,
    "csr_pre": pl.Int32,
    "csr_post": pl.Int32,
    "csr_tier_pre": pl.Utf8,
    "csr_tier_post": pl.Utf8,
    "csr_subtier_pre": pl.Int8,
    "csr_subtier_post": pl.Int8,
}


def _csr(container: Any) -> tuple[int | None, str | None, int | None]:
    """(value, tier, sub-tier) of a ``PreMatchCsr``/``PostMatchCsr``; all None when the player is not ranked
    there (no container, an empty ``Tier`` — the API's "unranked"/still-in-placement value — or a negative
    ``Value``, the API's -1 placeholder)."""
    if not isinstance(container, dict):
        return None, None, None
    value = container.get("Value")
    tier = container.get("Tier")
    if value is None or not tier or value < 0:
        return None, None, None
    return value, tier, container.get("SubTier")


def _team_key(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def _figures(result: dict) -> tuple:
    """The :data:`PLAYER_MATCH_SKILL_SCHEMA` columns after ``result_code``, in its order, of a successful
    ``Result``."""
    team_id = result.get("TeamId")
    mmrs = result.get("TeamMmrs") or {}
    enemy_mmr = None
    if team_id is not None and mmrs:
        others = [v for k, v in mmrs.items() if _team_key(k) != team_id and v is not None]
        enemy_mmr = sum(others) / len(others) if others else None
    performances = result.get("StatPerformances") or {}
    kills = performances.get("Kills") or {}
    deaths = performances.get("Deaths") or {}
    recap = result.get("RankRecap") or {}
    csr_pre, tier_pre, subtier_pre = _csr(recap.get("PreMatchCsr"))
    csr_post, tier_post, subtier_post = _csr(recap.get("PostMatchCsr"))
    return (
        team_id,
        result.get("TeamMmr"),
        enemy_mmr,
        kills.get("Count"),
        kills.get("Expected"),
        kills.get("StdDev"),
        deaths.get("Count"),
        deaths.get("Expected"),
        deaths.get("StdDev"),
        csr_pre,
        csr_post,
        tier_pre,
        tier_post,
        subtier_pre,
        subtier_post,
    )


#: The figures of an entry with a non-zero ``ResultCode`` or no ``Result``: all null.
_NO_FIGURES: tuple = (None,) * (len(PLAYER_MATCH_SKILL_SCHEMA) - 3)


def player_match_skill(items: Sequence[tuple[str, dict]]) -> pl.DataFrame:
    """One row per ``Value[]`` entry of each ``(match_id, skill body)`` pair, in input order.

    Columns (:data:`PLAYER_MATCH_SKILL_SCHEMA`):
        match_id Utf8; xuid Int64 (from ``Id`` ``"xuid(…)"``); result_code Int16 (``ResultCode``, 0 = success);
        team_id Int8 (``Result.TeamId``, null when absent); team_mmr Float32 (``Result.TeamMmr``);
        enemy_team_mmr Float32 (mean of ``Result.TeamMmrs`` over the other teams; null when the team id or the
        other teams are unknown); kills Int16, kills_expected, kills_stddev Float32 and deaths Int16,
        deaths_expected, deaths_stddev Float32 (``Result.StatPerformances.{Kills,Deaths}.{Count,Expected,StdDev}``);
        csr_pre, csr_post Int32, csr_tier_pre, csr_tier_post Utf8 ("Onyx"…), csr_subtier_pre, csr_subtier_post Int8
        (the API's 0-based sub-tier index: 0 is "Gold 1") from ``Result.RankRecap.{PreMatchCsr,PostMatchCsr}``;
        null when not ranked (empty tier or negative value).
    An entry with a non-zero ``ResultCode`` (or no ``Result``) keeps a row whose figures are null.
    """
    rows: list[tuple] = []
    for match_id, body in items:
        for entry in (body or {}).get("Value") or ():
            result = entry.get("Result")
            figures = _figures(result) if entry.get("ResultCode") == 0 and isinstance(result, dict) else _NO_FIGURES
            rows.append((match_id, unwrap_player_id(entry.get("Id")), entry.get("ResultCode"), *figures))
    return tuples_frame(rows, PLAYER_MATCH_SKILL_SCHEMA)
