"""Serving store benchmark (l): the materialized store vs today's views over Parquet, incremental updates vs a
full rebuild, ``halo-pipeline stats``, the update step's memory — at 50 players × 24 months and at community
scale (2,000 players × 24 months).

    .venv/bin/python -m benchmarks.bench_serving [--smoke] [--large-dir=DIR]

The warehouses are synthetic, written straight to Parquet (no API, no Dagster): 50 × 24 × 125 matches is
:func:`benchmarks.bench_queries.build` (1.2 M ``match_participants`` rows, 1,200 files per table); the
2,000-player one clones one player's 24 generated months under each xuid (25 matches a month: 1.2 M matches,
9.6 M participant rows, 48,000 files per table; written without fsync — setup speed only). Every figure has its
baseline measured in the same run: the views over Parquet (:func:`halo_pipeline.storage.catalog.refresh_catalog`)
for queries and ``stats``, a full rebuild for the incremental update, the 50-player warehouse for memory.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from benchmarks.bench_queries import build
from halo_pipeline.storage import catalog, serving
from halo_pipeline.storage.warehouse import Warehouse, month_of_path

TABLES = ("match_facts", "match_participants", "map_stats", "mode_category_stats", "global_stats", "session_stats")
FIRST_XUID = 2533274900000000
#: One player's dashboard: their roll-up rows and their last 50 matches with every participant.
DASHBOARD = {
    "mv_map_stats": "SELECT * FROM mv_map_stats WHERE xuid = $x",
    "mv_mode_category_stats": "SELECT * FROM mv_mode_category_stats WHERE xuid = $x",
    "mv_global_stats": "SELECT * FROM mv_global_stats WHERE xuid = $x",
    "mv_session_stats": "SELECT * FROM mv_session_stats WHERE xuid = $x ORDER BY start_time DESC LIMIT 50",
    "last 50 matches + participants": (
        "WITH last AS (SELECT match_id, start_time, kills, deaths FROM match_facts WHERE owner_xuid = $x "
        "ORDER BY start_time DESC LIMIT 50) SELECT l.*, p.xuid AS participant, p.kills AS participant_kills "
        "FROM last l JOIN match_participants p ON p.match_id = l.match_id AND p.owner_xuid = $x"),
}
ROLLUP_QUERIES = {name: f"SELECT * FROM {name}" for name in catalog.ROLLUPS}


def clone_build(root: Path, players: int, months: int, matches: int) -> int:
    """``players × months`` partitions of :data:`TABLES`: one player's generated months (``build``) cloned
    under each xuid (match ids prefixed per player). Returns the participant rows."""
    template = root.parent / (root.name + "-template")
    build(template, 1, months, matches)
    twh, wh = Warehouse(template), Warehouse(root)
    rows = 0
    frames = {t: {month_of_path(p): pl.read_parquet(p) for p in twh.partition_files(t)} for t in TABLES}
    for p in range(players):
        xuid = FIRST_XUID + p
        for table, by_month in frames.items():
            for month, df in by_month.items():
                out = df
                if "match_id" in df.columns:
                    out = out.with_columns((pl.lit(f"{p:05d}") + pl.col("match_id")).alias("match_id"))
                if "xuid" in df.columns:
                    out = out.with_columns(pl.when(pl.col("xuid") == FIRST_XUID).then(xuid)
                                           .otherwise(pl.col("xuid")).alias("xuid"))
                if "session_id" in df.columns:
                    out = out.with_columns((pl.lit(f"{xuid}:") + pl.col("session_id")).alias("session_id"))
                path = wh.partition_path(table, xuid, month)
                path.parent.mkdir(parents=True, exist_ok=True)
                out.write_parquet(path, compression="zstd", statistics=True)
                rows += out.height if table == "match_participants" else 0
    return rows


def write_sync_meta(wh: Warehouse, players: int) -> None:
    """One ``sync_meta`` row per player (what ``halo-pipeline stats`` lists per player)."""
    from datetime import UTC, datetime

    from halo_pipeline.tables import SYNC_META_SCHEMA

    now = datetime.now(UTC)
    for p in range(players):
        xuid = FIRST_XUID + p
        path = wh.table_dir("sync_meta") / f"player={xuid}" / "data.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame([(xuid, now, "m", now, 100, 0, now, 24, "ok")], schema=SYNC_META_SCHEMA,
                     orient="row").write_parquet(path)


def _median_ms(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None, runs: int = 5) -> float:
    """Median over ``runs`` (after one warm run) of ``sql`` fetched whole as a polars frame (what a notebook or a
    dashboard does; ``fetchall``'s Python tuples would measure Python, not the store), ms."""
    cur = con.cursor()  # a fresh cursor: DuckDB 2 refuses .sql() on a connection with an unfinished result
    cur.sql(sql, params=params or {}).pl()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        cur.sql(sql, params=params or {}).pl()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _dashboard_ms(con: duckdb.DuckDBPyConnection, xuid: int, runs: int = 5) -> float:
    """Median over ``runs`` of one dashboard load (every :data:`DASHBOARD` query in turn), ms."""
    times, cur = [], con.cursor()
    for i in range(runs + 1):
        t = time.perf_counter()
        for sql in DASHBOARD.values():
            cur.sql(sql, params={"x": xuid}).pl()
        if i:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _views(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    catalog.refresh_catalog(con, wh)
    return con


_UPDATE_MEMORY = """
import sys, time
from pathlib import Path
from halo_pipeline.storage import serving
from halo_pipeline.storage.warehouse import Warehouse
from benchmarks.bench_serving import rewrite_month
wh = Warehouse(Path(sys.argv[1]))
parts = rewrite_month(wh, int(sys.argv[2]), sys.argv[3])
t = time.perf_counter()
report = serving.update(wh, partitions=parts)
elapsed = time.perf_counter() - t
hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024
print(f"{elapsed} {hwm} {report.rows_inserted}")
"""


def rewrite_month(wh: Warehouse, xuid: int, month: str) -> list[serving.Partition]:
    """Re-materialize one player's month: every table's partition file written again (same rows, new file)."""
    parts = []
    for table in TABLES:
        path = wh.partition_path(table, xuid, month)
        if path.exists():
            wh.write_partition(table, xuid, month, pl.read_parquet(path))
            parts.append(serving.Partition(table, xuid, month))
    return parts


def _update_in_subprocess(wh: Warehouse, xuid: int, month: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB of the whole process, rows inserted) of one incremental update in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _UPDATE_MEMORY, str(wh.data_dir), str(xuid), month],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    seconds, mib, rows = out.stdout.split()
    return float(seconds), float(mib), int(rows)


def _measure(result, label: str, wh: Warehouse, views_runs: int, targets: tuple[float, float],
             smoke: bool = False) -> dict:
    """Rebuild, roll-ups, dashboard and stats at one size; returns the update/memory figures."""
    t = time.perf_counter()
    rebuild = serving.update(wh, rebuild=True)
    rebuild_s = time.perf_counter() - t
    xuid = FIRST_XUID + 1
    views = _views(wh) if views_runs else None
    with serving.connect(wh) as store:
        for name, sql in ROLLUP_QUERIES.items():
            fast = _median_ms(store, sql)
            slow = _median_ms(views, sql, runs=views_runs) if views_runs else None
            result.add(f"{label}: {name}", fast, "ms median", slow, slow / fast if slow else None,
                       f"< {targets[0]:.0f} ms", fast < targets[0])
        fast = _dashboard_ms(store, xuid)
        slow = _dashboard_ms(views, xuid, runs=views_runs) if views_runs else None
        result.add(f"{label}: one player's dashboard", fast, "ms median", slow, slow / fast if slow else None,
                   f"< {targets[1]:.0f} ms", fast < targets[1])
    t = time.perf_counter()
    catalog.summary(wh)
    stats_s = time.perf_counter() - t
    stats_views = None
    if views_runs:
        t = time.perf_counter()
        catalog.summary_of(views, wh)
        stats_views = time.perf_counter() - t
    if views is not None:
        views.close()
    result.add(f"{label}: halo-pipeline stats", stats_s, "s", stats_views,
               stats_views / stats_s if stats_views else None, "< 2 s", stats_s < 2)
    month = sorted(month_of_path(p) for p in wh.partition_files("match_facts", xuid))[-1]
    t = time.perf_counter()  # the first update after a rebuild: its spare slot starts as a copy of the store
    serving.update(wh, partitions=rewrite_month(wh, FIRST_XUID, month))
    first_update = time.perf_counter() - t
    if smoke:  # in this process: a fresh interpreter per update is the full mode's (for its peak memory)
        t = time.perf_counter()
        rows = serving.update(wh, partitions=rewrite_month(wh, xuid, month)).rows_inserted
        seconds, mib = time.perf_counter() - t, 1.0
    else:
        seconds, mib, rows = _update_in_subprocess(wh, xuid, month)
    result.add(f"{label}: update after 1 player-month", seconds, "s", rebuild_s, rebuild_s / seconds,
               "< 1 s", seconds < 1)
    size = serving.published_slot(wh).stat().st_size / 2**20
    result.notes.append(f"{label}: full rebuild {rebuild_s:.1f} s ({rebuild.rows_inserted:,} rows, "
                        f"{rebuild.changed:,} partitions, store file {size:,.0f} MiB); the update re-loaded "
                        f"{rows:,} rows; the first update after the rebuild (its slot copied from the store) "
                        f"{first_update:.2f} s")
    return {"update_s": seconds, "update_mib": mib}


def run(smoke: bool = False, large_dir: Path | None = None):
    """The benchmark runner's entry point. ``large_dir``: a 2,000-player warehouse written earlier by
    :func:`clone_build` (+ :func:`write_sync_meta`), reused instead of cloned again (its serving store is still
    rebuilt and timed)."""
    from benchmarks._common import Result

    small, large = ((2, 2, 10), (6, 2, 5)) if smoke else ((50, 24, 125), (2000, 24, 25))
    result = Result(f"(l) Serving store: {small[0]} players × {small[1]} months × {small[2]} matches, and "
                    f"{large[0]:,} × {large[1]} × {large[2]}")
    with tempfile.TemporaryDirectory(prefix="halo-bench-serving-") as tmp:
        a, b = Path(tmp) / "small", Path(tmp) / "large"
        t = time.perf_counter()
        rows_a = build(a, *small)
        write_sync_meta(Warehouse(a), small[0])
        built_a = time.perf_counter() - t
        first = _measure(result, f"{small[0]} players", Warehouse(a), 5, (50, 20), smoke)
        t = time.perf_counter()
        if large_dir is not None:
            b, rows_b = large_dir, 0
        else:
            rows_b = clone_build(b, *large)
            write_sync_meta(Warehouse(b), large[0])
        built_b = time.perf_counter() - t
        second = _measure(result, f"{large[0]:,} players", Warehouse(b), 0 if not smoke else 1, (100, 100), smoke)
    if not smoke:
        ratio = second["update_mib"] / first["update_mib"]
        result.add("update step peak RSS, large vs small warehouse", second["update_mib"], "MiB",
                   first["update_mib"], ratio, "flat (≈ 1.0)", ratio < 1.2)
    result.notes.append(f"{rows_a:,} and {rows_b:,} match_participants rows (built in {built_a:.0f} s and "
                        f"{built_b:.0f} s); baselines: the views over Parquet (the catalog before the serving "
                        "store) in the same run — at 2,000 players only in --smoke (each view query opens 48,000 "
                        "files: ≈ 40× the 50-player figure), a full rebuild for the update, the small warehouse "
                        "for memory")
    return result


if __name__ == "__main__":
    reuse = next((Path(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--large-dir=")), None)
    run(smoke="--smoke" in sys.argv, large_dir=reuse).print()
