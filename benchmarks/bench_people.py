"""(h) People: rebuilding the ``players`` table (first / last seen of every human of the warehouse) after a sync.

A warehouse shaped like the real one: ``players × months`` partitions of ``match_facts`` and ``match_participants``,
8 humans per match — the owner, now and then another registered player or a friend, and strangers, most met
once (drawn from a large pool: a real warehouse holds about one player row per 1–2 participant rows).
:func:`halo_pipeline.services.people.players_table` — what the ``players`` asset runs, zero API calls — against
the same-run baseline, DuckDB's own ``GROUP BY`` over the same Parquet files (``read_parquet`` of every
partition, joined on match_id: the fastest standard way to the same figures).
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from benchmarks._common import Result, timer
from halo_pipeline.services.people import humans_seen, players_table
from halo_pipeline.storage.warehouse import Warehouse


def build(root: Path, players: int, months: int, matches: int, seed: int = 3) -> int:
    """Write the warehouse; returns the participant rows."""
    rng = random.Random(seed)
    wh = Warehouse(root)
    owners = [2533274900000000 + p for p in range(players)]
    pool = 2535000000000000
    rows = 0
    for p, owner in enumerate(owners):
        for m in range(months):
            month = f"{2023 + m // 12}-{m % 12 + 1:02d}-01"
            t0 = datetime.fromisoformat(month).replace(tzinfo=UTC)
            ids = [f"{p:04d}{m:03d}{i:05d}" for i in range(matches)]
            wh.write_partition("match_facts", owner, month, pl.DataFrame({
                "match_id": ids, "xuid": [owner] * matches,
                "start_time": [t0 + timedelta(minutes=20 * i) for i in range(matches)]}))
            humans = [[owner, rng.choice(owners) if rng.random() < 0.2 else pool + rng.randrange(3_000_000),
                       *(pool + rng.randrange(3_000_000) for _ in range(6))] for _ in ids]
            part = pl.DataFrame({"match_id": [i for i in ids for _ in range(8)],
                                 "xuid": [x for h in humans for x in h]})
            wh.write_partition("match_participants", owner, month, part)
            rows += part.height
    return rows


def _duckdb_seen(wh: Warehouse, out: Path) -> int:
    """The same (xuid, first seen, last seen, matches) figures computed by DuckDB over the files and written to
    ``out`` (Parquet, as the asset writes its table); returns the rows."""
    parts, facts = (str(wh.root / t / "**" / "data.parquet") for t in ("match_participants", "match_facts"))
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT p.xuid, min(f.start_time) AS first_seen, max(f.start_time) AS last_seen, count(*) AS "
            f"matches_seen FROM (SELECT DISTINCT match_id, xuid FROM read_parquet('{parts}') WHERE xuid IS NOT NULL) "
            f"p JOIN (SELECT DISTINCT match_id, start_time FROM read_parquet('{facts}')) f USING (match_id) "
            f"GROUP BY p.xuid) TO '{out}' (FORMAT parquet)")
        return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def run(smoke: bool = False) -> Result:
    players, months, matches = (2, 2, 10) if smoke else (50, 24, 125)
    result = Result(f"(h) players table: {players} players × {months} months × {matches} matches")
    with tempfile.TemporaryDirectory(prefix="halo-bench-people-") as tmp:
        t = time.perf_counter()
        rows = build(Path(tmp), players, months, matches)
        built = time.perf_counter() - t
        wh = Warehouse(Path(tmp))
        owners = [2533274900000000 + p for p in range(players)]
        base_times, ours = [], []
        for _ in range(1 if smoke else 3):
            with timer() as tb:
                expected = _duckdb_seen(wh, Path(tmp) / "duckdb.parquet")
            base_times.append(tb[0])
            with timer() as to:
                table = players_table(wh, owners, [])
                table.write_parquet(Path(tmp) / "players.parquet")
            ours.append(to[0])
        seen = humans_seen(wh)
        if seen.height != expected:
            raise RuntimeError(f"players table: {seen.height} humans seen, DuckDB finds {expected}")
        base, best = min(base_times), min(ours)
        result.add("DuckDB GROUP BY over the same files → Parquet", base, "s")
        result.add("players_table (the players asset)", best, "s", base, best / base)
        result.notes.append(f"{table.height:,} players, {rows:,} match_participants rows in "
                            f"{players * months:,} partitions (built in {built:.0f} s); best of "
                            f"{len(ours)} runs each")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
