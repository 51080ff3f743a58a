"""The legacy landing: rows imported from another tool (LevelUp), kept byte-stable beside the API's raw landing.

Layout under ``<data_dir>/raw/levelup``::

    <owner xuid>/player.json                          {"xuid", "gamertag"} of the store's owner
    <owner xuid>/<YYYY-MM>/<match_id>.json.gz         one legacy document per (owner, match): LevelUp's rows of
                                                      that match (see halo_pipeline.transforms.levelup), gzip'd

A document is JSON with sorted keys, gzip'd with a zero timestamp: importing the same store twice writes the same
bytes (and nothing is written when they are already there). The month is the match's start month (UTC), the
month of the partition its rows are derived into.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import orjson

from halo_pipeline.months import Month
from halo_pipeline.storage.files import write_bytes_atomic

LEGACY = "levelup"
PLAYER_FILE = "player.json"


def encode(doc: dict) -> bytes:
    """The stored bytes of a document: sorted-key JSON, gzip level 6 with mtime 0 (byte-stable)."""
    return gzip.compress(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), compresslevel=6, mtime=0)


@dataclass(frozen=True)
class LegacyLanding:
    """Reads and writes of legacy documents under ``root`` (``<data_dir>/raw/levelup``)."""

    root: Path

    def path(self, xuid: int, month: str, match_id: str) -> Path:
        return self.root / str(xuid) / Month(month).label / f"{match_id}.json.gz"

    def holds(self, xuid: int, month: str, match_id: str, doc: dict) -> bool:
        """Whether ``doc`` is landed, byte for byte."""
        path = self.path(xuid, month, match_id)
        return path.exists() and path.read_bytes() == encode(doc)

    def put(self, xuid: int, month: str, match_id: str, doc: dict) -> bool:
        """Land ``doc`` unless the same bytes are there; returns whether a file was written."""
        if self.holds(xuid, month, match_id, doc):
            return False
        write_bytes_atomic(self.path(xuid, month, match_id), encode(doc))
        return True

    def get(self, xuid: int, month: str, match_id: str) -> dict | None:
        """A landed document, or ``None``."""
        path = self.path(xuid, month, match_id)
        return orjson.loads(gzip.decompress(path.read_bytes())) if path.exists() else None

    def match_ids(self, xuid: int, month: str) -> list[str]:
        """Match ids of ``xuid``'s documents of ``month``, sorted."""
        folder = self.root / str(xuid) / Month(month).label
        return sorted(p.name.removesuffix(".json.gz") for p in folder.glob("*.json.gz")) if folder.exists() else []

    def documents(self, xuid: int, month: str) -> list[dict]:
        """Every document of ``xuid`` × ``month``."""
        return [doc for mid in self.match_ids(xuid, month) if (doc := self.get(xuid, month, mid)) is not None]

    def months(self, xuid: int) -> list[Month]:
        """Months of ``xuid`` holding documents, ascending."""
        folder = self.root / str(xuid)
        if not folder.exists():
            return []
        return sorted(Month.parse(p.name) for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json.gz")))

    def players(self) -> list[int]:
        """Owners with a legacy folder, ascending."""
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit()) if self.root.exists() else []

    def put_player(self, xuid: int, gamertag: str | None) -> bool:
        """Record the owner's gamertag as the store knew it; returns whether a file was written."""
        path, data = self.root / str(xuid) / PLAYER_FILE, orjson.dumps({"gamertag": gamertag, "xuid": str(xuid)})
        if path.exists() and path.read_bytes() == data:
            return False
        write_bytes_atomic(path, data)
        return True

    def gamertag(self, xuid: int | str) -> str | None:
        """The owner's gamertag recorded by an import, or ``None``."""
        path = self.root / str(xuid) / PLAYER_FILE
        return orjson.loads(path.read_bytes()).get("gamertag") if path.exists() else None
