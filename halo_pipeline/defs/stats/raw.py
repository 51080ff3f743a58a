"""Reading raw landing for the derived assets: zero API calls, pure functions of landed bodies."""

from __future__ import annotations

import hashlib

import dagster as dg
import orjson
import polars as pl

from halo_pipeline import parallel
from halo_pipeline.storage.files import write_parquet_atomic
from halo_pipeline.storage.landing import PROFILE
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.film import HIGHLIGHT_EVENTS_SCHEMA

#: Below this many film chunks, decoding in the step's own process beats starting a pool.
POOL_THRESHOLD = 8


def landed_match_ids(wh: Warehouse, xuid: int, month: str) -> list[str]:
    """Match ids of the partition whose stats body is landed (from the ``raw_matches`` index).

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    index = wh.read_partition("raw_matches", xuid, month)
    return index.filter(pl.col("stats_status") == "landed")["match_id"].to_list()


def profiles(wh: Warehouse, xuids: list[int]) -> list[dict]:
    """Landed profile user objects (``{"xuid", "gamertag", …}``) of ``xuids``."""
    landing = wh.landing
    return [orjson.loads(body) for x in xuids if (body := landing.get(PROFILE, str(x))) is not None]


#: Decoded highlight events are kept under ``<raw>/FILM_EVENTS/<id[:2]>/<match_id>.<chunk digest>.parquet``.
FILM_EVENTS = "film_events"


def _decode_many(jobs: list[tuple[str, bytes, int]]) -> list[pl.DataFrame | str]:
    """Decode film chunks: in :func:`halo_pipeline.parallel.worker_pool` from :data:`POOL_THRESHOLD` chunks,
    largest first, one at a time (a chunk costs ~1–15 ms), so that the workers finish together."""
    if len(jobs) < POOL_THRESHOLD:
        return [parallel.decode_film(job) for job in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1]))
    out: list[pl.DataFrame | str] = [""] * len(jobs)
    for i, frame in zip(order, parallel.map_in_pool(parallel.decode_film, [jobs[i] for i in order]), strict=True):
        out[i] = frame
    return out


def _events_path(wh: Warehouse, match_id: str, chunk: bytes, version: int):
    digest = hashlib.blake2b(chunk, digest_size=8).hexdigest()
    return wh.landing.root / FILM_EVENTS / match_id[:2] / f"{match_id}.v{version}.{digest}.parquet"


def decode_highlight_events(wh: Warehouse, match_ids: list[str]) -> pl.DataFrame:
    """Highlight events of the landed film chunks of ``match_ids``, decoded by
    :mod:`halo_pipeline.transforms.film_decoder` (spnkr's reader's output, ~20× faster).

    Decoding costs ~1–15 ms of CPU per match: many chunks are decoded in the process-wide pool
    (:mod:`halo_pipeline.parallel`). Decoded events are kept beside raw landing, keyed by match id and a digest
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
