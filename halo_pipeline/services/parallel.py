"""CPU-bound work off the API path, in one process-wide pool: film decoding and stats derivation.

Film decoding costs ~1–15 ms of CPU per match (spnkr's own reader: ~160 ms) and parsing + deriving a stats
body ≈ 1 ms; both are pure functions of landed bytes, so they scale with cores instead of waiting on one. The
pool is spawned once per process (one worker per core; a worker's start-up ≈ 1–2 s, its imports: polars,
orjson, spnkr, never Dagster), and shut down at exit. This module imports no Dagster so that the workers stay light.

Worker functions (picklable, module level):

* :func:`decode_film` — ``(match_id, chunk, film major version)`` → highlight events frame, or an error line;
* :func:`derive_stats` — a landing, an owner xuid and match ids → ``{table: frame}`` of the stats tables.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson
import polars as pl

from halo_pipeline.storage.landing import SKILL, STATS, RawLanding
from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms.film import highlight_events_or_error
from halo_pipeline.transforms.people import match_people, with_match_people
from halo_pipeline.transforms.skill import player_match_skill

# --------------------------------------------------------------------------------------------------- the pool

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def worker_pool() -> ProcessPoolExecutor:
    """The process-wide pool (spawned on first use, ``os.cpu_count()`` workers, shut down at exit): a pool per
    partition cost ≈ 1–2 s of worker start-up each time.

    Shut down by a ``multiprocessing`` finalizer as well as at interpreter exit: in a process that is itself a
    ``multiprocessing`` child (a step of Dagster's multiprocess executor) Python exits through ``os._exit`` after
    joining the process's non-daemon children — the pool's idle workers — without running ``atexit``: the step
    process would never end."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_pool.shutdown, cancel_futures=True)
            multiprocessing.util.Finalize(_pool, _pool.shutdown, kwargs={"cancel_futures": True}, exitpriority=100)
        return _pool


def discard_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` after a worker died (OOM kill…): the next :func:`worker_pool` starts a new one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None


def map_in_pool(fn: Callable[[Any], Any], jobs: list) -> list:
    """``[fn(job) for job in jobs]`` computed in :func:`worker_pool`, in order; a broken pool is replaced once.

    Raises:
        BrokenProcessPool: the new pool broke too. Whatever ``fn`` raises, re-raised here.
    """
    for attempt in (1, 2):
        pool = worker_pool()
        try:
            return list(pool.map(fn, jobs))
        except BrokenProcessPool:
            discard_pool(pool)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _started(_: int) -> int:
    time.sleep(0.05)  # long enough that every worker takes one
    return os.getpid()


def start_workers() -> float:
    """Spawn the pool's workers and import this module (polars, orjson, spnkr) in each; returns the seconds it
    took (≈ 1–2 s, once per process). Otherwise the first tasks pay it; benchmarks call this before timing."""
    start = time.perf_counter()
    pool = worker_pool()
    list(pool.map(_started, range(os.cpu_count() or 1)))
    return time.perf_counter() - start


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` in :func:`worker_pool` (a broken pool is replaced before submitting)."""
    pool = worker_pool()
    try:
        return pool.submit(fn, *args)
    except BrokenProcessPool:
        discard_pool(pool)
        return worker_pool().submit(fn, *args)


# --------------------------------------------------------------------------------------------------- work

decode_film = highlight_events_or_error

#: Stats tables derived from one parse of each stats body: table → ``transform(parsed bodies, owner xuid)``.
#: ``player_match_skill`` (from the skill bodies of the same matches) is derived in the same pass.
STATS_TRANSFORMS: dict[str, Callable[[list[dict], int], pl.DataFrame]] = {
    "match_facts": tm.match_facts,
    "match_participants": lambda bodies, _owner: tm.match_participants(bodies),
    "team_stats": lambda bodies, _owner: tm.team_stats(bodies),
    "medals": lambda bodies, _owner: tm.medals(bodies),
    "personal_scores": lambda bodies, _owner: tm.personal_scores(bodies),
}
SKILL_TABLE = "player_match_skill"
#: Every table :func:`derive_stats` can derive.
TABLES = frozenset(STATS_TRANSFORMS) | {SKILL_TABLE}


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsed JSON is acyclic (reference counting frees it), but its
    millions of new objects make the collector traverse every live body again and again (≈ 20 % of a derive).
    Re-enabled on exit (if it was enabled)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def derive_stats(landing: RawLanding, owner: int, match_ids: list[str], tables: Iterable[str],
                 friends: frozenset[int] = frozenset(), known: frozenset[int] = frozenset()
                 ) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` for ``tables`` (a subset of :data:`TABLES`) of the landed bodies of ``match_ids``.

    Each stats body is read (gunzip) and parsed (orjson) once for all the stats tables; skill bodies only when
    ``player_match_skill`` is asked for. Frames follow the transforms' schemas and row orders
    (:mod:`halo_pipeline.transforms.matches`, :mod:`halo_pipeline.transforms.skill`); ``match_facts`` also gets
    who played with the owner (:func:`halo_pipeline.transforms.people.match_people`: the owner's declared
    ``friends``, ``known`` players), from the same parse.

    Raises:
        orjson.JSONDecodeError: a landed body is not JSON (landing keeps only complete JSON, so: a corrupt disk).
        TypeError: a match id has no landed stats body.
    """
    names = list(tables)
    out: dict[str, pl.DataFrame] = {}
    stats = [name for name in names if name in STATS_TRANSFORMS]
    with _no_cyclic_gc():
        if stats:
            bodies = [orjson.loads(landing.get(STATS, mid)) for mid in match_ids]
            for name in stats:
                out[name] = STATS_TRANSFORMS[name](bodies, owner)
            if "match_facts" in out:
                out["match_facts"] = with_match_people(out["match_facts"], match_people(bodies, owner, friends, known))
            del bodies
        if SKILL_TABLE in names:
            out[SKILL_TABLE] = player_match_skill(
                [(mid, orjson.loads(body)) for mid in match_ids if (body := landing.get(SKILL, mid)) is not None])
    return out
