"""One parse of each landed stats body for all the stats tables of a run.

``match_facts``, ``match_participants``, ``team_stats``, ``medals`` and ``personal_scores`` are all pure
functions of the same stats bodies. Each asset re-reading and re-parsing every body (gzip + JSON, ≈ 0.3 ms
per 20 KB body here) made a re-derive cost 5 parses per match, more than the stdlib merely parsing them once.

Within one Dagster run (:func:`run_scope`), the first stats asset to reach a partition reads and parses its
bodies **once** and derives every stats table the run selected; the other assets take their frame from this
per-process cache (each frame is handed out once, then dropped; entries of other runs are evicted). Outside a
run scope (tests, scripts), :func:`stats_table` simply derives the one table asked for.

Memory: the cache holds typed frames (columnar, ≈ 1–2 KB per match for all five tables), never parsed bodies.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import polars as pl

from halo_pipeline.defs.stats import raw
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import matches as tm

#: table → ``transform(parsed stats bodies, owner xuid)``
STATS_TRANSFORMS: dict[str, Callable[[list[dict], int], pl.DataFrame]] = {
    "match_facts": tm.match_facts,
    "match_participants": lambda bodies, _owner: tm.match_participants(bodies),
    "team_stats": lambda bodies, _owner: tm.team_stats(bodies),
    "medals": lambda bodies, _owner: tm.medals(bodies),
    "personal_scores": lambda bodies, _owner: tm.personal_scores(bodies),
}


@dataclass(frozen=True)
class _Scope:
    run_id: str
    tables: frozenset[str]


_SCOPE: ContextVar[_Scope | None] = ContextVar("halo_stats_single_pass", default=None)
_CACHE: dict[tuple[str, str, int, str], dict[str, pl.DataFrame]] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def run_scope(run_id: str, tables: Iterable[str] | None) -> Iterator[None]:
    """Within this block, :func:`stats_table` derives every one of ``tables`` (stats tables the run will
    materialize; ``None``: all of :data:`STATS_TRANSFORMS`) from one parse, keyed by ``run_id``."""
    wanted = frozenset(STATS_TRANSFORMS) if tables is None else frozenset(tables) & frozenset(STATS_TRANSFORMS)
    with _LOCK:
        for key in [k for k in _CACHE if k[0] != run_id]:  # another run's leftovers: never served
            del _CACHE[key]
    token = _SCOPE.set(_Scope(run_id, wanted))
    try:
        yield
    finally:
        _SCOPE.reset(token)


#: Stats bodies parsed at a time: a parsed body is ≈ 10× its JSON, so a partition is derived chunk by chunk
#: and peak memory does not grow with the number of matches in a partition.
CHUNK = 256


def derive_chunked(wh: Warehouse, xuid: int, month: str, tables: Iterable[str]) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` of the partition's landed stats bodies, parsing :data:`CHUNK` bodies at a time."""
    ids = list(dict.fromkeys(raw.landed_match_ids(wh, xuid, month)))
    names = list(tables)
    parts: dict[str, list[pl.DataFrame]] = {name: [] for name in names}
    for start in range(0, max(len(ids), 1), CHUNK):
        bodies = raw.stats_bodies(wh, ids[start:start + CHUNK])
        for name in names:
            parts[name].append(STATS_TRANSFORMS[name](bodies, xuid))
    frames = {name: pl.concat(chunks, how="vertical") for name, chunks in parts.items()}
    if "match_facts" in frames and len(parts["match_facts"]) > 1:  # its rows are in time order
        frames["match_facts"] = frames["match_facts"].sort("start_time", "match_id", nulls_last=True)
    return frames


def stats_table(wh: Warehouse, xuid: int, month: str, table: str) -> pl.DataFrame:
    """The ``table`` frame of partition ``xuid`` × ``month``, derived from its landed stats bodies.

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    scope = _SCOPE.get()
    if scope is None or table not in scope.tables:
        return derive_chunked(wh, xuid, month, [table])[table]
    key = (scope.run_id, str(wh.data_dir), xuid, month)
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is not None and table in entry:
            frame = entry.pop(table)
            if not entry:
                del _CACHE[key]
            return frame
    frames = derive_chunked(wh, xuid, month, scope.tables)
    frame = frames.pop(table)
    if frames:
        with _LOCK:
            _CACHE[key] = frames
    return frame


def cached_frames() -> int:
    """Frames waiting in the cache (for tests and benchmarks)."""
    with _LOCK:
        return sum(len(v) for v in _CACHE.values())
