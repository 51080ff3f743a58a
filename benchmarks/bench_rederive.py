"""(c) Re-derive from raw landing with zero API calls.

* JSON tables (match_facts, match_participants, team_stats, medals, personal_scores, player_match_skill,
  xuid_aliases) for ``players × months × per_month`` matches, run as a single-run backfill does (asset by
  asset, every partition, each written to Parquet) but without Dagster (its overhead is ``bench_overhead``).
  Baseline, same process, pinned to one CPU with it: ``orjson.loads`` (the parser we use) of the same bodies
  (stats + skill, already decompressed). Also timed alone: what no derive can avoid (gunzip of the landed bodies,
  writing the stats tables' Parquet).
  Also shown: the same derive with every asset parsing the bodies itself (before the single pass).
* Highlight events: the recorded film chunks of ``../shared/halo_api/film`` (read in place), landed in a
  temporary landing under fresh match ids: the pipeline's path in the process pool vs the same work (decode,
  keep the events) in one process, and the bare decode loop; then a re-derive once the decoded events are kept
  (must decode nothing).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import orjson

from benchmarks._common import Result, cloned_landing, film_chunks, timer
from halo_pipeline.defs.stats.assets import write_partitions
from halo_pipeline.services import derive, parallel
from halo_pipeline.storage.landing import SKILL, STATS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import STATS_TABLES
from halo_pipeline.transforms.film import highlight_events

JSON_TABLES = [*STATS_TABLES, "xuid_aliases"]


def _derive_all(wh: Warehouse, partitions, single_pass: bool) -> None:
    """What a single-run backfill of :data:`JSON_TABLES` does, without Dagster: the stats tables of every
    partition (``single_pass``: from one parse of each body, in the pool for a large run, as the stats step
    does; else table by table, each parsing the bodies), then the aliases, each written to Parquet."""
    if single_pass:
        write_partitions(wh, derive.derive_stats_tables(wh, partitions, STATS_TABLES))
    else:
        for table in STATS_TABLES:
            write_partitions(wh, ((x, m, derive.derive_partition(wh, x, m, [table])) for x, m in partitions))
    write_partitions(wh, ((x, m, {"xuid_aliases": derive.derive_aliases(wh, x, m)}) for x, m in partitions))


def bench_json(result: Result, smoke: bool, root: Path) -> None:
    """Per core: our re-derive in this process (no pool) against ``orjson.loads`` (the parser we use) of the same
    bodies, decompressed, in the same process; then the same re-derive with the process pool (every core)."""
    players, months, per_month = (1, 2, 10) if smoke else (4, 25, 100)
    with timer() as t:
        landing = cloned_landing(root, players, months, per_month)
    n = landing.matches
    result.notes.append(f"{n:,} matches ({players} players × {months} months × {per_month}), "
                        f"{len(landing.bodies):,} bodies landed in {t[0]:.1f} s; every clone has its own match id and "
                        "its own players' xuids (no cache sees the same player twice, as in real histories)")

    def baseline() -> float:
        with timer() as tb:
            for body in landing.bodies:
                orjson.loads(body)
        return tb[0]

    partitions = list(landing.partitions)
    ids = [m for p in partitions for m in landing.partitions[p]]
    in_process = derive.POOL_MIN_MATCHES
    derive.POOL_MIN_MATCHES = 10**12  # one core: no pool
    cpus = _pin_one_core()
    try:
        base_times = [baseline()]
        with timer() as t_before:
            _derive_all(landing.wh, partitions, single_pass=False)
        base_times.append(baseline())
        with timer() as t_core:
            _derive_all(landing.wh, partitions, single_pass=True)
        base_times.append(baseline())
        # What a derive cannot avoid, each alone: reading the landed bodies (gunzip) and writing its output.
        with timer() as t_read:
            for mid in ids:
                landing.wh.landing.get(STATS, mid)
                landing.wh.landing.get(SKILL, mid)
        frames = list(derive.derive_stats_tables(landing.wh, partitions, STATS_TABLES))
        with timer() as t_write:
            write_partitions(landing.wh, frames)
        columnar = _columnar_readers(landing.bodies[:2000], root)
    finally:
        derive.POOL_MIN_MATCHES = in_process
        _unpin(cpus)
    startup = parallel.start_workers()
    with timer() as t_pool:
        _derive_all(landing.wh, partitions, single_pass=True)
    base = n / (sum(base_times) / len(base_times))
    result.add("orjson.loads of the same bodies (one core)", base, "matches/s")
    result.add("re-derive, one core, each table parsing the bodies", n / t_before[0], "matches/s", base,
               n / t_before[0] / base)
    result.add("re-derive, one core (one parse per run)", n / t_core[0], "matches/s", base, n / t_core[0] / base,
               "≥ 1.0× orjson.loads per core", n / t_core[0] / base >= 1.0 if not smoke else None)
    result.add("  of which unavoidable: reading the landed bodies (gunzip), one core", n / t_read[0], "matches/s",
               base, n / t_read[0] / base)
    result.add("  of which unavoidable: writing the 6 stats tables' Parquet, one core", n / t_write[0],
               "matches/s", base, n / t_write[0] / base)
    for name, per_body in columnar.items():
        rate = 1 / (per_body * len(landing.bodies) / n)
        result.add(f"  a columnar JSON reader instead of orjson: {name}, one core, parse only", rate, "matches/s",
                   base, rate / base)
    cores = os.cpu_count() or 1
    result.add(f"re-derive, process pool ({cores} cores)", n / t_pool[0], "matches/s", base * cores,
               n / t_pool[0] / (base * cores))
    result.notes.append(f"process pool start-up (once per process, not in the figures): {startup:.1f} s; "
                        f"{len(partitions)} partitions × {len(JSON_TABLES)} tables written: one core "
                        f"{t_core[0]:.2f} s, pool {t_pool[0]:.2f} s")
    result.extra = {"pure_seconds": t_pool[0], "root": root, "landing": landing}  # type: ignore[attr-defined]


def _columnar_readers(bodies: list[bytes], root: Path) -> dict[str, float]:
    """Seconds per body of two columnar JSON readers (no Python object per value) reading ``bodies`` as NDJSON, on
    one thread: what a derive that never builds Python dicts would start from."""
    import duckdb
    import polars as pl

    ndjson = root / "bodies.ndjson"
    ndjson.write_bytes(b"\n".join(orjson.dumps(orjson.loads(b)) for b in bodies))
    con = duckdb.connect()
    con.execute("SET threads = 1")
    with timer() as t_duckdb:
        con.sql(f"SELECT * FROM read_ndjson('{ndjson}', maximum_object_size = 100000000)").to_arrow_table()
    with timer() as t_polars:
        pl.read_ndjson(ndjson)
    ndjson.unlink()
    return {"DuckDB read_ndjson": t_duckdb[0] / len(bodies), "polars read_ndjson": t_polars[0] / len(bodies)}


def _pin_one_core() -> set[int] | None:
    """Run this process (its threads included) on one CPU: "per core" means one core, whatever threads polars or
    the Parquet writers start. Returns the CPUs to restore (None where affinity is not supported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    _set_affinity({min(cpus)})
    return cpus


def _unpin(cpus: set[int] | None) -> None:
    if cpus is not None:
        _set_affinity(cpus)


def _set_affinity(cpus: set[int]) -> None:
    """Every thread of this process (Linux sets affinity per thread; polars' pool is already running)."""
    tasks = Path("/proc/self/task")
    for tid in (int(t) for t in os.listdir(tasks)) if tasks.is_dir() else [0]:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:  # a thread that just ended
            pass


def _kept_events(wh: Warehouse) -> dict[Path, int]:
    """Kept decoded-events files and their modification times (a chunk decoded again writes its file again)."""
    return {p: p.stat().st_mtime_ns for p in (wh.landing.root / derive.FILM_EVENTS).rglob("*.parquet")}


def bench_film(result: Result, smoke: bool, root: Path) -> None:
    chunks = film_chunks()
    if chunks is None:
        result.notes.append("highlight events SKIPPED: no recorded film chunks at "
                            "../shared/halo_api/film (the shared recordings folder is absent)")
        return
    reps = 1 if smoke else 40  # 480 chunks: past FILM_POOL_THRESHOLD, so the pipeline decodes them in the pool
    if smoke:  # the three smallest chunks: the path, not the speed
        chunks = sorted(chunks, key=lambda c: len(c[1]))[:3]
    wh = Warehouse(root / "film")
    ids, same_work_ids = [], []
    for r in range(reps):
        for match_id, chunk, version in chunks:
            for prefix, out in (("", ids), ("one-process:", same_work_ids)):
                mid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}{match_id}:{r}"))
                wh.landing.put_film(mid, version, chunk)
                out.append(mid)
    n = len(ids)
    with timer() as t_single:
        frames = []
        for mid in ids:
            chunk, version = wh.landing.get_film(mid)
            frames.append(highlight_events(mid, chunk, version))
    single_rows = sum(f.height for f in frames)
    with timer() as t_same_work:  # the pipeline's own path in this process: decode and keep each chunk's events
        for mid in same_work_ids:
            derive._events_of((wh.landing, mid))
    startup = parallel.start_workers()  # once per process (the pool is kept)
    with timer() as t_pool:
        pooled = derive.decode_highlight_events(wh, ids)
    assert pooled.height == single_rows, (pooled.height, single_rows)
    kept_before = _kept_events(wh)
    with timer() as t_kept:
        again = derive.decode_highlight_events(wh, ids)
    decoded_again = sum(1 for path, mtime in _kept_events(wh).items() if kept_before.get(path) != mtime)
    assert again.height == single_rows
    single = n / t_single[0]
    pool = n / t_pool[0]
    cores = os.cpu_count() or 1
    result.add("film: single-process decode loop", single, "matches/s")
    same_work = n / t_same_work[0]
    result.add("film: decode and keep the events, one process", same_work, "matches/s", single, same_work / single)
    result.add(f"film: decode_highlight_events, process pool ({cores} workers, started)", pool, "matches/s",
               same_work, pool / same_work, "≥ 1.5× on 2 cores", pool / same_work >= 1.5 if not smoke else None)
    result.add("film: pool start-up (once per process)", startup, "s")
    result.add("film: re-derive with decoded events kept", n / t_kept[0], "matches/s", single,
               (n / t_kept[0]) / single)
    result.add("film: chunks decoded again by that re-derive", decoded_again, "chunks", target="0",
               ok=decoded_again == 0)
    result.notes.append(f"{n} film chunks ({len(chunks)} recorded × {reps}), {single_rows:,} events; "
                        f"CPU per chunk single-process {t_single[0] / n * 1000:.0f} ms")
    result.notes.append(f"load average during the run: {os.getloadavg()[0]:.1f} (other processes share the cores)")


def run(smoke: bool = False) -> Result:
    result = Result("(c) Re-derive from raw landing")
    with tempfile.TemporaryDirectory(prefix="halo-bench-rederive-") as tmp:
        bench_json(result, smoke, Path(tmp))
        bench_film(result, smoke, Path(tmp))
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
