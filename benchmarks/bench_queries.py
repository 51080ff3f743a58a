"""Query benchmark of the catalog's mv views over a synthetic warehouse (not a test: it prints figures).

    .venv/bin/python benchmarks/bench_queries.py [--players 50] [--months 24] [--matches 125] [--out DIR]

Writes, straight with polars (no API, no Dagster), a hive-partitioned warehouse of ``players × months``
partitions: ``match_participants`` (8 per match: ≥ 1 M rows with the defaults), ``match_facts`` and the
materialized stats computed from them by :mod:`halo_pipeline.transforms.analytics`; then builds the DuckDB
catalog and times each ``mv_*`` view (median of 5 runs, cold first run shown apart).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from halo_pipeline.storage.catalog import refresh_catalog
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import analytics as ta

MAPS = ["Live Fire", "Recharge", "Streets", "Aquarius", "Bazaar", "Empyrean", "Solitude", "Catalyst"]
CATEGORIES = ["Ranked", "Arena", "BTB", "Other"]


def build(root: Path, players: int, months: int, matches: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    wh = Warehouse(root)
    participants_rows = 0
    for p in range(players):
        xuid = 2533274900000000 + p
        for m in range(months):
            month = f"{2023 + m // 12}-{m % 12 + 1:02d}-01"
            t0 = datetime.fromisoformat(month).replace(tzinfo=UTC)
            n = matches
            ids = [f"{p:04d}{m:03d}{i:05d}" for i in range(n)]
            kills = [rng.randint(0, 30) for _ in range(n)]
            deaths = [rng.randint(0, 25) for _ in range(n)]
            facts = pl.DataFrame({
                "match_id": ids, "xuid": [xuid] * n,
                "start_time": [t0 + timedelta(minutes=20 * i) for i in range(n)],
                "end_time": [t0 + timedelta(minutes=20 * i + 12) for i in range(n)],
                "duration_seconds": [720.0] * n, "time_played_seconds": [720.0] * n,
                "outcome": [rng.choice([2, 3, 3, 2, 1]) for _ in range(n)],
                "kills": kills, "deaths": deaths, "assists": [rng.randint(0, 15) for _ in range(n)],
                "shots_fired": [rng.randint(50, 400) for _ in range(n)],
                "map_id": [rng.choice(MAPS) for _ in range(n)],
            }).with_columns(shots_hit=(pl.col("shots_fired") * 0.45).cast(pl.Int32),
                            map_name=pl.col("map_id"),
                            mode_category=pl.Series([rng.choice(CATEGORIES) for _ in range(n)]))
            wh.write_partition("match_facts", xuid, month, facts.drop("map_name", "mode_category"))
            part = pl.DataFrame({"match_id": [i for i in ids for _ in range(8)],
                                 "xuid": [xuid if j == 0 else 2533275000000000 + j for _ in ids for j in range(8)],
                                 "kills": [rng.randint(0, 30) for _ in range(8 * n)]})
            wh.write_partition("match_participants", xuid, month, part)
            participants_rows += part.height
            scores = pl.DataFrame({"match_id": ids, "performance_score": [rng.uniform(0, 100) for _ in range(n)]})
            wh.write_partition("map_stats", xuid, month, ta.map_stats(facts, scores, month))
            wh.write_partition("mode_category_stats", xuid, month, ta.mode_category_stats(facts, scores, month))
            wh.write_partition("global_stats", xuid, month, ta.global_stats(facts, scores, month))
            wh.write_partition("session_stats", xuid, month,
                               ta.session_stats(ta.sessions(facts), facts, scores, month))
    return participants_rows


def time_queries(root: Path) -> tuple[dict[str, tuple[int, float, float]], dict[str, int]]:
    """Build the catalog over ``root`` and time each query: ``{name: (rows, cold ms, median ms of 5)}``."""
    wh = Warehouse(root)
    out = {}
    with duckdb.connect(str(wh.catalog_path)) as con:
        counts = refresh_catalog(con, wh)
        queries = {name: f"SELECT * FROM {name}" for name in
                   ("mv_map_stats", "mv_mode_category_stats", "mv_session_stats", "mv_global_stats")}
        queries["mv_map_stats, one player"] = "SELECT * FROM mv_map_stats WHERE xuid = 2533274900000007"
        queries["match list of one player"] = ("SELECT match_id, start_time, kills, deaths FROM match_facts "
                                               "WHERE xuid = 2533274900000001 ORDER BY start_time DESC")
        queries["match_participants count by match (raw)"] = \
            "SELECT count(*) FROM (SELECT match_id, sum(kills) FROM match_participants GROUP BY match_id)"
        for name, sql in queries.items():
            times = []
            for _ in range(6):
                t = time.perf_counter()
                rows = con.execute(sql).fetchall()
                times.append((time.perf_counter() - t) * 1000)
            out[name] = (len(rows), times[0], statistics.median(times[1:]))
    return out, counts


def run(smoke: bool = False):
    """The benchmark runner's entry point: figures with the raw participants scan as same-run baseline."""
    from benchmarks._common import Result

    players, months, matches = (2, 2, 10) if smoke else (50, 24, 125)
    result = Result(f"(f) Queries: {players} players × {months} months × {matches} matches")
    with tempfile.TemporaryDirectory(prefix="halo-bench-queries-") as tmp:
        t = time.perf_counter()
        rows = build(Path(tmp), players, months, matches)
        built = time.perf_counter() - t
        figures, counts = time_queries(Path(tmp))
    base = figures["match_participants count by match (raw)"][2]
    for name, (n, _cold, median) in figures.items():
        result.add(f"{name} ({n} rows)", median, "ms median", base, median / base)
    result.notes.append(f"{rows:,} match_participants rows, {counts['match_facts']:,} match_facts rows, "
                        f"{players * months:,} partitions per table (built in {built:.0f} s); "
                        "baseline: the raw GROUP BY over match_participants")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--matches", type=int, default=125, help="per player × month")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="halo-bench-"))
    t = time.perf_counter()
    rows = build(root, args.players, args.months, args.matches)
    print(f"warehouse: {root} — {args.players} players × {args.months} months, {rows:,} participant rows, "
          f"{args.players * args.months * args.matches:,} matches (built in {time.perf_counter() - t:.1f} s)")
    figures, counts = time_queries(root)
    print(f"{'query':<42}{'rows':>9}{'cold ms':>10}{'median ms':>11}")
    for name, (n, cold, median) in figures.items():
        print(f"{name:<42}{n:>9}{cold:>10.1f}{median:>11.1f}")
    print(f"rows: match_participants {counts['match_participants']:,}, match_facts {counts['match_facts']:,}")


if __name__ == "__main__":
    main()
