"""Raw landing: the API's response bodies kept byte-for-byte (gzip-compressed), keyed by match id.

Every derived table is a pure function of raw landing + reference data, which is what makes a backfill
cost zero API calls. A match played by several registered players is landed once.

Layout under ``<data_dir>/raw``::

    stats/<id[:2]>/<match_id>.json.gz     GET halostats /hi/matches/{id}/stats
    skill/<id[:2]>/<match_id>.json.gz     GET skill /hi/matches/{id}/skill?players=…
    film/<id[:2]>/<match_id>.v<NN>.gz     the highlight-events film chunk (already zlib data), film version NN
    profile/<xuid[:2]>/<xuid>.json.gz     one user object of profile ``/users?xuids=…`` or ``/users/gt(…)``
    profile/<xuid[:2]>/<xuid>.<part>.<YYYY-MM-DD>.json.gz
                                          a registered player's or friend's profile of that UTC day, ``part``
                                          one of :data:`PROFILE_PARTS` (at most one per player per day)
    career_track/ca/careerrank1.json.gz   the career reward track, gamecms-hacs
                                          ``/hi/Progression/file/RewardTracks/CareerRanks/careerRank1.json``
    <kind>/…/<key>.absent                 the API answered 404 for it: not asked again (5xx are never marked)

``root`` may be on object storage (an ``s3://…`` UPath): each body is then one object, written by one PUT.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from halo_pipeline.storage.files import is_remote, write_bytes_atomic

STATS = "stats"
PROFILE = "profile"
SKILL = "skill"
FILM = "film"
#: A player's daily profile snapshot, under :data:`PROFILE` (see :func:`daily_key`): the user object
#: (profile ``/users``), the customization and the career rank (economy).
PROFILE_PARTS = ("user", "customization", "career_rank")
CAREER_TRACK = "career_track"


def daily_key(xuid: int | str, part: str, day) -> str:
    """The landing key (kind :data:`PROFILE`) of ``part`` of a player's profile on UTC ``day`` (a ``date``):
    ``<xuid>.<part>.<YYYY-MM-DD>``."""
    return f"{xuid}.{part}.{day.isoformat()}"


def _gunzip(data: bytes) -> bytes:
    """``gzip.decompress(data)``, faster for what :meth:`RawLanding.put` writes (one gzip member): a single
    zlib pass, which checks the CRC and length itself. Anything else (several members, trailing bytes, a
    damaged file) goes through ``gzip.decompress``, which returns the same bytes or raises as before."""
    inflater = zlib.decompressobj(31)  # 16 + MAX_WBITS: a gzip header and trailer
    try:
        body = inflater.decompress(data)
    except zlib.error:
        return gzip.decompress(data)
    if inflater.eof and not inflater.unused_data:
        return body
    return gzip.decompress(data)


@dataclass(frozen=True)
class RawLanding:
    """Reads and writes of raw API bodies under ``root``."""

    root: Path

    def _path(self, kind: str, match_id: str, suffix: str = ".json.gz") -> Path:
        return self.root / kind / match_id[:2] / f"{match_id}{suffix}"

    def has(self, kind: str, match_id: str) -> bool:
        """Whether a ``kind`` body (``stats`` or ``skill``) of ``match_id`` is landed."""
        return self._path(kind, match_id).exists()

    def put(self, kind: str, match_id: str, body: bytes) -> Path:
        """Land a JSON body exactly as the API sent it (gzip level 6, atomic)."""
        return write_bytes_atomic(self._path(kind, match_id), gzip.compress(body, compresslevel=6, mtime=0))

    @cached_property
    def _local_root(self) -> str | None:
        """``root`` as a local file-system path string; None when it is on object storage."""
        return None if is_remote(self.root) else os.fspath(self.root)

    def get(self, kind: str, match_id: str) -> bytes | None:
        """The landed body, byte-for-byte as the API sent it, or ``None`` when not landed."""
        local = self._local_root
        try:
            if local is None:  # object storage: one GET through the UPath
                data = self._path(kind, match_id).read_bytes()
            else:  # local: a plain string path, unbuffered (a re-derive reads thousands of bodies)
                with open(f"{local}/{kind}/{match_id[:2]}/{match_id}.json.gz", "rb", buffering=0) as fh:
                    data = fh.read()
        except FileNotFoundError:
            return None
        return _gunzip(data)

    def put_film(self, match_id: str, version: int, chunk: bytes) -> Path:
        """Land the highlight-events chunk (kept as downloaded) of film major version ``version``."""
        return write_bytes_atomic(self._path(FILM, match_id, f".v{version}.gz"), chunk)

    def mark_absent(self, kind: str, match_id: str, status: int) -> Path:
        """Record that the API answered ``status`` (e.g. 404: no skill for a custom game, no film) for a
        ``kind`` body of ``match_id``, so later syncs do not ask again. A 5xx is never marked: it is retried."""
        return write_bytes_atomic(self._path(kind, match_id, ".absent"), str(status).encode())

    def absent_status(self, kind: str, match_id: str) -> int | None:
        """The status recorded by :meth:`mark_absent`, or ``None``."""
        try:
            return int(self._path(kind, match_id, ".absent").read_text())
        except FileNotFoundError:
            return None

    def keys(self, kind: str, prefix: str) -> list[str]:
        """Keys of the landed ``kind`` bodies whose key starts with ``prefix`` (at least 2 characters: the
        folder), sorted; absent markers are not listed."""
        folder = self.root / kind / prefix[:2]
        suffix = ".json.gz"
        return sorted(p.name[:-len(suffix)] for p in folder.glob(f"{prefix}*{suffix}")) if folder.exists() else []

    def has_film(self, match_id: str) -> bool:
        """Whether a highlight-events chunk of ``match_id`` is landed."""
        folder = self.root / FILM / match_id[:2]
        return folder.exists() and any(folder.glob(f"{match_id}.v*.gz"))

    def get_film(self, match_id: str) -> tuple[bytes, int] | None:
        """``(chunk, film_major_version)`` of a landed highlight-events chunk, or ``None``."""
        folder = self.root / FILM / match_id[:2]
        for path in folder.glob(f"{match_id}.v*.gz") if folder.exists() else ():
            version = int(path.name.rsplit(".v", 1)[1].split(".")[0])
            return path.read_bytes(), version
        return None
