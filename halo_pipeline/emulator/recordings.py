"""Replay a directory of recorded Halo Waypoint responses (laid out like ``../shared/halo_api``).

What is recognised, by content rather than by file name (every ``*.json`` under the directory, recursively):

* match stats: a JSON object with ``MatchId``, ``MatchInfo`` and ``Players`` (e.g.
  ``responses/get_match_stats*.json``, ``film/match_stats.json``). Served byte-for-byte. Each human player's
  history is built from the stats files they appear in.
* UGC assets: an object with ``AssetId``, ``VersionId``, ``PublicName`` and ``CustomData``; the kind follows
  from its keys (``MapLink`` → mapModePairs, ``EngineGameVariantLink`` → ugcGameVariants,
  ``RotationEntries`` → playlists, ``PrefabLinks`` → maps). Served for their own asset/version ids.
* medal metadata: an object with ``medals`` and ``sprites``.
* skill: ``skill/<match_id>.json`` (a ``{"Value": [...]}`` body). ``responses/get_match_skill.json`` has no
  match id, so it is never served: skill of a recorded match is 404 unless the directory holds its body.
* users: ``users.json`` at the top (a list of ``{"xuid", "gamertag"}``), and the ``Gamertag`` setting of each
  ``profileUsers`` entry of an Xbox profile-settings body (``responses/get_profiles.json``: the recording owner's
  real gamertag); ``users.json`` wins. The anonymised ``get_users.json``/``get_user.json`` samples (xuid
  1234567890123456, gamertag "GAMERTAG") are not directory entries. Stats bodies carry no gamertag, so the
  gamertags written in the recorded films' highlight events (decoded on first need) name the other players:
  a gamertag is accepted wherever the API takes one (``/hi/players/{gamertag}/matches``, ``/users/gt(…)``).
* profiles: ``customization/<xuid>.json`` and ``career_rank/<xuid>.json`` (economy bodies), and a career reward
  track body (an object with ``TrackId`` and ``Ranks``). ``../shared/halo_api`` holds none: its players'
  customization and career rank are 404.

Film: ``film/NN_<match_id>.gzip`` is the highlight-events chunk of that match at film major version NN;
``film/highlight_events.gzip`` belongs to the match of the ``match_stats.json`` beside it and takes its
version from a versioned chunk of the same match or with the same bytes. The manifest is built here.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from halo_pipeline.emulator.wire import (
    HIGHLIGHT_CHUNK_NAME,
    HistoryItem,
    duration_ms,
    film_asset_id,
    film_manifest,
    history_item,
    parse_player_id,
    user_body,
)
from halo_pipeline.ids import InvalidInput
from halo_pipeline.transforms.film import FilmDecodeError, highlight_events

log = logging.getLogger(__name__)


class InvalidRecording(InvalidInput):
    """A file of a recordings directory cannot be read; the message is one line naming the file."""

_FILM_CHUNK_RE = re.compile(r"^(\d+)_([0-9a-fA-F-]{36})\.gzip$")
_UUID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")
_PAIRED_CHUNK = "highlight_events.gzip"
_ECONOMY = ("customization", "career_rank")
_PAIRED_STATS = "match_stats.json"


def ugc_kind(body: dict[str, Any]) -> str | None:
    """The discovery path segment of a UGC asset body (maps, mapModePairs, playlists, ugcGameVariants), or
    ``None`` when the object is not one."""
    if not {"AssetId", "VersionId", "PublicName", "CustomData"} <= body.keys():
        return None
    if "MapLink" in body or "UgcGameVariantLink" in body:
        return "mapModePairs"
    if "EngineGameVariantLink" in body:
        return "ugcGameVariants"
    if "RotationEntries" in body:
        return "playlists"
    if "PrefabLinks" in body or "NumOfObjectsOnMap" in (body.get("CustomData") or {}):
        return "maps"
    return None


@dataclass(frozen=True)
class _FilmChunk:
    path: Path
    version: int
    size: int


class RecordingStore:
    """An index of a recordings directory; bodies are read from disk when served.

    Build it with :meth:`from_directory`. Implements :class:`halo_pipeline.emulator.wire.ApiSource`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stats: dict[str, Path] = {}
        self._stats_info: dict[str, dict[str, Any]] = {}
        self._history: dict[int, list[HistoryItem]] = {}
        self._ugc: dict[tuple[str, str, str], Path] = {}
        self._medals: Path | None = None
        self._skill: dict[str, Path] = {}
        self._film: dict[str, _FilmChunk] = {}
        self._users: dict[int, str] = {}
        self._economy: dict[tuple[str, int], Path] = {}
        self._career_track: Path | None = None
        self._film_gamertags: dict[int, str] | None = None

    @classmethod
    def from_directory(cls, path: str | Path) -> RecordingStore:
        """Index every recognised file under ``path`` (see the module docstring).

        Raises:
            FileNotFoundError: ``path`` is not a directory.
            InvalidRecording: a ``*.json`` file is not valid JSON (the one-line message names it).
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"recordings directory not found: {root}")
        store = cls(root)
        for file in sorted(root.rglob("*.json")):
            store._index_json(file)
        store._index_film()
        users_file = root / "users.json"
        if users_file.is_file():
            try:
                for entry in json.loads(users_file.read_bytes()):
                    store._users[int(entry["xuid"])] = str(entry["gamertag"])
            except (ValueError, TypeError, KeyError) as exc:
                raise InvalidRecording(f"corrupt recording {users_file}: expected a list of "
                                       f"{{xuid, gamertag}}: {' '.join(str(exc).split())}") from None
        return store

    def _index_json(self, file: Path) -> None:
        rel = file.relative_to(self.root)
        if rel.parts[0] == "skill" and _UUID_RE.match(file.stem):
            self._skill[file.stem.lower()] = file
            return
        if rel.parts[0] in _ECONOMY and len(rel.parts) == 2 and file.stem.isdigit():
            self._economy[(rel.parts[0], int(file.stem))] = file
            return
        try:
            body = json.loads(file.read_bytes())
        except (ValueError, OSError) as exc:
            # A corrupt recording is refused at start, naming the file: serving a directory with a hole in it
            # would make the emulator answer 404 for a match that is there.
            raise InvalidRecording(f"corrupt recording {file}: {' '.join(str(exc).split())}") from None
        if not isinstance(body, dict):
            return
        if {"MatchId", "MatchInfo", "Players"} <= body.keys():
            match_id = str(body["MatchId"]).lower()
            if match_id in self._stats:
                return  # the same match recorded twice: the first file (sorted path) wins
            self._stats[match_id] = file
            self._stats_info[match_id] = body["MatchInfo"]
            for player in body["Players"]:
                xuid = parse_player_id(player.get("PlayerId", ""))
                if xuid is not None:
                    item = history_item(body, player["PlayerId"])
                    if item is not None:
                        self._history.setdefault(xuid, []).append(item)
        elif {"medals", "sprites"} <= body.keys():
            self._medals = self._medals or file
        elif {"TrackId", "Ranks"} <= body.keys():
            self._career_track = self._career_track or file
        elif isinstance(body.get("profileUsers"), list):
            for entry in body["profileUsers"]:
                settings = {s.get("id"): s.get("value") for s in entry.get("settings") or () if isinstance(s, dict)}
                if str(entry.get("id", "")).isdigit() and settings.get("Gamertag"):
                    self._users.setdefault(int(entry["id"]), str(settings["Gamertag"]))
        elif (kind := ugc_kind(body)) is not None:
            key = (kind, str(body["AssetId"]).lower(), str(body["VersionId"]).lower())
            self._ugc.setdefault(key, file)

    def _index_film(self) -> None:
        paired: list[Path] = []
        for file in sorted(self.root.rglob("*.gzip")):
            match = _FILM_CHUNK_RE.match(file.name)
            if match:
                match_id = match.group(2).lower()
                self._film.setdefault(match_id, _FilmChunk(file, int(match.group(1)), file.stat().st_size))
            elif file.name == _PAIRED_CHUNK:
                paired.append(file)
        for file in paired:
            stats_file = file.with_name(_PAIRED_STATS)
            if not stats_file.is_file():
                continue
            match_id = str(json.loads(stats_file.read_bytes()).get("MatchId", "")).lower()
            if not match_id or match_id in self._film:
                continue
            data = file.read_bytes()
            twin = next((c for c in self._film.values() if c.size == len(data) and c.path.read_bytes() == data), None)
            if twin is None:
                log.warning("%s: film major version unknown (no versioned chunk with the same bytes); skipped", file)
                continue
            self._film[match_id] = _FilmChunk(file, twin.version, len(data))

    # ---- ApiSource -------------------------------------------------------------------------------------
    @property
    def match_ids(self) -> list[str]:
        """Ids of the recorded matches (those with a stats body), sorted."""
        return sorted(self._stats)

    @property
    def players(self) -> list[int]:
        """Xuids of every human appearing in a recorded match, sorted."""
        return sorted(self._history)

    def match_stats_body(self, match_id: str) -> bytes | None:
        """The recorded stats body, byte-for-byte, or ``None``."""
        path = self._stats.get(match_id.lower())
        return path.read_bytes() if path else None

    def history_items(self, xuid: int) -> list[HistoryItem]:
        """The player's entries built from the stats files they appear in (any order)."""
        return list(self._history.get(xuid, []))

    def _gamertags(self) -> dict[int, str]:
        """xuid → gamertag: ``users.json``, then the gamertags of the recorded players in the films' highlight
        events (decoded once)."""
        if self._film_gamertags is None:
            found: dict[int, str] = {}
            for match_id, chunk in sorted(self._film.items()):
                if match_id not in self._stats:
                    continue
                try:
                    events = highlight_events(match_id, chunk.path.read_bytes(), chunk.version)
                except FilmDecodeError:
                    continue
                for xuid, gamertag in events.select("xuid", "gamertag").unique().iter_rows():
                    if xuid in self._history and gamertag:
                        found.setdefault(int(xuid), str(gamertag))
            self._film_gamertags = found
        return {**self._film_gamertags, **self._users}

    def resolve_gamertag(self, gamertag: str) -> int | None:
        """The xuid of a recorded player's gamertag (``users.json`` or the films; case-insensitive), else
        ``None``."""
        wanted = gamertag.strip().lower()
        return next((x for x, gt in self._gamertags().items() if gt.lower() == wanted), None)

    def match_skill(self, match_id: str, xuids: list[int]) -> dict[str, Any] | None:
        """The recorded ``skill/<match_id>.json`` body, restricted to the requested players; ``None`` when not
        recorded."""
        path = self._skill.get(match_id.lower())
        if path is None:
            return None
        body = json.loads(path.read_bytes())
        wanted = {f"xuid({x})" for x in xuids}
        return {**body, "Value": [v for v in body.get("Value", []) if str(v.get("Id", "")).lower() in wanted]}

    def medal_metadata(self) -> dict[str, Any] | None:
        """The recorded medal metadata body."""
        return json.loads(self._medals.read_bytes()) if self._medals else None

    def ugc_body(self, kind: str, asset_id: str, version_id: str) -> bytes | None:
        """A recorded UGC body for its own asset/version ids, byte-for-byte."""
        path = self._ugc.get((kind, asset_id.lower(), version_id.lower()))
        return path.read_bytes() if path else None

    def film_manifest(self, match_id: str) -> dict[str, Any] | None:
        """A manifest pointing at the recorded highlight chunk; ``None`` without a chunk."""
        match_id = match_id.lower()
        chunk = self._film.get(match_id)
        if chunk is None:
            return None
        length = duration_ms(self._stats_info.get(match_id, {}))
        return film_manifest(match_id, chunk.size, chunk.version, length)

    def film_chunk(self, asset_id: str, match_id: str, name: str) -> bytes | None:
        """The highlight chunk bytes at the path the manifest names."""
        match_id = match_id.lower()
        chunk = self._film.get(match_id)
        if chunk is None or name != HIGHLIGHT_CHUNK_NAME or asset_id.lower() != film_asset_id(match_id):
            return None
        return chunk.path.read_bytes()

    def user(self, xuid: int) -> dict[str, Any] | None:
        """A user listed in ``users.json`` or a profile-settings body, or a recorded player whose gamertag a film
        shows."""
        gamertag = self._users.get(xuid)
        if gamertag is None and xuid in self._history:
            gamertag = self._gamertags().get(xuid)
        return user_body(xuid, gamertag) if gamertag is not None else None

    def customization(self, xuid: int) -> dict[str, Any] | None:
        """A recorded ``customization/<xuid>.json``."""
        path = self._economy.get(("customization", xuid))
        return json.loads(path.read_bytes()) if path else None

    def career_rank(self, xuid: int) -> dict[str, Any] | None:
        """A recorded ``career_rank/<xuid>.json``."""
        path = self._economy.get(("career_rank", xuid))
        return json.loads(path.read_bytes()) if path else None

    def career_track(self) -> dict[str, Any] | None:
        """A recorded career reward track body."""
        return json.loads(self._career_track.read_bytes()) if self._career_track else None
