"""The serving store: the warehouse's tables and ``mv_*`` roll-ups materialized in DuckDB, updated
incrementally, published as immutable snapshots.

The Parquet partitions stay the source of truth; this store is what people query (``halo-pipeline stats``,
exports, the UI, a notebook): one DuckDB file holding a table per registered table
(:data:`halo_pipeline.tables.TABLES`, with ``owner_xuid`` and, for player × month tables, ``partition_month``)
and a table per roll-up (:data:`halo_pipeline.storage.catalog.ROLLUPS`), so a query reads a handful of
DuckDB row groups instead of opening thousands of Parquet files.

**One writer, many readers, nobody blocked.** DuckDB (2.0.1, checked) locks a database file per process: a
read-only connection takes a shared lock, a read-write one an exclusive lock, and a conflicting open fails at
once (``IOException: Could not set lock on file``), it never waits. So readers and the writer never share a
file:

* ``warehouse/halo.serving/slot-<n>.duckdb`` are a few copies of the store ("slots"). ``warehouse/halo.duckdb``
  is a symbolic link to the *published* slot. Readers open ``halo.duckdb`` read-only (DuckDB follows the link
  and locks the slot's file) — any number of processes, for as long as they like.
* An update never writes the published slot: it takes a slot nobody reads (a read-write open that succeeds
  proves it), catches it up with the published slot (the partitions published since that slot was last
  current), applies the new partitions in ONE transaction (per table: delete by owner × month, insert the
  Parquet rows; the roll-ups re-aggregated for the touched players only), checkpoints it, then publishes it by
  replacing the link atomically (``os.replace`` of a new link). A reader sees the old snapshot or the new one,
  never a half-applied update; readers that opened the old snapshot keep it until they reconnect.
* When every other slot is held by readers (notebooks left open), the update copies the published file into a
  new slot (:data:`MAX_SLOTS` at most); slots nobody holds beyond :data:`KEEP_SLOTS` are deleted.
* Updates are serialized by a lock file (``halo.serving/writer.lock``, ``flock``; Dagster's pool ``serving``
  queues them before that). A writer killed mid-update leaves its slot unpublished: DuckDB's WAL drops the
  uncommitted transaction, and the next update catches that slot up like any other.

**What changed.** Each slot records per partition (table × owner × month) the fingerprint of the Parquet file
it loaded (``mtime_ns:size:inode`` locally, ``etag:size`` on object storage), its rows and the update
sequence number (``serving_partitions``), and the Dagster event cursor it has applied (``serving_state``).
An update is given the partitions that may have changed — from Dagster's materialization records after that
cursor (:mod:`halo_pipeline.defs.warehouse`), explicit partitions, or a scan of the files (``reconcile``) —
stats each file and reloads only those whose fingerprint differs. Its cost grows with the rows changed, not
with the warehouse; re-applying the same partitions is a no-op, so overlapping change lists are harmless.

Errors: :class:`ServingBusy` when the writer lock or every slot stayed held past the wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from halo_pipeline import tables
from halo_pipeline.months import Month
from halo_pipeline.pausepoint import pause_at
from halo_pipeline.storage.catalog import HIVE_TYPES, ROLLUPS, attach_filesystem
from halo_pipeline.storage.warehouse import ARCHIVE_DIR, PARQUET_NAME, Warehouse

#: Bumped when the store's layout changes: a slot of another version is rebuilt, never patched.
LAYOUT_VERSION = 1
#: Slots kept when nobody reads them (the published one + one to write the next update into).
KEEP_SLOTS = 2
#: At most this many slots (each a full copy of the store) when readers hold the others.
MAX_SLOTS = 8
#: How long a reader retries when the link moved under it (a slot re-used between its resolving the link and
#: its lock: two publications within that instant).
READ_WAIT_SECONDS = 1.0
#: How long an update waits for the writer lock, or for a free slot when all :data:`MAX_SLOTS` are held.
WRITE_WAIT_SECONDS = 120.0
#: The columns the store adds to a partitioned table: the partition's player and (player × month tables)
#: its month.
OWNER, MONTH = "owner_xuid", "partition_month"
_STATE, _PARTITIONS = "serving_state", "serving_partitions"
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


class ServingBusy(RuntimeError):
    """The writer lock, or every slot of the serving store, stayed held past :data:`WRITE_WAIT_SECONDS`."""


@dataclass(frozen=True, order=True)
class Partition:
    """One partition of a warehouse table: ``owner`` (xuid) and ``month`` (``YYYY-MM-01``) as its layout has
    them (``player`` layout: no month; ``reference`` and ``global``: neither, the table is one file). A
    ``player`` table's partition without an owner stands for every owner's file (an unpartitioned asset such as
    ``friends`` rewrote the table): :func:`update` examines each file and each partition the store holds."""

    table: str
    owner: int = 0
    month: str = ""

    @property
    def layout(self) -> str:
        return tables.TABLES[self.table].layout


@dataclass(frozen=True)
class Cursor:
    """How far a store has applied Dagster's materialization records: the instance's id and the largest event
    storage id applied."""

    instance_id: str
    event_id: int


@dataclass(frozen=True)
class Changes:
    """What a change feed reports since a store's cursor: ``partitions`` that may have changed (``None``:
    unknown, scan every file — e.g. another Dagster instance) and the cursor to record once applied."""

    partitions: list[Partition] | None
    cursor: Cursor | None


#: A change feed: given the published store's cursor (``None`` when it has none), what changed since.
Feed = Callable[[Cursor | None], Changes]


@dataclass
class UpdateReport:
    """What an update did. ``mode``: rebuild | incremental | reconcile | noop; ``changed``: partitions reloaded
    or removed; ``caught_up``: partitions copied from the previously published slot; ``seconds``: wall time."""

    mode: str
    seq: int = 0
    slot: str = ""
    changed: int = 0
    rows_deleted: int = 0
    rows_inserted: int = 0
    caught_up: int = 0
    players_rolled_up: int = 0
    seconds: float = 0.0
    cursor: Cursor | None = None
    touched: list[Partition] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------- paths


def serving_dir(wh: Warehouse) -> Path:
    """``<catalog>.serving``: the slots and the writer lock, beside the catalog link (always a local folder)."""
    return wh.catalog_path.with_name(wh.catalog_path.stem + ".serving")


def published_slot(wh: Warehouse) -> Path | None:
    """The slot file ``halo.duckdb`` points to, or ``None`` (no store yet, or a pre-serving catalog file)."""
    link = wh.catalog_path
    if not link.is_symlink():
        return None
    target = (link.parent / os.readlink(link)).resolve()
    return target if target.exists() else None


def _slots(wh: Warehouse) -> list[Path]:
    folder = serving_dir(wh)
    return sorted(folder.glob("slot-*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if folder.exists() else []


# ------------------------------------------------------------------------------------------------- readers


def connect(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot of the serving store (what ``halo.duckdb`` points to).

    Hold it as long as you like: updates write other slots and never wait for you; reconnect to see newer
    data. Retries for up to :data:`READ_WAIT_SECONDS` in the one case a fresh open can meet a lock (the link
    moved twice while it opened).

    Raises:
        FileNotFoundError: no store yet (run ``halo-pipeline serve`` or a sync).
        duckdb.IOException: still locked after the wait (a process opened the slot read-write by hand).
    """
    deadline = time.monotonic() + READ_WAIT_SECONDS
    while True:
        if not wh.catalog_path.exists():
            raise FileNotFoundError(f"no serving store at {wh.catalog_path}: run `halo-pipeline serve`")
        try:
            return attach_filesystem(duckdb.connect(str(wh.catalog_path), read_only=True), wh)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def state(wh: Warehouse) -> dict | None:
    """The published store's ``serving_state`` row as a dict (seq, base_seq, instance_id, event_cursor,
    updated_at, layout_version), or ``None`` when there is no store."""
    if published_slot(wh) is None:
        return None
    with connect(wh) as con:
        return _read_state(con)


