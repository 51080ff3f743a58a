"""Reading raw landing for the derived assets: zero API calls, pure functions of landed bodies."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import dagster as dg
import orjson
import polars as pl

from halo_pipeline.storage.landing import PROFILE, SKILL, STATS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.film import HIGHLIGHT_EVENTS_SCHEMA, FilmDecodeError, highlight_events

#: Below this many film chunks, decoding in the step's own process beats starting a pool.
POOL_THRESHOLD = 8


def landed_match_ids(wh: Warehouse, xuid: int, month: str) -> list[str]:
    """Match ids of the partition whose stats body is landed (from the ``raw_matches`` index).

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    index = wh.read_partition("raw_matches", xuid, month)
    return index.filter(pl.col("stats_status") == "landed")["match_id"].to_list()


def stats_bodies(wh: Warehouse, match_ids: list[str]) -> list[dict]:
    """Parsed stats bodies of ``match_ids`` (all landed)."""
    landing = wh.landing
    return [orjson.loads(landing.get(STATS, mid)) for mid in match_ids]


def skill_bodies(wh: Warehouse, match_ids: list[str]) -> list[tuple[str, dict]]:
    """``(match_id, skill body)`` of the matches that have a landed skill body."""
    landing = wh.landing
    return [(mid, orjson.loads(body)) for mid in match_ids if (body := landing.get(SKILL, mid)) is not None]


def profiles(wh: Warehouse, xuids: list[int]) -> list[dict]:
    """Landed profile user objects (``{"xuid", "gamertag", …}``) of ``xuids``."""
    landing = wh.landing
    return [orjson.loads(body) for x in xuids if (body := landing.get(PROFILE, str(x))) is not None]


def _decode(args: tuple[str, bytes, int]) -> pl.DataFrame | str:
    try:
        return highlight_events(*args)
    except FilmDecodeError as exc:
        return str(exc)


def decode_highlight_events(wh: Warehouse, match_ids: list[str]) -> pl.DataFrame:
    """Highlight events of the landed film chunks of ``match_ids``, decoded with spnkr's reader.

    spnkr's reader costs ~160 ms of CPU per match: many chunks are decoded in a process pool (spawned, one
    worker per core). A chunk that cannot be decoded does not fail the partition: it is logged (one warning
    line naming the match, in the run's event log) and skipped; the other matches' events are kept.
    """
    landing = wh.landing
    jobs = [(mid, *film) for mid in match_ids if (film := landing.get_film(mid)) is not None]
    if not jobs:
        return pl.DataFrame(schema=HIGHLIGHT_EVENTS_SCHEMA)
    if len(jobs) < POOL_THRESHOLD:
        frames = [_decode(job) for job in jobs]
    else:
        workers = min(os.cpu_count() or 1, len(jobs))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            frames = list(pool.map(_decode, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
    for error in (f for f in frames if isinstance(f, str)):
        dg.get_dagster_logger().warning(f"highlight_events: skipped {error}")
    frames = [f for f in frames if not isinstance(f, str)]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=HIGHLIGHT_EVENTS_SCHEMA)
