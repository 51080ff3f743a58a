"""Reference data (playlist/mode translations, medal names) → validated models and typed polars DataFrames.

Sources:
    * ``Playlist_modes_translations.json``: ``{"playlists": [{uuid, en, fr}], "modes": [{en, fr, category}],
      "categories": {category: parent}}``. ``categories`` maps each mode category (``"Arena"``, ``"BTB"``…) to
      its parent group, written as the French display label (``"Assassin"``, ``"Grande bataille en équipe"``…).
    * ``medals/medals_en.json`` / ``medals_fr.json``: ``{"<name_id>": "<name>"}``.
    * The API medal metadata (``GET gamecms-hacs /hi/Waypoint/file/medals/metadata.json``): ``medals[]`` with
      ``nameId``, ``name.value``, ``description.value``, ``typeIndex`` into ``types``, ``difficultyIndex`` into
      ``difficulties``, ``spriteIndex``, ``personalScore``, ``sortingWeight``.

Error rules: a file that is not JSON, or whose top-level structure is wrong, raises :class:`ReferenceFileError`
whose message is one line naming the file and the field (``Playlist_modes_translations.json: modes: Field
required``). A single row that fails validation is *rejected*: left out and reported (file, field, reason,
row), while the other rows load.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# --------------------------------------------------------------------------------------------------- models


class ReferenceFileError(ValueError):
    """A reference file that cannot be used at all; the message is one line: ``<file>: <field>: <reason>``."""


class PlaylistTranslation(BaseModel):
    """A playlist's display names. ``uuid`` is the playlist asset id (canonical lower-case UUID text)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uuid: str
    en: str = Field(min_length=1)
    fr: str = Field(min_length=1)

    @field_validator("uuid")
    @classmethod
    def _canonical_uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"not a UUID: {value!r}") from None


class GameModeTranslation(BaseModel):
    """A mode's display names (``en`` is the key the mode is looked up by, e.g. ``"Arena:CTF on Aquarius"``)
    and its category (a key of :attr:`PlaylistModesData.categories`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    en: str = Field(min_length=1)
    fr: str = Field(min_length=1)
    category: str = Field(min_length=1)


class MedalDefinition(BaseModel):
    """A medal, merged from the EN/FR name files and the API medal metadata (fields absent from every source
    are None)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name_id: int
    name_en: str | None = None
    name_fr: str | None = None
    description: str | None = None
    type: str | None = None
    difficulty: str | None = None
    sprite_index: int | None = None
    personal_score: int | None = None
    sorting_weight: int | None = None


class PlaylistModesData(BaseModel):
    """The whole ``Playlist_modes_translations.json`` (valid rows only)."""

    model_config = ConfigDict(frozen=True)

    playlists: list[PlaylistTranslation]
    modes: list[GameModeTranslation]
    categories: dict[str, str]