def _read_state(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict | None:
    try:
        row = con.execute(f'SELECT * FROM "{schema}".{_STATE}').fetchone()
    except duckdb.CatalogException:
        return None
    if row is None:
        return None
    names = [d[0] for d in con.description]
    return dict(zip(names, row, strict=True))


def _cursor(st: dict | None) -> Cursor | None:
    if not st or st.get("instance_id") is None or st.get("event_cursor") is None:
        return None
    return Cursor(st["instance_id"], int(st["event_cursor"]))


# -------------------------------------------------------------------------------------------- fingerprints


def _fingerprint(wh: Warehouse, path: Path) -> str | None:
    """A token that changes whenever the file is replaced, or ``None`` when it does not exist. Locally
    ``mtime_ns:size:inode`` (a rewrite is a rename of a new file: new inode and mtime); on object storage
    ``etag:size``."""
    if wh.remote:
        try:
            info = path.fs.info(path.path)
        except FileNotFoundError:
            return None
        return f"{info.get('ETag') or info.get('LastModified') or info.get('mtime')}:{info.get('size')}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _partition_file(wh: Warehouse, p: Partition) -> Path:
    """The live file of ``p`` (or its archived copy when only that exists)."""
    if p.layout == "reference":
        return wh.reference_path(p.table)
    if p.layout == "global":
        return wh.global_path(p.table)
    if p.layout == "player":
        return wh.table_dir(p.table) / f"player={p.owner}" / PARQUET_NAME
    live = wh.partition_path(p.table, p.owner, p.month)
    if wh.remote or live.exists():
        return live
    archived = wh.root / ARCHIVE_DIR / live.relative_to(wh.root)
    return archived if archived.exists() else live


def _located(wh: Warehouse, p: Partition) -> tuple[Path, str | None]:
    path = _partition_file(wh, p)
    return path, _fingerprint(wh, path)


def _partition_of_path(table: str, path: Path) -> Partition:
    """The partition of a file from its hive folders (``player=…[/year=…/month=…]``)."""
    parts = dict(x.split("=", 1) for x in path.parts if "=" in x)
    if "month" in parts:
        return Partition(table, int(parts["player"]), Month.from_hive(parts["year"], parts["month"]))
    return Partition(table, int(parts["player"]))


def scan(wh: Warehouse, players: Iterable[int] | None = None) -> dict[Partition, tuple[Path, str]]:
    """Every partition file of the warehouse (live wins over archived; of ``players`` only when given) with
    its fingerprint. Cost: one directory listing per folder (``os.scandir``; on object storage one recursive
    listing per table)."""
    only = None if players is None else {int(x) for x in players}
    out: dict[Partition, tuple[Path, str]] = {}
    for spec in tables.TABLES.values():
        if spec.layout in ("reference", "global"):
            if only is None:
                path = _partition_file(wh, Partition(spec.name))
                fp = _fingerprint(wh, path)
                if fp is not None:
                    out[Partition(spec.name)] = (path, fp)
            continue
        for base in (wh.root / ARCHIVE_DIR / spec.name, wh.table_dir(spec.name)):  # live last: it wins
            for path, fp in _list_files(wh, base, only):
                out[_partition_of_path(spec.name, path)] = (path, fp)
    return out


def _list_files(wh: Warehouse, base: Path, players: set[int] | None) -> Iterator[tuple[Path, str]]:
    if wh.remote:
        try:
            found = base.fs.find(base.path, detail=True)
        except FileNotFoundError:
            return
        for key, info in found.items():
            if key.endswith("/" + PARQUET_NAME):
                path = type(base)(f"{base.protocol}://{key}", **base.storage_options)
                if players is None or _partition_of_path("", path).owner in players:
                    yield path, f"{info.get('ETag') or info.get('LastModified')}:{info.get('size')}"
        return
    if not base.is_dir():
        return
    stack = [base]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if folder == base and players is not None and entry.name.startswith("player=") \
                            and int(entry.name[7:]) not in players:
                        continue
                    stack.append(Path(entry.path))
                elif entry.name == PARQUET_NAME:
                    st = entry.stat()
                    yield Path(entry.path), f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


# ----------------------------------------------------------------------------------------------- SQL bits


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source(layout: str) -> str:
    """The ``SELECT`` list turning a ``read_parquet($files, …)`` of ``layout`` into the store's columns."""
    if layout == "player_month":
        return (f"SELECT * EXCLUDE (player, year, month), player AS {OWNER}, make_date(year, month, 1) AS {MONTH} "
                "FROM read_parquet($files, hive_partitioning = true, union_by_name = true, "
                f"hive_types = {HIVE_TYPES[layout]})")
    if layout == "player":
        return (f"SELECT * EXCLUDE (player), player AS {OWNER} FROM read_parquet($files, hive_partitioning = true, "
                f"union_by_name = true, hive_types = {HIVE_TYPES[layout]})")
    return "SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = false)"


def _extra_columns(layout: str) -> dict[str, str]:
    return {"player_month": {OWNER: "BIGINT", MONTH: "DATE"}, "player": {OWNER: "BIGINT"}}.get(layout, {})


def _columns(con: duckdb.DuckDBPyConnection, table: str, schema: str = "main") -> dict[str, str]:
    rows = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database()"
                       " AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, table]).fetchall() \
        if schema == "main" else con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
            "ORDER BY column_index", [schema, table]).fetchall()
    return dict(rows)


