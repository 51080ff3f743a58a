"""Wire-format helpers shared by the emulator's sources: timestamps, ISO-8601 durations, history entries and
pages, film manifests, user bodies, and the :class:`ApiSource` protocol the server reads from.

Every body built here has the shape of a recorded Halo Waypoint response (``../shared/halo_api/responses``)
and parses with spnkr's models.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from spnkr.models.refdata import FilmChunkType, FilmStatus, LifecycleMode

#: Largest page the history endpoint returns (spnkr documents 25 as the API's maximum).
MAX_HISTORY_COUNT = 25

#: ``type`` query values of the history endpoint → the ``MatchInfo.LifecycleMode`` values they keep
#: (``None``: every match). Compared case-insensitively.
HISTORY_TYPES: dict[str, frozenset[int] | None] = {
    "all": None,
    "matchmaking": frozenset({LifecycleMode.MATCHMADE.value}),
    "custom": frozenset({LifecycleMode.CUSTOM.value}),
    "local": frozenset({LifecycleMode.CUSTOM_LAN.value}),
}

#: Namespace of the UUIDs the emulator derives (film asset ids, synthetic assets, synthetic matches).
EMULATOR_NAMESPACE = uuid.UUID("6c1f4a52-8a47-4d2e-9a57-2f4f0f1d7e3b")

_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class BadRequest(ValueError):
    """A request parameter the API would refuse (the server answers 400 with the message)."""


def format_time(moment: datetime) -> str:
    """A UTC datetime as the API writes it: ``2025-01-29T04:07:25.964Z`` (milliseconds, ``Z``)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an API timestamp (``…Z`` or with an offset, any fraction digits) into an aware UTC datetime."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, _, rest = text.partition(".")
    if rest:  # Python 3.11 accepts at most 6 fraction digits
        digits = re.match(r"\d*", rest).group(0)
        text = f"{head}.{(digits + '000000')[:6]}{rest[len(digits):]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def format_duration(seconds: float) -> str:
    """Seconds as an ISO-8601 duration like the API's: ``PT9M9.421S``, ``PT1H2M3S``, ``PT0S``."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or millis or out == "PT":
        out += f"{secs}.{millis:03d}".rstrip("0").rstrip(".") + "S"
    return out


def parse_duration(text: str) -> float:
    """An ISO-8601 duration (``PT9M9.4211615S``) in seconds.

    Raises:
        ValueError: not a day/time duration.
    """
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"invalid ISO-8601 duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def wrap_player(xuid: int) -> str:
    """``PlayerId`` of a human: ``xuid(2535445291321133)``."""
    return f"xuid({xuid})"


def parse_player_id(player_id: str) -> int | None:
    """The xuid of a human ``PlayerId`` (``xuid(…)``), ``None`` for bots (``bid(…)``) and anything else."""
    match = re.fullmatch(r"xuid\((\d+)\)", player_id.strip(), re.IGNORECASE)
    return int(match.group(1)) if match else None


def parse_xuid_text(text: str) -> int | None:
    """The xuid written as ``xuid(…)`` or bare digits, else ``None`` (e.g. a gamertag)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    return parse_player_id(text)


@dataclass(frozen=True)
class HistoryItem:
    """One entry of a player's match history.

    Attributes:
        start_time: ``MatchInfo.StartTime`` (UTC), the sort key (newest first).
        lifecycle_mode: ``MatchInfo.LifecycleMode`` (1 custom, 3 matchmade, 7 LAN), for the ``type`` filter.
        match_id: canonical lower-case match id.
        body: the result object exactly as the API writes it (MatchId, MatchInfo, LastTeamId, Outcome, Rank,
            PresentAtEndOfMatch).
    """

    start_time: datetime
    lifecycle_mode: int
    match_id: str
    body: dict[str, Any]


def history_item(stats: dict[str, Any], player_id: str) -> HistoryItem | None:
    """The history entry of ``player_id`` (``xuid(…)``) built from a match-stats body, or ``None`` when the
    player is not in the match. The entry's ``MatchInfo`` is the stats body's, as in the real API."""
    player = next((p for p in stats["Players"] if p.get("PlayerId", "").lower() == player_id.lower()), None)
    if player is None:
        return None
    info = stats["MatchInfo"]
    body = {
        "MatchId": stats["MatchId"],
        "MatchInfo": info,
        "LastTeamId": player["LastTeamId"],
        "Outcome": player["Outcome"],
        "Rank": player["Rank"],
        "PresentAtEndOfMatch": bool(player["ParticipationInfo"]["PresentAtCompletion"]),
    }
    return HistoryItem(parse_time(info["StartTime"]), int(info["LifecycleMode"]), str(stats["MatchId"]).lower(), body)


