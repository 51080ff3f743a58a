"""Small hand-made match_facts frames for the analytics tests (figures chosen to be computed by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from halo_pipeline.transforms._common import rows_frame
from halo_pipeline.transforms.matches import MATCH_FACTS_SCHEMA

XUID = 2533274800000001
LIVE_FIRE = "00000000-0000-0000-0000-00000000aaaa"
STREETS = "00000000-0000-0000-0000-00000000bbbb"


def fact(match_id: str, start: datetime, minutes: float = 10, *, kills=10, deaths=5, assists=3, outcome=2,
         fired=100, hit=50, map_id=LIVE_FIRE, pair=None, xuid=XUID, **extra) -> dict:
    return {"match_id": match_id, "xuid": xuid, "start_time": start, "end_time": start + timedelta(minutes=minutes),
            "duration_seconds": minutes * 60, "time_played_seconds": minutes * 60, "outcome": outcome,
            "kills": kills, "deaths": deaths, "assists": assists, "kda": kills + assists / 3 - deaths,
            "kd_ratio": kills / max(deaths, 1), "shots_fired": fired, "shots_hit": hit,
            "accuracy": hit / fired * 100 if fired else None, "personal_score": 1000, "damage_dealt": 2000,
            "rank": 1, "map_id": map_id, "map_mode_pair_id": pair, **extra}


def facts(rows: list[dict]) -> pl.DataFrame:
    return rows_frame(rows, MATCH_FACTS_SCHEMA)


def crossing_month() -> pl.DataFrame:
    """4 matches: a session of 3 from 31 Jan 23:00 to 1 Feb 00:25 (gaps 20 and 30 min), then one at 02:00."""
    t = datetime(2025, 1, 31, 23, 0, tzinfo=UTC)
    return facts([
        fact("m0", t, kills=10, deaths=5, assists=3, outcome=2, fired=100, hit=50),
        fact("m1", t + timedelta(minutes=30), minutes=15, kills=6, deaths=8, assists=0, outcome=3, fired=80, hit=20),
        fact("m2", t + timedelta(minutes=75), kills=14, deaths=4, assists=6, outcome=2, fired=0, hit=0,
             map_id=STREETS),
        fact("m3", t + timedelta(minutes=180), kills=5, deaths=5, assists=0, outcome=1, fired=50, hit=25),
    ])