def _declared_columns(con: duckdb.DuckDBPyConnection, spec: tables.Table) -> dict[str, str]:
    """The DuckDB types of ``spec``'s declared columns, then the partition columns of its layout."""
    empty = pl.DataFrame(schema=dict(spec.schema))  # noqa: F841 - scanned by DuckDB by name
    declared = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM empty").fetchall()}
    return declared | _extra_columns(spec.layout)


def _create_table(con: duckdb.DuckDBPyConnection, spec: tables.Table) -> None:
    """The empty store table of ``spec``: its declared columns + the partition columns."""
    columns = ", ".join(f"{_q(c)} {t}" for c, t in _declared_columns(con, spec).items())
    con.execute(f"CREATE TABLE {_q(spec.name)} ({columns})")


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the store tables of registered tables this slot does not have yet (a table added to
    :data:`halo_pipeline.tables.TABLES` since the slot was built)."""
    have = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    for spec in tables.TABLES.values():
        if spec.name not in have:
            _create_table(con, spec)


def _ensure_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create, from every row, each roll-up this slot lacks or holds under another definition (its SQL is
    recorded in ``serving_rollups``): adding an entry to :data:`ROLLUPS` needs no rebuild."""
    built = dict(con.execute("SELECT name, sql FROM serving_rollups").fetchall())
    for rollup in ROLLUPS.values():
        if built.get(rollup.name) != rollup.sql:
            con.execute(f"CREATE OR REPLACE TABLE {_q(rollup.name)} AS {rollup.sql}")
            con.execute("INSERT OR REPLACE INTO serving_rollups VALUES (?, ?)", [rollup.name, rollup.sql])


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, wanted: dict[str, str]) -> None:
    have = _columns(con, table)
    for column, sql_type in wanted.items():
        if column not in have:
            con.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(column)} {sql_type}")


