"""Atomic file writes: a reader never sees a partial file, whatever kills the writer."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

TMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> Path:
    # Hidden and suffixed ``.tmp`` so that globs like ``**/*.parquet`` never match a file being written.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Concurrent writers of the same path are safe: the last rename wins, each rename is whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` as zstd-compressed Parquet to ``path`` atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_writable_dir(path: Path, name: str) -> Path:
    """Fail early, in one line, when ``path`` (e.g. ``$HALO_DATA_DIR``) cannot hold the warehouse: it, or its
    nearest existing ancestor, must be a writable directory. Creates nothing.

    Raises:
        halo_pipeline.ids.InvalidInput: the message names ``name`` and the path.
    """
    from halo_pipeline.ids import InvalidInput

    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidInput(f"{name}={path} is not writable: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidInput(f"{name}={path} is not writable: no write permission on {probe}")
    return Path(path)
