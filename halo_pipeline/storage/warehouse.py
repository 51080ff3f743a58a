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

from halo_pipeline.storage.files import is_remote, read_parquet, write_parquet_atomic
from halo_pipeline.storage.landing import RawLanding

PARQUET_NAME = "data.parquet"
REFERENCE = "reference"
#: Where the DuckDB catalog lives when the warehouse is on object storage (DuckDB writes a database file
#: only on a local disk): this variable, else ``halo.duckdb`` in the current folder.
CATALOG_ENV = "HALO_CATALOG_PATH"


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

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_path(self, table: str, xuid: int, month: str) -> Path:
        """Path of one partition file; ``month`` is ``YYYY-MM-01``."""
        year, mm = month[:4], month[5:7]
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