# --------------------------------------------------------------------------------------------------- helpers


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    """``("modes", 3, "category")`` → ``modes[3].category``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_KEY_RE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def _read_json(path: str | Path) -> tuple[str, Any]:
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReferenceFileError(f"{name}: cannot read file: {_one_line(exc.strerror or str(exc))}") from exc
    try:
        return name, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            keys = _KEY_RE.findall(exc.doc[: exc.pos]) if isinstance(exc.doc, str) else []
            field = keys[-1] if keys else "(document)"
            where = f"line {exc.lineno} column {exc.colno}"
            raise ReferenceFileError(f"{name}: {field}: invalid JSON at {where}: {exc.msg}") from exc
        raise ReferenceFileError(f"{name}: (document) not UTF-8 text: {_one_line(str(exc))}") from exc


def _reject(file: str, field: str, reason: str, row: Any) -> dict[str, Any]:
    return {"file": file, "field": field, "reason": f"{field}: {reason}" if field else reason, "row": row}


# --------------------------------------------------------------------------------------------------- loaders


def load_playlist_modes(path: str | Path) -> tuple[PlaylistModesData, list[dict[str, Any]]]:
    """Load ``Playlist_modes_translations.json``.

    Returns:
        ``(data, rejected)``: the valid playlists, modes and categories, and one dict per rejected row with
        keys ``file``, ``field`` (e.g. ``modes[3].category``), ``reason`` (one line, starting with the field)
        and ``row`` (the raw row).

    Raises:
        ReferenceFileError: unreadable file, invalid JSON, or wrong top-level structure (not an object, or
            ``playlists``/``modes`` not lists, ``categories`` not an object). One line: ``<file>: <field>: <why>``.
    """
    name, doc = _read_json(path)
    if not isinstance(doc, dict):
        raise ReferenceFileError(f"{name}: (document): expected an object, got {type(doc).__name__}")
    for key, kind in (("playlists", list), ("modes", list), ("categories", dict)):
        if key not in doc:
            raise ReferenceFileError(f"{name}: {key}: Field required")
        if not isinstance(doc[key], kind):
            expected = "a list" if kind is list else "an object"
            raise ReferenceFileError(f"{name}: {key}: expected {expected}, got {type(doc[key]).__name__}")

    rejected: list[dict[str, Any]] = []
    playlists: list[PlaylistTranslation] = []
    for index, row in enumerate(doc["playlists"]):
        try:
            playlists.append(PlaylistTranslation.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = _loc(("playlists", index, *tuple(err.get("loc", ()))))
            rejected.append(_reject(name, field, _one_line(err.get("msg", "invalid")), row))
    modes: list[GameModeTranslation] = []
    for index, row in enumerate(doc["modes"]):
        try:
            modes.append(GameModeTranslation.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = _loc(("modes", index, *tuple(err.get("loc", ()))))
            rejected.append(_reject(name, field, _one_line(err.get("msg", "invalid")), row))
    categories: dict[str, str] = {}
    for key, value in doc["categories"].items():
        if not isinstance(value, str) or not value:
            rejected.append(_reject(name, f"categories.{key}", "expected a non-empty string", value))
            continue
        categories[key] = value
    return PlaylistModesData(playlists=playlists, modes=modes, categories=categories), rejected


def load_medal_names(path: str | Path, rejected: list[dict[str, Any]] | None = None) -> dict[int, str]:
    """Load a medal-names file (``medals_en.json`` / ``medals_fr.json``): ``{"<name_id>": "<name>"}``.

    Args:
        path: The file.
        rejected: When given, entries with a non-integer key or a non-string/empty name are appended to it
            (same dict shape as :func:`load_playlist_modes`) and skipped; when None such an entry raises.

    Returns:
        ``{name_id: name}``.

    Raises:
        ReferenceFileError: unreadable file, invalid JSON, top level not an object, or (``rejected`` None) a
            bad entry. One line naming the file and the field.
    """
    name, doc = _read_json(path)
    if not isinstance(doc, dict):
        raise ReferenceFileError(f"{name}: (document): expected an object of name_id → name, got "
                                 f"{type(doc).__name__}")
    out: dict[int, str] = {}
    for key, value in doc.items():
        problem = None
        if not key.strip().isdigit():
            problem = "name_id is not an integer"
        elif not isinstance(value, str) or not value.strip():
            problem = "expected a non-empty string"
        if problem:
            if rejected is None:
                raise ReferenceFileError(f"{name}: {key}: {problem}")
            rejected.append(_reject(name, key, problem, value))
            continue
        out[int(key)] = value
    return out


def _index(values: Any, index: Any) -> str | None:
    if isinstance(index, int) and isinstance(values, (list, tuple)) and 0 <= index < len(values):
        value = values[index]
        return value if isinstance(value, str) else None
    return None


def _text(node: Any) -> str | None:
    if isinstance(node, dict):
        value = node.get("value")
        return value if isinstance(value, str) else None
    return node if isinstance(node, str) else None


def medal_definitions(
    names_en: Mapping[int, str], names_fr: Mapping[int, str], metadata: dict | None
) -> tuple[list[MedalDefinition], list[dict[str, Any]]]:
    """Merge the EN/FR name files with the API medal metadata body (may be None: names only).

    Every name_id present in any source yields one definition (sorted by name_id). ``name_en``/``name_fr`` come
    from the files, falling back to the metadata's ``name.value`` / ``name.translations["fr-FR"]``;
    ``description`` is ``description.value``; ``type``/``difficulty`` are ``types[typeIndex]`` /
    ``difficulties[difficultyIndex]`` (None when the index is out of range); ``sprite_index``,
    ``personal_score``, ``sorting_weight`` as given.

    Returns:
        ``(definitions, rejected)``; a metadata medal without an integer ``nameId`` (or otherwise invalid) is
        rejected (``file`` = ``"medal metadata"``, ``field`` ``medals[i].nameId``…).

    Raises:
        ReferenceFileError: ``metadata`` is not an object or its ``medals`` is not a list.
    """
    rejected: list[dict[str, Any]] = []
    meta_by_id: dict[int, dict[str, Any]] = {}
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ReferenceFileError(f"medal metadata: (document): expected an object, got "
                                     f"{type(metadata).__name__}")
        medals = metadata.get("medals")
        if not isinstance(medals, list):
            raise ReferenceFileError("medal metadata: medals: Field required" if medals is None
                                     else f"medal metadata: medals: expected a list, got {type(medals).__name__}")
        types, difficulties = metadata.get("types"), metadata.get("difficulties")
        for index, medal in enumerate(medals):
            if not isinstance(medal, dict):
                rejected.append(_reject("medal metadata", f"medals[{index}]", "expected an object", medal))
                continue
            name_id = medal.get("nameId")
            if isinstance(name_id, bool) or not isinstance(name_id, int):
                rejected.append(_reject("medal metadata", f"medals[{index}].nameId", "expected an integer", medal))
                continue
            name = medal.get("name")
            translations = name.get("translations") if isinstance(name, dict) else None
            meta_by_id[name_id] = {
                "name_en": _text(name),
                "name_fr": translations.get("fr-FR") if isinstance(translations, dict) else None,
                "description": _text(medal.get("description")),
                "type": _index(types, medal.get("typeIndex")),
                "difficulty": _index(difficulties, medal.get("difficultyIndex")),
                "sprite_index": medal.get("spriteIndex"),
                "personal_score": medal.get("personalScore"),
                "sorting_weight": medal.get("sortingWeight"),
                "_index": index,
            }
    definitions: list[MedalDefinition] = []
    for name_id in sorted(set(names_en) | set(names_fr) | set(meta_by_id)):
        meta = meta_by_id.get(name_id, {})
        values = {k: v for k, v in meta.items() if not k.startswith("_")}
        values["name_id"] = name_id
        values["name_en"] = names_en.get(name_id) or meta.get("name_en")
        values["name_fr"] = names_fr.get(name_id) or meta.get("name_fr")
        try:
            definitions.append(MedalDefinition.model_validate(values))
        except ValidationError as exc:
            prefix = ("medals", meta["_index"]) if meta else (str(name_id),)
            err = exc.errors()[0]
            field = _loc(prefix + tuple(err.get("loc", ())))
            rejected.append(_reject("medal metadata" if meta else "medal names", field,
                                    _one_line(err.get("msg", "invalid")), values))
    return definitions, rejected


# --------------------------------------------------------------------------------------------------- frames

PLAYLISTS_SCHEMA: dict[str, pl.DataType] = {"playlist_id": pl.Utf8, "name_en": pl.Utf8, "name_fr": pl.Utf8}
GAME_MODES_SCHEMA: dict[str, pl.DataType] = {"name_en": pl.Utf8, "name_fr": pl.Utf8, "category": pl.Utf8}
MODE_CATEGORIES_SCHEMA: dict[str, pl.DataType] = {"category": pl.Utf8, "parent": pl.Utf8}
MEDAL_DEFINITIONS_SCHEMA: dict[str, pl.DataType] = {
    "name_id": pl.Int64,
    "name_en": pl.Utf8,
    "name_fr": pl.Utf8,
    "description": pl.Utf8,
    "type": pl.Utf8,
    "difficulty": pl.Utf8,
    "sprite_index": pl.Int16,
    "personal_score": pl.Int32,
    "sorting_weight": pl.Int16,
}


def playlists_frame(data: PlaylistModesData) -> pl.DataFrame:
    """Columns: playlist_id Utf8 (the playlist asset id, = ``MatchInfo.Playlist.AssetId``), name_en, name_fr
    Utf8. One row per playlist, in file order."""
    return pl.DataFrame(
        {
            "playlist_id": [p.uuid for p in data.playlists],
            "name_en": [p.en for p in data.playlists],
            "name_fr": [p.fr for p in data.playlists],
        },
        schema=PLAYLISTS_SCHEMA,
    )


def game_modes_frame(data: PlaylistModesData) -> pl.DataFrame:
    """Columns: name_en, name_fr, category Utf8. One row per mode, in file order."""
    return pl.DataFrame(
        {
            "name_en": [m.en for m in data.modes],
            "name_fr": [m.fr for m in data.modes],
            "category": [m.category for m in data.modes],
        },
        schema=GAME_MODES_SCHEMA,
    )


def mode_categories_frame(data: PlaylistModesData) -> pl.DataFrame:
    """Columns: category Utf8 (a mode category, e.g. ``"BTB Heavies"``), parent Utf8 (its group, as the
    French display label, e.g. ``"Grande bataille en équipe"``). One row per category, in file order."""
    return pl.DataFrame(
        {"category": list(data.categories), "parent": list(data.categories.values())},
        schema=MODE_CATEGORIES_SCHEMA,
    )


def medal_definitions_frame(definitions: list[MedalDefinition]) -> pl.DataFrame:
    """Columns: name_id Int64; name_en, name_fr, description, type, difficulty Utf8; sprite_index Int16;
    personal_score Int32; sorting_weight Int16. One row per definition, in the given order."""
    return pl.DataFrame(
        {name: [getattr(d, name) for d in definitions] for name in MEDAL_DEFINITIONS_SCHEMA},
        schema=MEDAL_DEFINITIONS_SCHEMA,
    )
