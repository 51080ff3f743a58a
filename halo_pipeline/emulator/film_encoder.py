"""Encode highlight events into a film highlight-events chunk that spnkr's reader decodes, for synthetic films.

The layout is the one :func:`spnkr.film.highlight_events.read` reads (see
:mod:`halo_pipeline.transforms.film_decoder` for the format): a zlib stream of a bit string where each event
is an xuid (64 bits little-endian) + ``2d c0``, then, a version-dependent number of bits later, the 60 bytes
of fields (gamertag UTF-16LE, type hint, time_ms big-endian, is_medal, medal value) and the end marker
``00002ee0``. Like the recorded chunks, events lie at any bit offset, the distance from an xuid to its end
marker is the one of the recorded chunks of that film major version (11,086–17,006 bits), and the bytes
between events are filler shaped like theirs (runs of ``00``, runs of ``ff``, and varied bytes), so that a
chunk is about as large and as compressible as a recorded one (~2.5 kB per event decompressed, 5–6× zlib).

Filler never holds an xuid or an end marker: both patterns need a run of at least 10 zero bits followed by
the bits ``10``; in filler every run of 4 or more zero bits is followed by ``11`` and filler starts and ends
with a 1 bit. The fields of an event can still form one by chance (e.g. a time_ms of ``0x0000bb80`` in a
``death`` event holds an end marker), so :func:`encode_highlight_events` decodes what it wrote and raises
:class:`FilmEncodeError` when that is not exactly the events: :func:`synthetic_film` then draws other times.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spnkr.film.highlight_events import HighlightEvent
from spnkr.film.medals import MEDALS
from spnkr.models.refdata import LifecycleMode, MedalNameId

from halo_pipeline.emulator.wire import parse_duration, parse_player_id
from halo_pipeline.transforms.film_decoder import (
    DEATH,
    KILL,
    MAX_XUID,
    MEDAL_SORTING_WEIGHTS,
    MIN_XUID,
    MODE,
    HighlightEventsError,
    read_highlight_events,
)

#: Bits from an event's xuid to its end marker, by film major version, as in the recorded chunks
#: (``../shared/halo_api/film``): the versions :func:`synthetic_film` picks from.
XUID_TO_MARKER_BITS: dict[int, int] = {
    30: 17006, 31: 17006, 33: 17006, 34: 15534, 35: 15406, 36: 11086, 37: 11086, 38: 11086,
    39: 12526, 40: 12526, 41: 15406,
}
FILM_VERSIONS = tuple(sorted(XUID_TO_MARKER_BITS))

#: The 15 bytes after ``2d c0`` in the recorded chunks.
_HEADER = bytes.fromhex("00000000045800000000000003a596")
_END_MARKER = bytes.fromhex("00002ee0")
_MEDAL_HINT = 100  # the type hint of medal events in the recorded chunks (a medal sorting weight)
_CODE_OF_MEDAL = {name: code for code, name in MEDALS.items()}
#: Medals of the stats with no film code in spnkr's table get a byte spnkr does not know: the event is still
#: a ``medal`` (so :func:`spnkr.film.highlight_events.check` counts it), its medal_name decodes to None.
_UNKNOWN_MEDAL_CODES = {
    name: code for name, code in zip(
        sorted(m.display_name for m in MedalNameId if m.display_name not in _CODE_OF_MEDAL),
        (c for c in range(256) if c not in MEDALS), strict=False)
}


class FilmEncodeError(ValueError):
    """The events cannot be written so that spnkr's reader gives them back (the message says which)."""


def medal_code(name: str) -> int:
    """The film byte of a medal (spnkr's table, ``spnkr/film/medals.py``); for the few medals of
    ``MedalNameId`` that table lacks (e.g. ``Zone Guardian``), a byte the table does not use, so that the
    event decodes as a ``medal`` whose medal_name is None.

    Raises:
        KeyError: ``name`` is no medal spnkr knows.
    """
    code = _CODE_OF_MEDAL.get(name)
    return code if code is not None else _UNKNOWN_MEDAL_CODES[name]


