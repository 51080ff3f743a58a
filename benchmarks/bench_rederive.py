"""(c) Re-derive from raw landing with zero API calls.

* JSON tables (match_facts, match_participants, team_stats, medals, personal_scores, player_match_skill,
  xuid_aliases) for ``players × months × per_month`` matches, run as a single-run backfill does (asset by
  asset, every partition, each written to Parquet) but without Dagster (its overhead is ``bench_overhead``).
  Baseline, same process: stdlib ``json.loads`` of the same bodies (stats + skill, already decompressed).
  Also shown: the same derive with every asset parsing the bodies itself (before the single pass).
* Highlight events: the recorded film chunks of ``../shared/halo_api/film`` (read in place), landed in a
  temporary landing under fresh match ids: the process pool vs a single-process decode loop over the same
  chunks, then a re-derive once the decoded events are kept (must decode nothing).
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
    in_process = derive.POOL_MIN_MATCHES
    derive.POOL_MIN_MATCHES = 10**12  # one core: no pool
    try:
        base_times = [baseline()]
        with timer() as t_before:
            _derive_all(landing.wh, partitions, single_pass=False)
        base_times.append(baseline())
        with timer() as t_core:
            _derive_all(landing.wh, partitions, single_pass=True)
        base_times.append(baseline())
    finally:
        derive.POOL_MIN_MATCHES = in_process
    startup = parallel.start_workers()
    with timer() as t_pool:
        _derive_all(landing.wh, partitions, single_pass=True)
    base = n / (sum(base_times) / len(base_times))
    result.add("orjson.loads of the same bodies (one core)", base, "matches/s")
    result.add("re-derive, one core, each table parsing the bodies", n / t_before[0], "matches/s", base,
               n / t_before[0] / base)
    result.add("re-derive, one core (one parse per run)", n / t_core[0], "matches/s", base, n / t_core[0] / base,
               "≥ 1.0× orjson.loads per core", n / t_core[0] / base >= 1.0 if not smoke else None)
    cores = os.cpu_count() or 1
    result.add(f"re-derive, process pool ({cores} cores)", n / t_pool[0], "matches/s", base * cores,
               n / t_pool[0] / (base * cores))
    result.notes.append(f"process pool start-up (once per process, not in the figures): {startup:.1f} s; "
                        f"{len(partitions)} partitions × {len(JSON_TABLES)} tables written: one core "
                        f"{t_core[0]:.2f} s, pool {t_pool[0]:.2f} s")
    result.extra = {"pure_seconds": t_pool[0], "root": root, "landing": landing}  # type: ignore[attr-defined]


def bench_film(result: Result, smoke: bool, root: Path) -> None:
    chunks = film_chunks()
    if chunks is None:
        result.notes.append("highlight events SKIPPED: no recorded film chunks at "
                            "../shared/halo_api/film (the shared recordings folder is absent)")
        return
    reps = 1 if smoke else 8
    if smoke:  # the three smallest chunks: the path, not the speed
        chunks = sorted(chunks, key=lambda c: len(c[1]))[:3]
    wh = Warehouse(root / "film")
    ids = []
    for r in range(reps):
        for match_id, chunk, version in chunks:
            mid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{match_id}:{r}"))
            wh.landing.put_film(mid, version, chunk)
            ids.append(mid)
    n = len(ids)
    with timer() as t_single:
        frames = []
        for mid in ids:
            chunk, version = wh.landing.get_film(mid)
            frames.append(highlight_events(mid, chunk, version))
    single_rows = sum(f.height for f in frames)
    startup = parallel.start_workers()  # once per process (the pool is kept)
    with timer() as t_pool:
        pooled = derive.decode_highlight_events(wh, ids)
    assert pooled.height == single_rows, (pooled.height, single_rows)
    calls = []
    original = derive._decode_many
    derive._decode_many = lambda jobs: calls.append(len(jobs)) or original(jobs)
    try:
        with timer() as t_kept:
            again = derive.decode_highlight_events(wh, ids)
    finally:
        derive._decode_many = original
    assert again.height == single_rows
    decoded_again = sum(calls)
    single = n / t_single[0]
    pool = n / t_pool[0]
    cores = os.cpu_count() or 1
    result.add("film: single-process decode loop", single, "matches/s")
    result.add(f"film: process pool ({cores} workers, started)", pool, "matches/s", single, pool / single,
               "≥ 1.8× on 2 cores", pool / single >= 1.8 if not smoke else None)
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
