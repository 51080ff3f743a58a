"""The warehouse: one Parquet file per table × player × month in a hive layout.

``<data_dir>/warehouse/<table>/player=<xuid>/year=<yyyy>/month=<mm>/data.parquet`` for partitioned tables
and ``<data_dir>/warehouse/reference/<table>.parquet`` for reference tables. One writer per partition file;
every write is atomic, and re-writing a partition replaces it whole (never a duplicate row).

``data_dir`` is a local folder or an object-storage ``UPath`` (``s3://bucket/prefix``, see
:func:`halo_pipeline.storage.files.data_root`): the layout is the same, every path below is of the same kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from halo_pipeline.months import Month
from halo_pipeline.storage.files import data_root, is_remote, read_parquet, write_parquet_atomic
from halo_pipeline.storage.landing import RawLanding
from halo_pipeline.storage.legacy import LEGACY, LegacyLanding

PARQUET_NAME = "data.parquet"
REFERENCE = "reference"
#: Where the DuckDB catalog lives when the warehouse is on object storage (DuckDB writes a database file
#: only on a local disk): this variable, else ``halo.duckdb`` in the current folder.
CATALOG_ENV = "HALO_CATALOG_PATH"
#: The data location when neither a resource's ``data_dir`` nor ``$HALO_DATA_DIR`` names one.
DATA_DIR_ENV, DEFAULT_DATA_DIR = "HALO_DATA_DIR", "data"
#: The reference JSON files: ``$HALO_REFERENCE_DIR``, else those shipped in the package (``reference_data/``: the
#: names of the emulator's synthetic world), whatever the working directory.
REFERENCE_DIR_ENV = "HALO_REFERENCE_DIR"
DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference_data"
#: The archive area (``halo-pipeline archive``): ``warehouse/archive/<table>/player=…/year=…/month=…``.
ARCHIVE_DIR = "archive"


def data_location(explicit: str = "") -> Path:
    """The data location in force: ``explicit``, else ``$HALO_DATA_DIR``, else ``data`` (a local absolute
    path, or a ``UPath`` for ``s3://…``). Read at call time."""
    return data_root(explicit or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def reference_location(explicit: str = "") -> Path:
    """The reference folder in force: ``explicit``, else ``$HALO_REFERENCE_DIR``, else the default. Read at call
    time."""
    return Path(explicit or os.environ.get(REFERENCE_DIR_ENV) or DEFAULT_REFERENCE_DIR).resolve()


@dataclass(frozen=True)
class Warehouse:
    """Paths and reads/writes of the warehouse under ``data_dir`` (a local folder or an object-storage UPath)."""

    data_dir: Path

    @property
    def remote(self) -> bool:
        """Whether the warehouse is on object storage."""
        return is_remote(self.data_dir)

    @property
    def root(self) -> Path:
        """``<data_dir>/warehouse``: Parquet tables and the DuckDB catalog."""
        return self.data_dir / "warehouse"

    @property
    def catalog_path(self) -> Path:
        """The DuckDB catalog file: ``<data_dir>/warehouse/halo.duckdb``; with the warehouse on object
        storage, a local file: ``$HALO_CATALOG_PATH``, else ``./halo.duckdb`` (its views read ``s3://…``)."""
        if self.remote:
            return Path(os.environ.get(CATALOG_ENV) or "halo.duckdb").resolve()
        return self.root / "halo.duckdb"

    @property
    def landing(self) -> RawLanding:
        """Raw landing of API bodies under ``<data_dir>/raw``."""
        return RawLanding(self.data_dir / "raw")

    @property
    def legacy(self) -> LegacyLanding:
        """Rows imported from LevelUp (the legacy source) under ``<data_dir>/raw/levelup``."""
        return LegacyLanding(self.data_dir / "raw" / LEGACY)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_path(self, table: str, xuid: int, month: str) -> Path:
        """Path of one partition file; ``month`` is ``YYYY-MM-01``."""
        year, mm = Month(month).hive
        return self.root / table / f"player={xuid}" / f"year={year}" / f"month={mm}" / PARQUET_NAME

    def write_partition(self, table: str, xuid: int, month: str, df: pl.DataFrame) -> Path:
        """Replace the partition ``table`` × ``xuid`` × ``month`` with ``df`` (atomic)."""
        return write_parquet_atomic(df, self.partition_path(table, xuid, month))

    def read_partition(
        self, table: str, xuid: int, month: str, schema: Mapping[str, pl.DataType] | None = None
    ) -> pl.DataFrame:
        """One partition; an empty frame with ``schema`` when it was never written.

        Raises:
            FileNotFoundError: the partition is missing and no ``schema`` was given.
        """
        path = self.partition_path(table, xuid, month)
        if path.exists():
            return read_parquet(path)
        if schema is None:
            raise FileNotFoundError(f"{table}: partition {month}|{xuid} has not been materialized ({path})")
        return pl.DataFrame(schema=dict(schema))

    def partition_files(self, table: str, xuid: int | None = None) -> list[Path]:
        """The partition files of ``table`` (of one player when ``xuid`` is given), sorted."""
        base = self.root / table
        if xuid is not None:
            base = base / f"player={xuid}"
        return sorted(base.glob(f"**/{PARQUET_NAME}")) if base.exists() else []

    def read_table(
        self,
        table: str,
        xuid: int | None = None,
        months: Iterable[str] | None = None,
        schema: Mapping[str, pl.DataType] | None = None,
    ) -> pl.DataFrame:
        """Concatenate partitions of ``table`` (optionally one player, optionally some months)."""
        if months is not None and xuid is not None:
            paths = [p for m in months if (p := self.partition_path(table, xuid, m)).exists()]
        else:
            paths = self.partition_files(table, xuid)
        if not paths:
            if schema is None:
                raise FileNotFoundError(f"{table}: no partition materialized under {self.root / table}")
            return pl.DataFrame(schema=dict(schema))
        return pl.concat([read_parquet(p) for p in paths], how="diagonal_relaxed")

    def archived_files(self, table: str) -> list[Path]:
        """Archived partition files of ``table`` that have no live twin (a re-derived month's live file wins)."""
        base = self.root / ARCHIVE_DIR / table
        if not base.exists():
            return []
        return [p for p in sorted(base.glob(f"**/{PARQUET_NAME}"))
                if not (self.table_dir(table) / p.relative_to(base)).exists()]

    def player_files(self, table: str, xuid: int) -> dict[Month, Path]:
        """``{month: path}`` of a player's partition files of ``table``, the archive area's included (a live
        file wins over an archived one of the same month)."""
        out: dict[Month, Path] = {}
        for base in (self.root / ARCHIVE_DIR / table / f"player={xuid}", self.table_dir(table) / f"player={xuid}"):
            if base.exists():
                for path in sorted(base.glob(f"*/*/{PARQUET_NAME}")):
                    out[month_of_path(path)] = path
        return out

    def player_table(self, table: str, xuid: int, schema: Mapping[str, pl.DataType],
                     since: str | None = None, until: str | None = None) -> pl.DataFrame:
        """A player's rows of ``table`` over the months ``since``…``until`` (inclusive; None: unbounded), live
        and archived partitions; an empty frame with ``schema`` when there is none."""
        paths = [p for m, p in sorted(self.player_files(table, xuid).items())
                 if (until is None or m <= until) and (since is None or m >= since)]
        if not paths:
            return pl.DataFrame(schema=dict(schema))
        return pl.concat([read_parquet(p) for p in paths], how="diagonal_relaxed")

    def global_path(self, table: str) -> Path:
        """The one file of a ``global`` table (not per player): ``warehouse/<table>/data.parquet``."""
        return self.root / table / PARQUET_NAME

    def reference_path(self, table: str) -> Path:
        return self.root / REFERENCE / f"{table}.parquet"

    def write_reference(self, table: str, df: pl.DataFrame) -> Path:
        """Replace the reference table ``table`` (unpartitioned) with ``df`` (atomic)."""
        return write_parquet_atomic(df, self.reference_path(table))

    def read_reference(self, table: str) -> pl.DataFrame:
        """A reference table.

        Raises:
            FileNotFoundError: the reference asset was never materialized.
        """
        path = self.reference_path(table)
        if not path.exists():
            raise FileNotFoundError(f"reference table {table} has not been materialized ({path})")
        return read_parquet(path)


def month_of_path(path: Path) -> Month:
    """The month of a partition file from its hive folders (``…/year=YYYY/month=MM/data.parquet``).

    Raises:
        KeyError: the path has no ``year=`` / ``month=`` folder.
    """
    parts = dict(p.split("=", 1) for p in path.parts if "=" in p)
    return Month.from_hive(parts["year"], parts["month"])