def _file_columns(con: duckdb.DuckDBPyConnection, layout: str, files: list[str]) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE {_source(layout)}", {"files": files}).fetchall()
    return {r[0]: r[1] for r in rows}


def _create_meta(con: duckdb.DuckDBPyConnection) -> None:
    # No PRIMARY KEY: DuckDB loads a whole ART index into memory on first use — memory that would grow with the
    # warehouse; rows are replaced by owner (pruned by min/max) instead.
    con.execute(f"""CREATE TABLE IF NOT EXISTS {_PARTITIONS} (table_name VARCHAR NOT NULL, owner BIGINT NOT NULL,
        month VARCHAR NOT NULL, fingerprint VARCHAR, rows BIGINT NOT NULL, seq BIGINT NOT NULL)""")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {_STATE} (seq BIGINT, base_seq BIGINT, instance_id VARCHAR,
        event_cursor BIGINT, updated_at TIMESTAMPTZ, layout_version INTEGER)""")
    con.execute("CREATE TABLE IF NOT EXISTS serving_rollups (name VARCHAR PRIMARY KEY, sql VARCHAR)")


def _write_state(con: duckdb.DuckDBPyConnection, seq: int, cursor: Cursor | None) -> None:
    con.execute(f"DELETE FROM {_STATE}")
    con.execute(f"INSERT INTO {_STATE} VALUES (?, ?, ?, ?, ?, ?)", [
        seq, seq - 1, cursor.instance_id if cursor else None, cursor.event_id if cursor else None,
        datetime.now(UTC), LAYOUT_VERSION])


def _partition_filter(con: duckdb.DuckDBPyConnection, layout: str, parts: list[Partition]) -> str:
    """A ``WHERE`` clause selecting the rows of ``parts`` (one table) in a store table: the owners as a literal
    ``IN`` list (DuckDB prunes row groups by their min/max), refined to the exact owner × month pairs (xuids are
    ints and months validated ``YYYY-MM-01`` keys: safe as literals)."""
    if layout in ("reference", "global"):
        return "true"
    owners = ", ".join(str(o) for o in sorted({int(p.owner) for p in parts}))
    if layout == "player":
        return f"{OWNER} IN ({owners})"
    pairs = ", ".join(f"({int(p.owner)}, DATE '{Month(p.month)}')" for p in sorted(set(parts)))
    return f"{OWNER} IN ({owners}) AND ({OWNER}, {MONTH}) IN (SELECT * FROM (VALUES {pairs}))"


def _delete(con: duckdb.DuckDBPyConnection, spec: tables.Table, parts: list[Partition]) -> int:
    where = _partition_filter(con, spec.layout, parts)
    return con.execute(f"DELETE FROM {_q(spec.name)} WHERE {where}").fetchone()[0]


def _insert_files(con: duckdb.DuckDBPyConnection, spec: tables.Table, files: list[str]) -> int:
    if not files:
        return 0
    _add_missing_columns(con, spec.name, _file_columns(con, spec.layout, files))
    return con.execute(f"INSERT INTO {_q(spec.name)} BY NAME {_source(spec.layout)}", {"files": files}).fetchone()[0]


def _upsert_partitions(con: duckdb.DuckDBPyConnection, rows: list[tuple], replace: bool = True) -> None:
    """Record ``rows`` (table, owner, month, fingerprint, rows, seq) in ``serving_partitions``, replacing those
    partitions' rows (``replace=False``: the table is known not to hold them)."""
    if not rows:
        return
    if len(rows) <= 1000:  # an incremental update: a few rows, as literals (no frame to convert)
        if replace:
            owners = ", ".join(str(o) for o in sorted({int(r[1]) for r in rows}))
            keys = ", ".join(f"({_lit(t)}, {int(o)}, {_lit(m)})" for t, o, m, *_ in rows)
            con.execute(f"DELETE FROM {_PARTITIONS} WHERE owner IN ({owners}) AND (table_name, owner, month) IN "
                        f"(SELECT * FROM (VALUES {keys}))")
        con.executemany(f"INSERT INTO {_PARTITIONS} VALUES (?, ?, ?, ?, ?, ?)", rows)
        return
    frame = pl.DataFrame(rows, schema={"table_name": pl.Utf8, "owner": pl.Int64, "month": pl.Utf8,  # noqa: F841
                                       "fingerprint": pl.Utf8, "rows": pl.Int64, "seq": pl.Int64}, orient="row")
    if replace:
        con.execute(f"DELETE FROM {_PARTITIONS} WHERE (table_name, owner, month) IN "
                    "(SELECT table_name, owner, month FROM frame)")
    con.execute(f"INSERT INTO {_PARTITIONS} SELECT * FROM frame")


