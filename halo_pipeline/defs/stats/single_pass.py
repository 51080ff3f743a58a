"""One parse of each landed body for all the stats tables of a run, in parallel when the run is large.

``match_facts``, ``match_participants``, ``team_stats``, ``medals`` and ``personal_scores`` are pure functions
of the same stats bodies, ``player_match_skill`` of the skill bodies of the same matches. Each asset re-reading
and re-parsing every body (gzip + JSON, ≈ 0.3 ms per 20 KB body here) made a re-derive cost 5 parses per match,
more than the stdlib merely parsing them once.

Within one Dagster run (:func:`run_scope`), the first of these assets to reach a partition gets every table the
run selected from one parse (:func:`halo_pipeline.parallel.derive_stats`); the other assets take their frame
from this per-process cache (each frame is handed out once, then dropped; entries of other runs are evicted).
When the run holds at least :data:`POOL_MIN_MATCHES` landed matches, the first asset submits all its partitions,
:data:`CHUNK` matches per task, to the process pool (:mod:`halo_pipeline.parallel`): the cores derive ahead
while the step writes Parquet. Outside a run scope (tests, scripts), :func:`stats_table` derives the one table
asked for, in this process.

Memory: bodies are parsed :data:`CHUNK` at a time (a parsed body is ≈ 10× its JSON), so peak memory does not
grow with a partition's size; the cache holds typed frames (columnar, ≈ 1–2 KB per match for all tables).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextvars import ContextVar
from dataclasses import dataclass

import polars as pl

from halo_pipeline import parallel
from halo_pipeline.defs.stats import raw
from halo_pipeline.storage.warehouse import Warehouse

#: The tables derived together (stats bodies, and skill bodies for ``player_match_skill``).
TABLES = parallel.TABLES
#: Bodies parsed at a time, in this process or per pool task.
CHUNK = 256
#: A run with fewer landed matches derives in its own process (a pool's start-up ≈ 1–2 s is not worth it).
POOL_MIN_MATCHES = 1000


@dataclass(frozen=True)
class _Scope:
    run_id: str
    tables: frozenset[str]


#: A partition's tables: derived frames, or the pool's tasks (one per chunk) still to be combined.
_Entry = dict[str, pl.DataFrame] | list[Future]

_SCOPE: ContextVar[_Scope | None] = ContextVar("halo_stats_single_pass", default=None)
_CACHE: dict[tuple[str, str, int, str], _Entry] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def run_scope(run_id: str, tables: Iterable[str] | None) -> Iterator[None]:
    """Within this block, :func:`stats_table` derives every one of ``tables`` (tables the run will
    materialize; ``None``: all of :data:`TABLES`) from one parse, keyed by ``run_id``."""
    wanted = frozenset(TABLES) if tables is None else frozenset(tables) & TABLES
    with _LOCK:
        for key in [k for k in _CACHE if k[0] != run_id]:  # another run's leftovers: never served
            _discard(_CACHE.pop(key))
    token = _SCOPE.set(_Scope(run_id, wanted))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _discard(entry: _Entry) -> None:
    if isinstance(entry, list):
        for future in entry:
            future.cancel()


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start:start + CHUNK] for start in range(0, len(ids), CHUNK)] or [[]]


def _combine(parts: list[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    frames = {name: pl.concat([part[name] for part in parts], how="vertical") for name in parts[0]}
    if "match_facts" in frames and len(parts) > 1:  # its rows are in time order
        frames["match_facts"] = frames["match_facts"].sort("start_time", "match_id", nulls_last=True)
    return frames


def _landed(wh: Warehouse, xuid: int, month: str) -> list[str]:
    return list(dict.fromkeys(raw.landed_match_ids(wh, xuid, month)))


def derive_chunked(wh: Warehouse, xuid: int, month: str, tables: Iterable[str]) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` of the partition's landed bodies, in this process, parsing :data:`CHUNK` at a time.

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    names = list(tables)
    return _combine([parallel.derive_stats(wh.landing, xuid, ids, names) for ids in _chunks(_landed(wh, xuid, month))])


def prefetch(wh: Warehouse, partitions: Iterable[tuple[int, str]]) -> int:
    """Within a :func:`run_scope`: when ``partitions`` hold at least :data:`POOL_MIN_MATCHES` landed matches,
    submit those not cached yet to the process pool (:data:`CHUNK` matches per task); returns the matches
    submitted (0: the partitions will be derived in this process, as each is asked for).

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for one of the partitions.
    """
    scope = _SCOPE.get()
    if scope is None or not scope.tables:
        return 0
    with _LOCK:
        todo = [(x, m) for x, m in partitions if (scope.run_id, str(wh.data_dir), x, m) not in _CACHE]
    landed = {(x, m): _landed(wh, x, m) for x, m in todo}
    total = sum(len(ids) for ids in landed.values())
    if total < POOL_MIN_MATCHES:
        return 0
    tables = sorted(scope.tables)
    with _LOCK:
        for (xuid, month), ids in landed.items():
            _CACHE[(scope.run_id, str(wh.data_dir), xuid, month)] = [
                parallel.submit(parallel.derive_stats, wh.landing, xuid, chunk, tables) for chunk in _chunks(ids)]
    return total


def _resolve(wh: Warehouse, xuid: int, month: str, tasks: list[Future], tables: Iterable[str]
             ) -> dict[str, pl.DataFrame]:
    try:
        return _combine([task.result() for task in tasks])
    except BrokenProcessPool:  # a worker died: this partition again, here (the next submit starts a new pool)
        return derive_chunked(wh, xuid, month, tables)


def stats_table(wh: Warehouse, xuid: int, month: str, table: str) -> pl.DataFrame:
    """The ``table`` frame (one of :data:`TABLES`) of partition ``xuid`` × ``month``, from its landed bodies.

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    scope = _SCOPE.get()
    if scope is None or table not in scope.tables:
        return derive_chunked(wh, xuid, month, [table])[table]
    key = (scope.run_id, str(wh.data_dir), xuid, month)
    with _LOCK:
        entry = _CACHE.pop(key, None)
    if isinstance(entry, list):
        entry = _resolve(wh, xuid, month, entry, scope.tables)
    if entry is None or table not in entry:
        entry = derive_chunked(wh, xuid, month, scope.tables)
    frame = entry.pop(table)
    if entry:
        with _LOCK:
            _CACHE[key] = entry
    return frame
