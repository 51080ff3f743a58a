"""Reading raw landing for the derived assets: zero API calls, pure functions of landed bodies."""

from __future__ import annotations

import atexit
import hashlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import dagster as dg
import orjson
import polars as pl

from halo_pipeline.storage.files import write_parquet_atomic
from halo_pipeline.storage.landing import PROFILE, SKILL, STATS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.film import HIGHLIGHT_EVENTS_SCHEMA, highlight_events_or_error

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


_decode = highlight_events_or_error  # the pool's worker function (imports no Dagster)


#: Decoded highlight events are kept under ``<raw>/FILM_EVENTS/<id[:2]>/<match_id>.<chunk digest>.parquet``.
FILM_EVENTS = "film_events"

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _decoder_pool() -> ProcessPoolExecutor:
    """The process-wide film decoding pool (spawned once, one worker per core, shut down at exit): a pool per
    partition cost ≈ 1–2 s of worker start-up (spnkr + polars imports) each time."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_pool.shutdown, cancel_futures=True)
        return _pool


def _decode_many(jobs: list[tuple[str, bytes, int]]) -> list[pl.DataFrame | str]:
    global _pool
    if len(jobs) < POOL_THRESHOLD:
        return [_decode(job) for job in jobs]
    # Largest chunks first, one at a time (a chunk costs 10–700 ms): the workers finish together.
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1]))
    for attempt in (1, 2):
        try:
            out: list[pl.DataFrame | str] = [""] * len(jobs)
            for i, frame in zip(order, _decoder_pool().map(_decode, [jobs[i] for i in order]), strict=True):
                out[i] = frame
            return out
        except BrokenProcessPool:  # a worker died (OOM kill…): start a new pool once
            with _pool_lock:
                _pool = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _events_path(wh: Warehouse, match_id: str, chunk: bytes, version: int):
    digest = hashlib.blake2b(chunk, digest_size=8).hexdigest()
    return wh.landing.root / FILM_EVENTS / match_id[:2] / f"{match_id}.v{version}.{digest}.parquet"


def decode_highlight_events(wh: Warehouse, match_ids: list[str]) -> pl.DataFrame:
    """Highlight events of the landed film chunks of ``match_ids``, decoded with spnkr's reader.

    spnkr's reader costs ~160 ms of CPU per match: many chunks are decoded in the process-wide pool
    (spawned, one worker per core). Decoded events are kept beside raw landing, keyed by match id and a digest
    of the chunk (:data:`FILM_EVENTS`), so re-deriving never decodes a chunk twice (a re-landed, different
    chunk is decoded again). A chunk that cannot be decoded does not fail the partition: it is logged (one
    warning line naming the match, in the run's event log) and skipped; the other matches' events are kept.
    """
    landing = wh.landing
    jobs = [(mid, *film) for mid in match_ids if (film := landing.get_film(mid)) is not None]
    if not jobs:
        return pl.DataFrame(schema=HIGHLIGHT_EVENTS_SCHEMA)
    paths = [_events_path(wh, *job) for job in jobs]
    frames: list[pl.DataFrame | str | None] = [pl.read_parquet(p) if p.exists() else None for p in paths]
    todo = [i for i, f in enumerate(frames) if f is None]
    for i, decoded in zip(todo, _decode_many([jobs[i] for i in todo]), strict=True):
        frames[i] = decoded
        if not isinstance(decoded, str):
            write_parquet_atomic(decoded, paths[i])
    for error in (f for f in frames if isinstance(f, str)):
        dg.get_dagster_logger().warning(f"highlight_events: skipped {error}")
    frames = [f for f in frames if not isinstance(f, str)]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=HIGHLIGHT_EVENTS_SCHEMA)