def highlight_event(xuid: int, gamertag: str, event_type: str, time_ms: int, medal_name: str | None = None
                    ) -> HighlightEvent:
    """The event as spnkr's reader returns it after :func:`encode_highlight_events`: type hint 50/20/10 for
    kill/death/mode and 100 for medals; medal_value is the medal's film byte for medals, else the byte the
    recorded chunks carry there (kill 0, death 1, mode 2).

    Raises:
        ValueError: an unknown ``event_type``; a medal without ``medal_name`` (or one spnkr does not know).
    """
    if event_type == "medal":
        if medal_name is None:
            raise ValueError("a medal event needs a medal_name")
        code = medal_code(medal_name)
        return HighlightEvent(xuid, gamertag, _MEDAL_HINT, True, "medal", time_ms, code, MEDALS.get(code))
    hints = {"kill": (KILL, 0), "death": (DEATH, 1), "mode": (MODE, 2)}
    if event_type not in hints:
        raise ValueError(f"unknown event type {event_type!r}")
    hint, value = hints[event_type]
    return HighlightEvent(xuid, gamertag, hint, False, event_type, time_ms, value, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- filler
class Filler:
    """Plausible bytes between events, cut from a reservoir built once from ``seed`` (runs of ``00`` and
    ``ff``, and "varied" bytes from a pool of fragments, which is what makes a chunk ~5× compressible).

    Every run of ≥ 4 zero bits is followed by ``11``; :meth:`bits` starts and ends with a 1 bit.
    """

    def __init__(self, seed: int, size: int = 1 << 20) -> None:
        rng = random.Random(f"film-filler/{seed}")
        # Varied bytes always have bits 4 and 0 set: no run of 4 zero bits inside or between them.
        pool = [bytes(b | 0x11 for b in rng.randbytes(rng.randint(3, 24))) for _ in range(48)]
        out = bytearray()
        after_zeros = False
        while len(out) < size:
            roll = rng.random()
            if roll < 0.40 and not after_zeros:
                out += bytes(rng.choice((4, 8, 12, 16, 24, 32, 48, 64, 96, 140)))
                after_zeros = True
                continue
            if roll < 0.55:
                out += b"\xff" * rng.choice((4, 6, 8, 16, 32, 64, 128))
            else:
                start = len(out)
                for _ in range(rng.randint(1, 6)):
                    out += rng.choice(pool)
                if after_zeros:
                    out[start] |= 0xC0  # after a zero run: "11"
            after_zeros = False
        self._data = bytes(out)

    def bits(self, rng: random.Random, nbits: int) -> int:
        """``nbits`` (≥ 16) of filler as an int: whole bytes from a random place of the reservoir, their first
        and last byte set to ``ff`` (a cut zero run is thus bounded by ``11``), then 1 bits up to ``nbits``."""
        nbytes, ones = divmod(nbits, 8)
        if nbytes < 2:
            raise ValueError(f"filler of {nbits} bits is too short (16 at least)")
        if nbytes > len(self._data):
            raise ValueError(f"filler of {nbits} bits is longer than the reservoir")
        at = rng.randrange(0, len(self._data) - nbytes + 1)
        piece = bytearray(self._data[at:at + nbytes])
        piece[0] = piece[-1] = 0xFF
        return (int.from_bytes(piece, "big") << ones) | ((1 << ones) - 1)


class _BitStream:
    """Whole bytes out of pieces of any bit length (MSB first)."""

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._carry = 0
        self._carry_bits = 0

    def add(self, value: int, nbits: int) -> None:
        value |= self._carry << nbits
        nbits += self._carry_bits
        keep = nbits & 7
        self._out.append((value >> keep).to_bytes(nbits >> 3, "big"))
        self._carry, self._carry_bits = value & ((1 << keep) - 1), keep

    def getvalue(self) -> bytes:
        """The bytes so far; a last partial byte is completed with 1 bits."""
        tail = b""
        if self._carry_bits:
            pad = 8 - self._carry_bits
            tail = bytes([((self._carry << pad) | ((1 << pad) - 1)) & 0xFF])
        return b"".join(self._out) + tail


# ---------------------------------------------------------------------------------------------------- encoding
def _fields(event: HighlightEvent, late_gamertag: bool) -> bytes:
    """The 60 bytes before the end marker (see :mod:`halo_pipeline.transforms.film_decoder`)."""
    gamertag = event.gamertag.encode("utf-16le")
    if len(gamertag) > 32 or event.gamertag != event.gamertag.strip("\x00"):
        raise FilmEncodeError(f"gamertag {event.gamertag!r}: more than 16 UTF-16 units, or NUL at an end")
    gamertag = gamertag.ljust(32, b"\x00")
    tail = bytes([event.type_hint]) + event.time_ms.to_bytes(4, "big") + bytes(
        [0, 0, 0, 1 if event.is_medal else 0, 0, 0, 0, event.medal_value])
    if late_gamertag:  # 39, 40: 12 bytes (as recorded: a few flags), the gamertag, 3 bytes
        return bytes.fromhex("000000000100010000000000") + gamertag + bytes(3) + tail
    return gamertag + bytes.fromhex("010100000000000000000000000000") + tail


def _check_event(event: HighlightEvent) -> None:
    if not MIN_XUID < event.xuid < MAX_XUID:
        raise FilmEncodeError(f"xuid {event.xuid}: spnkr reads only xuids between 2e15 and 3e15 (exclusive)")
    if not 0 <= event.time_ms < 1 << 32 or not 0 <= event.type_hint < 256 or not 0 <= event.medal_value < 256:
        raise FilmEncodeError(f"event out of range (time_ms uint32, type_hint/medal_value uint8): {event}")
    medal = event.is_medal and event.type_hint in MEDAL_SORTING_WEIGHTS
    expected = "medal" if medal else {MODE: "mode", DEATH: "death", KILL: "kill"}.get(event.type_hint)
    if expected != event.event_type or event.medal_name != (MEDALS.get(event.medal_value) if medal else None):
        raise FilmEncodeError(f"event_type/medal_name do not follow from type_hint, is_medal, medal_value: {event}")


def encode_highlight_events(events: Sequence[HighlightEvent], film_major_version: int, seed: int,
                            filler: Filler | None = None) -> bytes:
    """A highlight-events chunk (zlib bytes, as a film blob serves it) that spnkr's reader decodes to exactly
    ``events``, in order.

    Args:
        events: spnkr ``HighlightEvent`` tuples (e.g. from :func:`highlight_event`); time_ms in milliseconds
            since the match start. Their order is kept (a real chunk is in time order).
        film_major_version: one of :data:`XUID_TO_MARKER_BITS` (sets the layout and the event length).
        seed: places and filler bits (deterministic).
        filler: a reservoir to cut filler from (build one per world: it costs ~50 ms); default: one of
            ``seed``.

    Returns:
        The zlib-compressed chunk: ~2.5 kB per event before compression, any bit offset for any event.

    Raises:
        FilmEncodeError: an event spnkr could not read back (xuid out of range, gamertag longer than 16
            UTF-16 units, inconsistent type/medal fields), or fields that by chance form an xuid or end marker
            (the chunk would not decode to ``events``; another time_ms avoids it).
    """
    if film_major_version not in XUID_TO_MARKER_BITS:
        raise FilmEncodeError(f"film major version {film_major_version}: not one of {FILM_VERSIONS}")
    for event in events:
        _check_event(event)
    rng = random.Random(f"film/{seed}/{film_major_version}")
    filler = filler or Filler(seed)
    late = film_major_version in (39, 40)
    body_bits = XUID_TO_MARKER_BITS[film_major_version] - 64 - 16 - 8 * len(_HEADER) - 480
    stream = _BitStream()
    stream.add(filler.bits(rng, lead := rng.randint(1150, 12700)), lead)
    header = int.from_bytes(b"\x2d\xc0" + _HEADER, "big")
    header_bits = 16 + 8 * len(_HEADER)
    marker = int.from_bytes(_END_MARKER, "big")
    for event in events:
        stream.add(int.from_bytes(event.xuid.to_bytes(8, "little"), "big"), 64)
        stream.add(header, header_bits)
        stream.add(filler.bits(rng, body_bits), body_bits)
        stream.add(int.from_bytes(_fields(event, late), "big"), 480)
        stream.add(marker, 32)
        # After the marker, up to the next xuid: short (≈ 1 kbit) or long (≈ 12 kbit), as recorded.
        gap = rng.randint(900, 1300) if rng.random() < 0.55 else rng.randint(9000, 14000)
        stream.add(filler.bits(rng, gap), gap)
    chunk = zlib.compress(stream.getvalue(), 3)  # "78 5e" like the recorded chunks (levels 2-5)
    try:
        decoded = read_highlight_events(chunk, film_major_version)
    except HighlightEventsError as exc:
        raise FilmEncodeError(f"the fields form an undecodable pattern: {exc}") from exc
    if decoded != list(events):
        pairs = enumerate(zip(decoded, events, strict=False))
        first = next((i for i, (a, b) in pairs if a != b), min(len(decoded), len(events)))
        raise FilmEncodeError(f"the chunk would decode to other events (from event {first}: the fields of an "
                              "event form an xuid or end marker by chance)")
    return chunk


# ---------------------------------------------------------------------------------------------- a match's film
@dataclass(frozen=True)
class SyntheticFilm:
    """A synthetic match's theater film: its major version, highlight-events chunk and the events in it."""

    film_major_version: int
    chunk: bytes
    events: list[HighlightEvent]


def _played_ms(player: dict[str, Any], duration_ms: int) -> int:
    try:
        played = round(parse_duration(player["ParticipationInfo"]["TimePlayed"]) * 1000)
    except (KeyError, TypeError, ValueError):
        played = duration_ms
    return max(2000, min(played, duration_ms))


def _mode_event_count(stats: dict[str, Any]) -> int:
    """A few mode events a player's team stats imply: flag captures and returns, skull grabs, zone captures."""
    for key, fields in (("CaptureTheFlagStats", ("FlagCaptures", "FlagReturns")), ("OddballStats", ("SkullGrabs",)),
                        ("ZonesStats", ("StrongholdCaptures",))):
        if key in stats:
            return sum(int(stats[key].get(f, 0)) for f in fields)
    return 0


def _time(rng: random.Random, last: int) -> int:
    """A time in [1000, last] ms whose bytes cannot form an end marker with the type byte before them: a time
    below 2^16 whose bits start ``101110111`` (3000, 6000 + 0–1, 12,000 + 0–3, … ms) would (the encoder's
    check would refuse it; drawing again here saves encoding the whole chunk again)."""
    while True:
        t = rng.randint(1000, last)
        if not (t < 1 << 16 and t >> (t.bit_length() - 9) == 0b101110111):
            return t


def match_events(body: dict[str, Any], gamertags: dict[int, str], rng: random.Random) -> list[HighlightEvent]:
    """The highlight events of a match-stats body, in time order: for each human player (bots have none), one
    ``kill`` per kill, one ``death`` per death, one ``medal`` per medal counted (the medal's film byte), and a
    few ``mode`` events; times (ms since the match start) within the time the player played.

    Args:
        body: the match-stats body (wire JSON, as the API serves it).
        gamertags: xuid → gamertag of the humans (the profile's); a human without one is left out.
        rng: draws the times.
    """
    duration_ms = max(2000, round(parse_duration(body["MatchInfo"].get("Duration") or "PT0S") * 1000))
    events: list[HighlightEvent] = []
    for player in body["Players"]:
        xuid = parse_player_id(player.get("PlayerId", ""))
        gamertag = gamertags.get(xuid) if xuid is not None else None
        if gamertag is None or player.get("PlayerType") != 1:
            continue
        last = _played_ms(player, duration_ms) - 1
        kills = deaths = modes = 0
        medals: Counter = Counter()
        for team in player["PlayerTeamStats"]:
            core = team["Stats"]["CoreStats"]
            kills += core["Kills"]
            deaths += core["Deaths"]
            modes += _mode_event_count(team["Stats"])
            for medal in core["Medals"]:
                medals[MedalNameId(medal["NameId"]).display_name] += medal["Count"]
        kill_times = sorted(_time(rng, last) for _ in range(kills))
        mine = [highlight_event(xuid, gamertag, "kill", t) for t in kill_times]
        mine += [highlight_event(xuid, gamertag, "death", _time(rng, last)) for _ in range(deaths)]
        mine += [highlight_event(xuid, gamertag, "mode", _time(rng, last)) for _ in range(modes)]
        for name, count in sorted(medals.items()):  # a medal comes with a kill (a different one each time)
            times = rng.sample(kill_times, count) if count <= len(kill_times) else [
                _time(rng, last) for _ in range(count)]
            mine += [highlight_event(xuid, gamertag, "medal", t, name) for t in times]
        seen: set[HighlightEvent] = set()
        for i, drawn in enumerate(mine):  # no two identical events (recorded films almost never have any)
            event = drawn
            while event in seen:
                event = event._replace(time_ms=_time(rng, last))
            seen.add(event)
            mine[i] = event
        events += mine
    events.sort(key=lambda e: e.time_ms)  # stable: a medal after the kill of the same millisecond
    return events


def synthetic_film(body: dict[str, Any], gamertags: dict[int, str], seed: int | str,
                   filler: Filler | None = None) -> SyntheticFilm | None:
    """The theater film of a synthetic match: a film major version from the recorded range (drawn from
    ``seed``: about one in five uses the 39/40 layout), the events of :func:`match_events` and their chunk.

    Deterministic: the same body, gamertags and seed give the same bytes. ``None`` for a custom game (no
    film is served for them: the emulator answers 404, as for any match without a film).

    Raises:
        FilmEncodeError: no attempt of 16 gave a chunk that decodes to the events (never seen: it needs
            every draw of times to form a pattern).
    """
    if body["MatchInfo"].get("LifecycleMode") != LifecycleMode.MATCHMADE.value:
        return None
    rng = random.Random(f"film/{seed}/{body['MatchId']}")
    version = rng.choice(FILM_VERSIONS)
    filler = filler or Filler(0)
    error: FilmEncodeError | None = None
    for _attempt in range(16):
        events = match_events(body, gamertags, rng)
        try:
            return SyntheticFilm(version, encode_highlight_events(events, version, rng.getrandbits(32), filler),
                                 events)
        except FilmEncodeError as exc:
            error = exc
    raise FilmEncodeError(f"match {body['MatchId']}: {error}")
