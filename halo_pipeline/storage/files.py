"""Atomic file writes: a reader never sees a partial file, whatever kills the writer.

Paths are local (:class:`pathlib.Path`) or on object storage (a remote ``upath.UPath``, e.g. ``s3://bucket/prefix``
from ``HALO_DATA_DIR``). Locally a write is a temp file + ``os.replace``; on object storage an object is created
whole by its PUT (a multipart upload too, at completion), so a write is one PUT and a reader sees the old
object or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from halo_pipeline.pausepoint import pause_at

TMP_SUFFIX = ".tmp"
#: ``upath`` protocols that are the local file system.
LOCAL_PROTOCOLS = ("", "file", "local")


def is_remote(path) -> bool:
    """Whether ``path`` is on object storage (a ``UPath`` with a non-local protocol such as ``s3``)."""
    return getattr(path, "protocol", "") not in LOCAL_PROTOCOLS


def data_root(value: str | os.PathLike) -> Path:
    """The data location from a ``HALO_DATA_DIR``-like value: ``s3://bucket/prefix`` (any fsspec URL) → a
    ``UPath`` (directory listings are not cached: other processes write there too); anything else → the
    absolute local :class:`~pathlib.Path`, as before."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if "://" in text and not text.startswith("file://"):
        from upath import UPath

        return UPath(text.rstrip("/"), use_listings_cache=False)
    return Path(text.removeprefix("file://")).resolve()


def read_parquet(path, **kwargs) -> pl.DataFrame:
    """``pl.read_parquet`` of a local path, or of an object read whole through its file system (one GET)."""
    if is_remote(path):
        return pl.read_parquet(io.BytesIO(path.read_bytes()), **kwargs)
    return pl.read_parquet(path, **kwargs)


def remove_tree(path) -> None:
    """Delete a folder (a key prefix on object storage) and everything below it."""
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)


def _temp_path(path: Path) -> Path:
    # Hidden and suffixed ``.tmp`` so that globs like ``**/*.parquet`` never match a file being written; the
    # writer's pid tells ``halo-pipeline doctor`` whether a leftover belongs to a live process.
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}{TMP_SUFFIX}")


def temp_writer_pid(name: str) -> int | None:
    """The pid of the process that wrote the temp file named ``name`` (see :func:`_temp_path`), or ``None``."""
    stem = name.removesuffix(TMP_SUFFIX).rpartition(".")[2]
    pid, sep, _ = stem.partition("-")
    return int(pid) if sep and pid.isdigit() and name.startswith(".") and name.endswith(TMP_SUFFIX) else None


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Concurrent writers of the same path are safe: the last rename wins, each rename is whole. On object
    storage: one PUT (the last PUT wins, each is whole).
    """
    if is_remote(path):
        path.write_bytes(data)
        return path
    with atomic_writer(path) as fh:
        fh.write(data)
    return path


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` whole when the block ends without an error: a hidden
    temp file in the same folder, fsync'd, then ``os.replace``; deleted on an error (``path`` untouched). For
    content written piece by piece (a tar being built or restored). Local paths only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        pause_at("before_rename", str(path))  # test hook, inactive unless HALO_TEST_PAUSE_AT is set
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` as zstd-compressed Parquet to ``path`` atomically (temp file + rename; on object storage
    the file is built in memory and PUT once — partition files are small)."""
    if is_remote(path):
        buffer = io.BytesIO()
        df.write_parquet(buffer, compression="zstd", statistics=True)
        path.write_bytes(buffer.getvalue())
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        pause_at("before_rename", str(path))
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

    if is_remote(path):
        # Object storage: the bucket must exist (credentials and permissions are the store's business).
        bucket = path.anchor.strip("/") or str(path)
        if not path.fs.exists(bucket):
            raise InvalidInput(f"{name}={path} is not writable: bucket {bucket} does not exist")
        return path
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidInput(f"{name}={path} is not writable: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidInput(f"{name}={path} is not writable: no write permission on {probe}")
    return Path(path)