def history_page(items: list[HistoryItem], start: int, count: int, match_type: str) -> dict[str, Any]:
    """A history page body ``{"Start","Count","ResultCount","Results","Links":{}}``.

    ``items`` in any order; the page is newest first by start time. ``count`` is capped at
    :data:`MAX_HISTORY_COUNT`; ``match_type`` is one of :data:`HISTORY_TYPES` (any case).

    Raises:
        BadRequest: negative ``start``, ``count`` < 1, or an unknown ``match_type``.
    """
    if start < 0:
        raise BadRequest(f"start must be >= 0, got {start}")
    if count < 1:
        raise BadRequest(f"count must be >= 1, got {count}")
    key = match_type.strip().lower()
    if key not in HISTORY_TYPES:
        raise BadRequest(f"type must be one of {', '.join(HISTORY_TYPES)}; got {match_type!r}")
    modes = HISTORY_TYPES[key]
    kept = [i for i in items if modes is None or i.lifecycle_mode in modes]
    kept.sort(key=lambda i: (i.start_time, i.match_id), reverse=True)
    count = min(count, MAX_HISTORY_COUNT)
    results = [i.body for i in kept[start:start + count]]
    return {"Start": start, "Count": count, "ResultCount": len(results), "Results": results, "Links": {}}


def film_asset_id(match_id: str) -> str:
    """The (emulator-made, stable) film asset id of a match."""
    return str(uuid.uuid5(EMULATOR_NAMESPACE, f"film/{match_id.lower()}"))


FILM_BLOB_HOST = "https://blobs-infiniteugc.svc.halowaypoint.com"
HIGHLIGHT_CHUNK_NAME = "filmChunk0"


def film_manifest(match_id: str, chunk_size: int, major_version: int, film_length_ms: int) -> dict[str, Any]:
    """A film manifest (shape of ``get_film_by_match_id.json``) listing the one chunk the emulator holds:
    the highlight-events chunk (``ChunkType`` 3, last, as ``Film.highlight_events_url`` requires), served at
    ``<blob host>/ugcstorage/film/<asset_id>/<match_id>/filmChunk0``."""
    asset_id = film_asset_id(match_id)
    return {
        "FilmStatusBond": FilmStatus.COMPLETE.value,
        "CustomData": {
            "FilmLength": film_length_ms,
            "Chunks": [
                {
                    "Index": 0,
                    "ChunkStartTimeOffsetMilliseconds": film_length_ms,
                    "DurationMilliseconds": 2,
                    "ChunkSize": chunk_size,
                    "FileRelativePath": f"/{HIGHLIGHT_CHUNK_NAME}",
                    "ChunkType": FilmChunkType.HIGHLIGHT_EVENTS.value,
                }
            ],
            "HasGameEnded": True,
            "ManifestRefreshSeconds": 30,
            "MatchId": match_id,
            "FilmMajorVersion": major_version,
        },
        "BlobStoragePathPrefix": f"{FILM_BLOB_HOST}/ugcstorage/film/{asset_id}/{match_id}/",
        "AssetId": asset_id,
    }


def user_body(xuid: int, gamertag: str) -> dict[str, Any]:
    """A profile user (shape of ``get_users.json`` items): xuid as text, gamertag, gamerpic URLs."""
    base = f"https://images-eds-ssl.xboxlive.com/image?url=emulator-gamerpic-{xuid}&format=png"
    return {
        "xuid": str(xuid),
        "gamertag": gamertag,
        "gamerpic": {
            "small": f"{base}&w=64&h=64",
            "medium": f"{base}&w=208&h=208",
            "large": f"{base}&w=424&h=424",
            "xlarge": base,
        },
    }


def duration_ms(info: dict[str, Any]) -> int:
    """``MatchInfo.Duration`` in whole milliseconds (0 when absent or unreadable)."""
    try:
        return round(parse_duration(info.get("Duration") or "PT0S") * 1000)
    except ValueError:
        return 0


class ApiSource(Protocol):
    """What the server reads: a recordings directory, a synthetic world, or both merged.

    Every method answers ``None`` (or an empty list) when the source does not know the thing asked for;
    the server turns that into the API's 404.
    """

    def match_stats_body(self, match_id: str) -> bytes | None:
        """The match-stats body (JSON bytes)."""

    def history_items(self, xuid: int) -> list[HistoryItem]:
        """Every history entry of a player, any order."""

    def resolve_gamertag(self, gamertag: str) -> int | None:
        """The xuid of a gamertag (case-insensitive)."""

    def match_skill(self, match_id: str, xuids: list[int]) -> dict[str, Any] | None:
        """The skill body ``{"Value": [...]}`` for the requested players of a match."""

    def medal_metadata(self) -> dict[str, Any] | None:
        """The medal metadata body."""

    def ugc_body(self, kind: str, asset_id: str, version_id: str) -> bytes | None:
        """A UGC asset body; ``kind`` is the path segment (maps, mapModePairs, playlists, ugcGameVariants)."""

    def film_manifest(self, match_id: str) -> dict[str, Any] | None:
        """The film manifest of a match."""

    def film_chunk(self, asset_id: str, match_id: str, name: str) -> bytes | None:
        """The bytes of a film chunk named in a manifest."""

    def user(self, xuid: int) -> dict[str, Any] | None:
        """A profile user body."""

    def customization(self, xuid: int) -> dict[str, Any] | None:
        """A player's customization body (economy)."""

    def career_rank(self, xuid: int) -> dict[str, Any] | None:
        """A player's career rank body (economy)."""

    def career_track(self) -> dict[str, Any] | None:
        """The career reward track body (gamecms-hacs)."""

