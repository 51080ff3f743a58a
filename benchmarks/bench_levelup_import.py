"""(j) LevelUp import: a long LevelUp history landed as legacy documents, and its rows derived.

A LevelUp player store of ``matches`` matches is built from the real one of ``../shared/legacy`` (its 8 matches'
rows repeated under new match ids, one month of 8 matches after another: ≈ 80 highlight events, 6 participants and
3 awards per match, as there) — skipped, with the reason, without ``../shared``. Figures:

* **landing** (``import_player``: read the store month by month, one sorted-key JSON document per match, gzip,
  atomic write) in matches/s, against DuckDB copying the same tables to Parquet files (``COPY … TO``: reading the
  store and writing it out, the fastest standard way to move it);
* **deriving** (``legacy_frames`` of every document: the six tables' frames) in matches/s, against parsing the
  same documents (``orjson.loads`` of the gunzipped bytes) — what any reader of them pays;
* a second import (nothing changes): its time.

    .venv/bin/python -m benchmarks.bench_levelup_import [--smoke]
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import orjson

from benchmarks._common import SHARED, Result, require_success
from halo_pipeline.services.levelup import find_players, import_player
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.levelup import legacy_frames

STORE = SHARED / "legacy" / "levelup" / "players" / "aCurtis X89" / "stats.duckdb"
TABLES = ("match_stats", "match_participants", "medals_earned", "personal_score_awards", "highlight_events",
          "player_match_stats", "sync_meta")


def build_store(folder: Path, matches: int) -> Path:
    """A player store under ``folder/players/Bench Player/stats.duckdb`` with ``matches`` matches (see the module
    docstring); returns ``folder``."""
    path = folder / "players" / "Bench Player" / "stats.duckdb"
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute(f"ATTACH '{STORE}' AS src (READ_ONLY)")
        for table in TABLES:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table} LIMIT 0")
        con.execute("INSERT INTO sync_meta SELECT * FROM src.sync_meta")
        copies = -(-matches // 8)
        con.execute("CREATE TEMP TABLE copies AS SELECT range AS n FROM range(?)", [copies])
        ids = "md5(m.match_id || c.n::VARCHAR)"
        ids = f"substr({ids}, 1, 8) || '-' || substr({ids}, 9, 4) || '-4' || substr({ids}, 14, 3) || '-8' || " \
              f"substr({ids}, 18, 3) || '-' || substr({ids}, 21, 12)"
        shift = "INTERVAL (c.n * 31) DAY"
        con.execute(f"CREATE TEMP TABLE ids AS SELECT m.match_id AS old, c.n, {ids} AS new FROM src.match_stats m, "
                    f"copies c")
        con.execute(f"INSERT INTO match_stats SELECT m.* REPLACE (i.new AS match_id, m.start_time + {shift} AS "
                    f"start_time, m.end_time + {shift} AS end_time) FROM src.match_stats m JOIN ids i "
                    "ON i.old = m.match_id JOIN copies c ON c.n = i.n")
        for table in ("match_participants", "medals_earned", "personal_score_awards", "highlight_events"):
            con.execute(f"INSERT INTO {table} SELECT t.* REPLACE (i.new AS match_id) FROM src.{table} t "
                        "JOIN ids i ON i.old = t.match_id")
        con.execute(f"DELETE FROM match_stats WHERE match_id NOT IN (SELECT match_id FROM match_stats "
                    f"ORDER BY start_time LIMIT {matches})")
    return folder


def run(smoke: bool = False) -> Result:
    result = Result("(j) LevelUp import")
    if not STORE.exists():
        result.skipped = f"no LevelUp store at {STORE} (the ../shared folder)"
        return result
    matches = 80 if smoke else 4000
    with tempfile.TemporaryDirectory() as tmp:
        root = build_store(Path(tmp) / "levelup", matches)
        [player] = find_players(root)
        require_success(len(player.matches) == matches, "building the store")
        wh = Warehouse(Path(tmp) / "data")

        start = time.perf_counter()
        first = import_player(wh, player)
        landing = time.perf_counter() - start
        require_success(first.written == matches, "the import")
        store = root / "players" / "Bench Player" / "stats.duckdb"
        start = time.perf_counter()
        with duckdb.connect(str(store), read_only=True) as con:
            for table in TABLES[:-1]:
                con.execute(f"COPY {table} TO '{Path(tmp) / table}.parquet' (FORMAT parquet)")
        copy = time.perf_counter() - start

        files = sorted((wh.data_dir / "raw" / "levelup").rglob("*.json.gz"))
        start = time.perf_counter()
        docs = [orjson.loads(gzip.decompress(p.read_bytes())) for p in files]
        parse = time.perf_counter() - start
        start = time.perf_counter()
        frames = legacy_frames(docs)
        derive = time.perf_counter() - start + parse
        require_success(frames["match_facts"].height == matches, "deriving the documents")

        start = time.perf_counter()
        again = import_player(wh, player)
        second = time.perf_counter() - start
        require_success(again.written == 0, "the second import")

    result.add("landing documents", matches / landing, "matches/s", matches / copy, (matches / landing) /
               (matches / copy))
    result.add("deriving their rows (parse + frames)", matches / derive, "matches/s", matches / parse,
               parse / derive)
    result.add("second import (nothing changes)", second, "s")
    result.notes.append(f"{matches} matches, {frames['highlight_events'].height} highlight events; baselines: "
                        "DuckDB COPY of the same tables to Parquet, orjson.loads of the documents")
    return result


if __name__ == "__main__":
    run(smoke="--smoke" in sys.argv).print()