def _partition_rows(con: duckdb.DuckDBPyConnection, spec: tables.Table, parts: list[Partition] | None = None
                    ) -> dict[Partition, int]:
    """Rows per partition now in the store table (of ``parts`` only, when given)."""
    if spec.layout in ("reference", "global"):
        return {Partition(spec.name): con.execute(f"SELECT count(*) FROM {_q(spec.name)}").fetchone()[0]}
    where = "true" if parts is None else _partition_filter(con, spec.layout, parts)
    keys = f"{OWNER}, strftime({MONTH}, '%Y-%m-%d')" if spec.layout == "player_month" else f"{OWNER}, ''"
    return {Partition(spec.name, o, m): n for o, m, n in con.execute(
        f"SELECT {keys}, count(*) FROM {_q(spec.name)} WHERE {where} GROUP BY ALL").fetchall()}


# ------------------------------------------------------------------------------------------------ roll-ups


def _refresh_rollups(con: duckdb.DuckDBPyConnection, changed: Iterable[Partition]) -> int:
    """Re-aggregate each roll-up for the players whose source partitions changed (the whole roll-up when a
    reference or global table it reads changed); returns the number of players re-aggregated."""
    changed = list(changed)
    players: set[int] = set()
    for rollup in ROLLUPS.values():
        sources = set(rollup.sources)
        hits = [p for p in changed if p.table in sources]
        if not hits:
            continue
        if any(p.layout in ("reference", "global") for p in hits):
            con.execute(f"DELETE FROM {_q(rollup.name)}")
            con.execute(f"INSERT INTO {_q(rollup.name)} BY NAME {rollup.sql}")
            continue
        owners = sorted({p.owner for p in hits})
        players.update(owners)
        listed = ", ".join(map(str, owners))
        con.execute(f"DELETE FROM {_q(rollup.name)} WHERE xuid IN ({listed})")
        con.execute(f"INSERT INTO {_q(rollup.name)} BY NAME SELECT * FROM ({rollup.sql}) WHERE xuid IN ({listed})")
    return len(players)


