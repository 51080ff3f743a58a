"""Images the emulator makes itself (no recording holds any): medal sprite sheets laid out as the medal metadata
says, and small placeholder PNGs for UGC images and the career rank icons of the emulated career track.

* A sprite sheet has ``columns`` cells per row, each ``size`` × ``size`` pixels; the cell of sprite index ``i`` is
  at column ``i % columns``, row ``i // columns`` (the layout the metadata's ``sprites.<size>.columns``/``size``
  describe). Every cell is filled with :func:`cell_color` of its index and framed with :func:`frame_color`, so a
  cell cut one pixel off, or the cell of another index, is told apart.
* A placeholder is a PNG of one colour derived from its path.
* The career rank icons are those the emulated track names
  (:func:`halo_pipeline.emulator.profiles.career_track_body`: 272 ranks, synthetic icon paths).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from typing import Any

from PIL import Image, ImageDraw

from halo_pipeline.emulator.profiles import career_track_body

#: The career rank icon fields of a rank, with the size of the placeholder served for each (the real icons are
#: 280, 600 and 196 px high: these are small stand-ins).
CAREER_ICON_FIELDS = {"RankIcon": (28, 28), "RankLargeIcon": (60, 60), "RankAdornmentIcon": (20, 20)}


def cell_color(index: int) -> tuple[int, int, int]:
    """The fill colour of sprite cell ``index`` (distinct for every index below 65,536)."""
    return index % 256, (index // 256) * 16 + 40, 200


def frame_color(index: int) -> tuple[int, int, int]:
    """The colour of the frame drawn inside the edge of sprite cell ``index``."""
    return 255 - index % 256, 255, 30


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=6)
    return out.getvalue()


@functools.lru_cache(maxsize=16)
def sprite_sheet(columns: int, size: int, cells: int) -> bytes:
    """A PNG sprite sheet of ``cells`` cells (rows as needed), ``columns`` per row, ``size`` px square each."""
    rows = max(1, math.ceil(cells / columns))
    image = Image.new("RGB", (columns * size, rows * size), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    border = max(1, size // 24)
    for index in range(columns * rows):
        x, y = (index % columns) * size, (index // columns) * size
        draw.rectangle([x, y, x + size - 1, y + size - 1], fill=cell_color(index), outline=frame_color(index),
                       width=border)
    return _png(image)


def medal_sheet(metadata: dict[str, Any], path: str) -> bytes | None:
    """The sprite sheet the medal metadata names at ``path`` (``sprites.<size>.path``), sized for its medals'
    largest ``spriteIndex``; ``None`` when no sprite has that path."""
    for sprite in (metadata.get("sprites") or {}).values():
        if sprite.get("path", "").strip("/").lower() == path.strip("/").lower():
            cells = max((int(m.get("spriteIndex", 0)) for m in metadata.get("medals") or ()), default=0) + 1
            return sprite_sheet(int(sprite["columns"]), int(sprite["size"]), cells)
    return None


@functools.lru_cache(maxsize=4096)
def placeholder_png(key: str, width: int, height: int) -> bytes:
    """A ``width`` × ``height`` PNG of one colour derived from ``key`` (a path)."""
    digest = hashlib.blake2b(key.lower().encode(), digest_size=3).digest()
    return _png(Image.new("RGB", (width, height), tuple(digest)))


#: The UGC images the emulator serves, with their sizes (the real ones are full-HD screenshots).
UGC_IMAGE_SIZES = {"thumbnail": (64, 36), "hero": (128, 72)}


def ugc_image(path: str) -> bytes:
    """A placeholder for a UGC file (``images/thumbnail.png``, ``images/hero.png``…), sized by its name."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    return placeholder_png(path, *UGC_IMAGE_SIZES.get(stem, (48, 27)))


@functools.cache
def _career_icons() -> dict[str, tuple[int, int]]:
    return {rank[field].lower(): size for rank in career_track_body()["Ranks"]
            for field, size in CAREER_ICON_FIELDS.items()}


def career_icon(path: str) -> bytes | None:
    """The placeholder of a career rank icon path of the emulated career track
    (:func:`halo_pipeline.emulator.profiles.career_track_body`), else ``None``."""
    size = _career_icons().get(path.strip("/").lower())
    return placeholder_png(path.strip("/").lower(), *size) if size else None
