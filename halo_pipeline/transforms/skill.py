"""Match-skill bodies (``GET /hi/matches/{id}/skill``, raw PascalCase JSON) → a typed polars DataFrame.

Pure: no Dagster, no I/O. Reads the JSON dicts directly (not spnkr's ``MatchSkill``) so an unexpected value
(an unknown tier, a missing ``Counterfactuals``) never loses the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from halo_pipeline.transforms._common import rows_frame, unwrap_player_id

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
    rows: list[dict[str, Any]] = []
    for match_id, body in items:
        for entry in (body or {}).get("Value") or ():
            row: dict[str, Any] = {
                "match_id": match_id,
                "xuid": unwrap_player_id(entry.get("Id")),
                "result_code": entry.get("ResultCode"),
            }
            result = entry.get("Result")
            if entry.get("ResultCode") == 0 and isinstance(result, dict):
                team_id = result.get("TeamId")
                row["team_id"] = team_id
                row["team_mmr"] = result.get("TeamMmr")
                mmrs = result.get("TeamMmrs") or {}
                if team_id is not None and mmrs:
                    others = [v for k, v in mmrs.items() if _team_key(k) != team_id and v is not None]
                    row["enemy_team_mmr"] = sum(others) / len(others) if others else None
                performances = result.get("StatPerformances") or {}
                for stat, prefix in (("Kills", "kills"), ("Deaths", "deaths")):
                    perf = performances.get(stat) or {}
                    row[prefix] = perf.get("Count")
                    row[f"{prefix}_expected"] = perf.get("Expected")
                    row[f"{prefix}_stddev"] = perf.get("StdDev")
                recap = result.get("RankRecap") or {}
                for when, key in (("pre", "PreMatchCsr"), ("post", "PostMatchCsr")):
                    value, tier, sub_tier = _csr(recap.get(key))
                    row[f"csr_{when}"] = value
                    row[f"csr_tier_{when}"] = tier
                    row[f"csr_subtier_{when}"] = sub_tier
            rows.append(row)
    return rows_frame(rows, PLAYER_MATCH_SKILL_SCHEMA)