# ------------------------------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _writer_lock(wh: Warehouse) -> Iterator[None]:
    """The store's single-writer lock (``flock`` on ``halo.serving/writer.lock``; released by the kernel when
    the process dies, so a killed writer never leaves it held)."""
    folder = serving_dir(wh)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + WRITE_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServingBusy(f"another update of {folder} held its lock for {WRITE_WAIT_SECONDS:.0f} s"
                                      ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_writable(path: Path) -> duckdb.DuckDBPyConnection | None:
    """A read-write connection to a slot, or ``None`` when a reader holds it (DuckDB's lock, or this
    process's own open connection to it)."""
    try:
        return duckdb.connect(str(path))
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        if "lock" in str(exc).lower() or "already" in str(exc).lower() or "configuration" in str(exc).lower():
            return None
        raise
    except duckdb.Error as exc:  # ResourceInUse: this process has the file open read-only
        if "in use" in str(exc).lower() or "already attached" in str(exc).lower():
            return None
        raise


def _usable(con: duckdb.DuckDBPyConnection) -> bool:
    st = _read_state(con)
    return st is not None and st.get("layout_version") == LAYOUT_VERSION


def _acquire_slot(wh: Warehouse, published: Path) -> tuple[Path, duckdb.DuckDBPyConnection]:
    """A slot other than the published one, open read-write: the most recently written free one; else a copy
    of the published file in a new slot."""
    deadline = time.monotonic() + WRITE_WAIT_SECONDS
    while True:
        slots = [s for s in _slots(wh) if s != published]
        for slot in slots:
            con = _open_writable(slot)
            if con is None:
                continue
            if _usable(con):
                return slot, con
            con.close()
            _remove_slot(slot)
        if len(slots) + 1 < MAX_SLOTS:
            slot = _new_slot_path(wh)
            tmp = slot.with_name(f".{slot.name}.{uuid.uuid4().hex}.tmp")
            shutil.copyfile(published, tmp)
            os.replace(tmp, slot)
            con = _open_writable(slot)
            if con is not None:
                return slot, con
        if time.monotonic() > deadline:
            raise ServingBusy(f"all {MAX_SLOTS} slots of {serving_dir(wh)} are held by readers; close some "
                              "connections (notebooks) to halo.duckdb")
        time.sleep(0.5)


def _new_slot_path(wh: Warehouse) -> Path:
    used = {p.name for p in serving_dir(wh).glob("slot-*.duckdb")}
    n = 0
    while f"slot-{n}.duckdb" in used:
        n += 1
    return serving_dir(wh) / f"slot-{n}.duckdb"


def _remove_slot(slot: Path) -> None:
    for path in (slot, slot.with_name(slot.name + ".wal")):
        path.unlink(missing_ok=True)


def _publish(wh: Warehouse, slot: Path) -> None:
    """Point ``halo.duckdb`` at ``slot`` atomically (a new link renamed over the old one)."""
    link = wh.catalog_path
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.tmp")
    os.symlink(os.path.relpath(slot, link.parent), tmp)
    os.replace(tmp, link)
    with contextlib.suppress(OSError):
        fd = os.open(link.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _collect_garbage(wh: Warehouse) -> None:
    """Delete slots beyond :data:`KEEP_SLOTS` that nobody holds (never the published one), and leftovers of
    killed rebuilds and copies."""
    published = published_slot(wh)
    folder = serving_dir(wh)
    for leftover in [*folder.glob(".building-*"), *folder.glob(".slot-*.tmp")]:  # we hold the writer lock
        leftover.unlink(missing_ok=True)
    spare = [s for s in _slots(wh) if s != published]
    for slot in spare[KEEP_SLOTS - 1:]:
        con = _open_writable(slot)
        if con is not None:
            con.close()
            _remove_slot(slot)


def update(wh: Warehouse, feed: Feed | None = None, partitions: Iterable[Partition] | None = None,
           players: Iterable[int] | None = None, rebuild: bool = False) -> UpdateReport:
    """Bring the serving store up to date with the Parquet partitions and publish it.

    Which partitions are examined: ``partitions`` when given; else what ``feed`` reports since the published
    cursor; else (or when the feed cannot tell) a scan of the files — a *reconcile*, which also removes the
    store's partitions whose file is gone (of ``players`` only when given). Examined partitions whose file
    fingerprint equals the store's are skipped. A missing store, a store of another layout version, or
    ``rebuild`` builds a new store from every file instead.

    Raises:
        ServingBusy: the writer lock or a free slot could not be had within :data:`WRITE_WAIT_SECONDS`.
    """
    started = time.perf_counter()
    with _writer_lock(wh), contextlib.ExitStack() as stack:
        published = published_slot(wh)
        reader = connect(wh) if published is not None else None  # the published snapshot, read once
        if reader is not None:
            stack.callback(reader.close)  # closed by _apply before it attaches that file; or here on an error
        current = _read_state(reader) if reader is not None else None
        rebuild = rebuild or current is None or current.get("layout_version") != LAYOUT_VERSION
        cursor = _cursor(current)
        if rebuild:
            if reader is not None:
                reader.close()
            if feed is not None:  # read the feed's position before listing the files
                cursor = feed(None).cursor
            report = _rebuild(wh, int((current or {}).get("seq") or 0) + 1, cursor)
        else:
            listed = None if partitions is None else list(partitions)
            if listed is None and feed is not None:
                changes = feed(cursor)
                listed, cursor = changes.partitions, changes.cursor or cursor
            if listed is not None:
                listed = _every_owner(wh, reader, listed)
                report = _apply(wh, published, reader, current, {p: _located(wh, p) for p in set(listed)}, cursor)
            else:
                scope = None if players is None else {int(x) for x in players}
                report = _apply(wh, published, reader, current, scan(wh, scope), cursor, reconcile=True, scope=scope)
        if report.mode != "noop":
            _collect_garbage(wh)
    report.seconds = time.perf_counter() - started
    return report


def _every_owner(wh: Warehouse, reader: duckdb.DuckDBPyConnection, listed: list[Partition]) -> list[Partition]:
    """``listed`` with each ownerless partition of a ``player`` table (the whole table) replaced by the
    partitions of its files and those the published store holds (a file gone: its rows are dropped)."""
    whole = {p.table for p in listed if p.layout == "player" and not p.owner}
    if not whole:
        return listed
    out = [p for p in listed if p.table not in whole]
    for table in sorted(whole):
        out += [_partition_of_path(table, path) for path, _ in _list_files(wh, wh.table_dir(table), None)]
        out += [Partition(t, o, m) for t, o, m in reader.execute(
            f"SELECT table_name, owner, month FROM {_PARTITIONS} WHERE table_name = ?", [table]).fetchall()]
    return out


def _rebuild(wh: Warehouse, seq: int, cursor: Cursor | None) -> UpdateReport:
    """Build a new slot from every Parquet file (files are listed and fingerprinted before they are read, so
    a file replaced meanwhile is reloaded by the next update) and publish it."""
    folder = serving_dir(wh)
    building = folder / f".building-{uuid.uuid4().hex}.duckdb"
    files = scan(wh)
    by_table: dict[str, list[tuple[Partition, Path, str]]] = defaultdict(list)
    for p, (path, fp) in files.items():
        by_table[p.table].append((p, path, fp))
    report = UpdateReport("rebuild", seq=seq, cursor=cursor)
    with attach_filesystem(duckdb.connect(str(building)), wh) as con:
        _create_meta(con)
        meta: list[tuple] = []
        for spec in tables.TABLES.values():
            found = sorted(by_table.get(spec.name, []))
            if found:  # the files' own columns (one pass over their footers), then any declared one missing
                con.execute(f"CREATE TABLE {_q(spec.name)} AS {_source(spec.layout)}",
                            {"files": [str(path) for _, path, _ in found]})
                _add_missing_columns(con, spec.name, _declared_columns(con, spec))
            else:
                _create_table(con, spec)
            counts = _partition_rows(con, spec)
            report.rows_inserted += sum(counts.values())
            meta += [(p.table, p.owner, p.month, fp, counts.get(p, 0), seq) for p, _, fp in found]
        _upsert_partitions(con, meta, replace=False)
        _ensure_rollups(con)
        _write_state(con, seq, cursor)
        pause_at("catalog_write", str(building))  # test hook: a new store built, lock held, not published
        con.execute("CHECKPOINT")
    slot = _new_slot_path(wh)
    os.replace(building, slot)
    _publish(wh, slot)  # older slots stay: the next update catches one up (the partitions whose file changed)
    report.slot, report.changed = slot.name, len(files)
    return report


def _apply(wh: Warehouse, published: Path, reader: duckdb.DuckDBPyConnection, current: dict,
           examined: dict[Partition, tuple[Path, str | None]], cursor: Cursor | None, reconcile: bool = False,
           scope: set[int] | None = None) -> UpdateReport:
    """Catch a free slot up with the published one, apply the examined partitions whose fingerprint changed
    (a ``reconcile`` also removes the store's partitions of the players in ``scope`` — all when ``None`` —
    that have no file any more), refresh the roll-ups of the touched players, publish. One transaction.
    ``reader``: a connection to the published snapshot, closed here (before the writer attaches that file)."""
    seq = int(current["seq"]) + 1
    with reader:  # what the published snapshot has, to skip unchanged partitions before writing
        known = _known(reader, examined, reconcile, scope)
    stale = {p for p, (_, fp) in examined.items() if known.get(p) != fp}
    if reconcile:
        stale |= {p for p, fp in known.items() if fp is not None and p not in examined}
    report = UpdateReport("reconcile" if reconcile else "incremental", seq=seq, cursor=cursor)
    if not stale and cursor == _cursor(current):
        report.mode, report.seq, report.slot = "noop", seq - 1, published.name
        return report
    slot, con = _acquire_slot(wh, published)
    try:
        attach_filesystem(con, wh)
        con.execute(f"ATTACH {_lit(str(published))} AS published (READ_ONLY)")
        con.execute("BEGIN TRANSACTION")
        _ensure_tables(con)
        caught = _catch_up(con)
        report.caught_up = len(caught)
        # What this slot now holds (after the catch-up): skip the partitions it already has.
        have = _known(con, {p: examined[p] for p in stale if p in examined})
        todo = {p for p in stale if p not in examined or have.get(p) != examined[p][1]}
        by_table: dict[str, list[Partition]] = defaultdict(list)
        for p in todo:
            by_table[p.table].append(p)
        meta = []
        for name, parts in by_table.items():
            spec = tables.TABLES[name]
            report.rows_deleted += _delete(con, spec, parts)
            present = [p for p in parts if p in examined and examined[p][1] is not None]
            report.rows_inserted += _insert_files(con, spec, [str(examined[p][0]) for p in present])
            counts = _partition_rows(con, spec, present) if present else {}
            meta += [(p.table, p.owner, p.month, examined[p][1] if p in examined else None, counts.get(p, 0), seq)
                     for p in parts]
        _upsert_partitions(con, meta)
        _ensure_rollups(con)
        report.players_rolled_up = _refresh_rollups(con, todo | caught)
        _write_state(con, seq, cursor)
        pause_at("catalog_write", str(slot))  # test hook: the update applied in its slot, lock held, not committed
        con.execute("COMMIT")
        con.execute("DETACH published")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    _publish(wh, slot)
    report.slot, report.changed, report.touched = slot.name, len(todo), sorted(todo)
    return report


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _known(con: duckdb.DuckDBPyConnection, examined: dict[Partition, object], reconcile: bool = False,
           scope: set[int] | None = None) -> dict[Partition, str | None]:
    """The store's fingerprints of the ``examined`` partitions; for a ``reconcile``, of every partition of the
    players in ``scope`` (all when ``None``)."""
    if not reconcile:
        if not examined:
            return {}
        owners = ", ".join(str(o) for o in sorted({int(p.owner) for p in examined}))
        rows = [r for r in con.execute(f"SELECT table_name, owner, month, fingerprint FROM {_PARTITIONS} "
                                       f"WHERE owner IN ({owners})").fetchall()
                if Partition(r[0], r[1], r[2]) in examined]
    elif scope is None:
        rows = con.execute(f"SELECT table_name, owner, month, fingerprint FROM {_PARTITIONS}").fetchall()
    else:
        listed = ", ".join(map(str, sorted(scope))) or "NULL"
        rows = con.execute(f"SELECT table_name, owner, month, fingerprint FROM {_PARTITIONS} "
                           f"WHERE owner IN ({listed})").fetchall()
    return {Partition(t, o, m): fp for t, o, m, fp in rows if t in tables.TABLES}


def _catch_up(con: duckdb.DuckDBPyConnection) -> set[Partition]:
    """Copy into this slot (``main``) the partitions the published slot (``published``) changed since this slot
    was last based on it (their ``seq`` > this slot's ``base_seq``) and whose fingerprint differs; returns
    them."""
    mine = _read_state(con)
    base = int(mine["base_seq"]) if mine and mine.get("base_seq") is not None else -1
    rows = con.execute(f"""SELECT p.table_name, p.owner, p.month, p.fingerprint, p.rows, p.seq
        FROM published.{_PARTITIONS} p LEFT JOIN {_PARTITIONS} m USING (table_name, owner, month)
        WHERE p.seq > ? AND m.fingerprint IS DISTINCT FROM p.fingerprint""", [base]).fetchall()
    by_table: dict[str, list[Partition]] = defaultdict(list)
    for t, o, m, *_ in rows:
        if t in tables.TABLES:
            by_table[t].append(Partition(t, o, m))
    for name, parts in by_table.items():
        spec = tables.TABLES[name]
        _add_missing_columns(con, name, _columns(con, name, "published"))
        _delete(con, spec, parts)
        where = _partition_filter(con, spec.layout, parts)
        con.execute(f"INSERT INTO {_q(name)} BY NAME SELECT * FROM published.{_q(name)} WHERE {where}")
    _upsert_partitions(con, [r for r in rows if r[0] in tables.TABLES])
    return {p for parts in by_table.values() for p in parts}


# ------------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class Mismatch:
    """A partition whose store rows differ from its Parquet file: ``what`` names the figure (rows, a column's
    sum, missing in store, not in warehouse), ``store`` and ``parquet`` its two values."""

    partition: Partition
    what: str
    store: object
    parquet: object


@dataclass
class Comparison:
    """The outcome of :func:`compare`: partitions ``compared`` (the store holds the very file that is on disk),
    ``mismatches`` among them, and ``pending`` partitions whose file is not the one the store loaded (written
    since the last update, or removed: the next update applies them)."""

    compared: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    pending: list[Partition] = field(default_factory=list)


def compare(wh: Warehouse, partitions: Iterable[Partition] | None = None) -> Comparison:
    """Compare the published store with the Parquet partitions: per partition its row count and the sum of
    every numeric column (floats to a relative 1e-9). ``partitions=None``: every partition of the warehouse
    and of the store. A partition is compared only when the store loaded the file that is on disk (same
    fingerprint before and after reading it); the others are ``pending``.

    Raises:
        FileNotFoundError: no store yet.
    """
    files = scan(wh) if partitions is None else {
        p: loc for p in set(partitions) if (loc := _located(wh, p))[1] is not None}
    out = Comparison()
    with connect(wh) as con:
        loaded = {Partition(t, o, m): fp for t, o, m, fp in con.execute(
            f"SELECT table_name, owner, month, fingerprint FROM {_PARTITIONS}").fetchall() if t in tables.TABLES}
        candidates = set(files) | {p for p, fp in loaded.items()
                                   if fp is not None and (partitions is None or p in set(partitions))}
        same = {p for p in candidates if p in files and loaded.get(p) == files[p][1]}
        out.pending = sorted(candidates - same)
        by_table: dict[str, list[Partition]] = defaultdict(list)
        for p in same:
            by_table[p.table].append(p)
        for name, parts in sorted(by_table.items()):
            out.mismatches += _compare_table(con, tables.TABLES[name], parts, files)
    moved = {p for p in same if _located(wh, p)[1] != files[p][1]}  # replaced while we read it
    out.pending = sorted(set(out.pending) | moved)
    out.mismatches = [m for m in out.mismatches if m.partition not in moved]
    out.compared = len(same - moved)
    return out


def _compare_table(con: duckdb.DuckDBPyConnection, spec: tables.Table, parts: list[Partition],
                   files: dict[Partition, tuple[Path, str]]) -> list[Mismatch]:
    name = spec.name
    columns = [c for c, t in _columns(con, name).items() if c not in (OWNER, MONTH) and t.split("(")[0] in _NUMERIC]
    keys = {"player_month": f"{OWNER}, strftime({MONTH}, '%Y-%m-%d')", "player": f"{OWNER}, ''"}.get(
        spec.layout, "0, ''")
    sums = "".join(f", sum({_q(c)}::DOUBLE)" for c in columns)
    in_store = {Partition(name, o, m): tuple(rest) for o, m, *rest in con.execute(
        f"SELECT {keys}, count(*){sums} FROM {_q(name)} WHERE {_partition_filter(con, spec.layout, parts)} "
        "GROUP BY ALL").fetchall()}
    paths = [str(files[p][0]) for p in parts]
    have = _file_columns(con, spec.layout, paths)
    file_sums = "".join(f", sum({_q(c)}::DOUBLE)" if c in have else ", NULL" for c in columns)
    in_files = {Partition(name, o, m): tuple(rest) for o, m, *rest in con.execute(
        f"SELECT {keys}, count(*){file_sums} FROM ({_source(spec.layout)}) GROUP BY ALL", {"files": paths}).fetchall()}
    empty = (0,) + (None,) * len(columns)
    out = []
    for p in sorted(parts):
        a, b = in_store.get(p, empty), in_files.get(p, empty)
        out += [Mismatch(p, what if what == "rows" else f"sum({what})", x, y)
                for what, x, y in zip(["rows", *columns], a, b, strict=True) if not _same(x, y)]
    return out


def _same(x, y) -> bool:
    if x is None or y is None:
        return x is y or (x in (None, 0) and y in (None, 0))
    return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-6)
