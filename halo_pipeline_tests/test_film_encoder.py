"""Synthetic films (:mod:`halo_pipeline.emulator.film_encoder`, :meth:`SyntheticWorld.film`): spnkr's own reader
decodes every synthetic highlight-events chunk to exactly the intended events, ``spnkr``'s ``check`` agrees
with the match stats, manifests parse with spnkr's ``Film``, and chunks look like the recorded ones."""

from __future__ import annotations

import json
import zlib
from collections import Counter

import pytest
from spnkr.film import highlight_events as spnkr_events
from spnkr.film.medals import MEDALS
from spnkr.models.discovery_ugc import Film
from spnkr.models.refdata import FilmChunkType, LifecycleMode, MedalNameId
from spnkr.models.stats import MatchStats

from halo_pipeline.emulator.film_encoder import (
    Filler,
    FilmEncodeError,
    encode_highlight_events,
    highlight_event,
    medal_code,
)
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.emulator.wire import HIGHLIGHT_CHUNK_NAME, film_asset_id, parse_duration
from halo_pipeline.transforms import film_decoder

XUID = 2533274912345678


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(5, players=3, months=1, matches_per_month=24)


def _body(world: SyntheticWorld, match_id: str) -> dict:
    return json.loads(world.match_stats_body(match_id))


def test_every_synthetic_chunk_decodes_to_the_intended_events(world: SyntheticWorld) -> None:
    versions = Counter()
    customs = 0
    for match_id in world.match_ids():
        body = _body(world, match_id)
        film = world.film(match_id)
        if body["MatchInfo"]["LifecycleMode"] == LifecycleMode.CUSTOM.value:
            assert film is None and world.film_manifest(match_id) is None  # custom games: no film (404)
            customs += 1
            continue
        assert film is not None and film.events
        events = list(spnkr_events.read(film.chunk, film.film_major_version))
        assert events == film.events, match_id
        assert film_decoder.read_highlight_events(film.chunk, film.film_major_version) == events
        assert spnkr_events.check(events, MatchStats(**body)) == [], match_id
        versions[film.film_major_version] += 1

        # what check does not look at: names, medal names, mode events, times, bots
        duration_ms = parse_duration(body["MatchInfo"]["Duration"]) * 1000
        humans = {int(p["PlayerId"][5:-1]): p for p in body["Players"] if p["PlayerType"] == 1}
        assert {e.xuid for e in events} <= set(humans)
        for event in events:
            assert event.gamertag == world.user(event.xuid)["gamertag"]
            assert 0 < event.time_ms < duration_ms
        assert [e.time_ms for e in events] == sorted(e.time_ms for e in events)
        assert len(set(events)) == len(events)  # no two identical events
        for xuid, player in humans.items():
            medals = Counter()
            for team in player["PlayerTeamStats"]:
                for medal in team["Stats"]["CoreStats"]["Medals"]:
                    medals[MedalNameId(medal["NameId"]).display_name] += medal["Count"]
            got = Counter(medal_code(MEDALS[e.medal_value]) if e.medal_name else e.medal_value
                          for e in events if e.xuid == xuid and e.event_type == "medal")
            assert got == Counter({medal_code(name): n for name, n in medals.items()}), xuid
        if any("CaptureTheFlagStats" in t["Stats"] or "OddballStats" in t["Stats"]
               for p in humans.values() for t in p["PlayerTeamStats"]):
            assert any(e.event_type == "mode" for e in events)
    assert customs, "the world holds custom games"
    assert {v for v in versions if v in (39, 40)} and {v for v in versions if v not in (39, 40)}, versions


def test_synthetic_chunks_look_recorded(world: SyntheticWorld) -> None:
    """Decompressed 1.5–4 kB per event, 4–7× compressible: as recorded chunks are (2.1–3.3 kB, 4.3–7.3×)."""
    for match_id in world.match_ids()[:6]:
        film = world.film(match_id)
        if film is None:
            continue
        raw = zlib.decompress(film.chunk)
        assert film.chunk[:2] == b"\x78\x5e"  # zlib levels 2–5, as recorded
        assert 1500 < len(raw) / len(film.events) < 4000
        assert 4 < len(raw) / len(film.chunk) < 7
        starts = {s % 8 for s, _ in film_decoder._find_patterns(raw)[0]}
        assert len(starts) >= 6  # events at any bit offset


def test_manifest_and_chunk_as_the_client_reads_them(world: SyntheticWorld) -> None:
    match_id = next(m for m in world.match_ids() if world.film(m) is not None)
    film = world.film(match_id)
    manifest = world.film_manifest(match_id)
    parsed = Film(**manifest)
    chunk, url = parsed.get_chunks_and_urls()[-1]
    assert chunk.chunk_type is FilmChunkType.HIGHLIGHT_EVENTS
    assert chunk.chunk_size == len(film.chunk)
    assert parsed.custom_data.film_major_version == film.film_major_version
    assert parsed.custom_data.film_length == round(parse_duration(_body(world, match_id)["MatchInfo"]["Duration"])
                                                   * 1000)
    assert url.endswith(f"/{film_asset_id(match_id)}/{match_id}/{HIGHLIGHT_CHUNK_NAME}")
    assert world.film_chunk(film_asset_id(match_id), match_id, HIGHLIGHT_CHUNK_NAME) == film.chunk
    assert world.film_chunk(film_asset_id(match_id), match_id, "filmChunk1") is None
    assert world.film_chunk(film_asset_id("00000000-0000-4000-8000-000000000000"), match_id,
                            HIGHLIGHT_CHUNK_NAME) is None
    assert world.film("00000000-0000-4000-8000-000000000000") is None
    assert world.film_manifest(match_id.upper())["CustomData"]["MatchId"] == match_id


def test_films_are_deterministic_and_leave_the_world_unchanged() -> None:
    """The same seed gives the same chunks whatever the order films are asked in (and beyond the cache), and
    asking for films does not change the matches the world generates next."""
    a = SyntheticWorld(9, players=2, months=1, matches_per_month=6)
    b = SyntheticWorld(9, players=2, months=1, matches_per_month=6)
    a.FILM_CACHE_SIZE = 1
    ids = a.match_ids()
    def chunks(world: SyntheticWorld, order) -> dict:
        return {m: (f.chunk if (f := world.film(m)) else None) for m in order}

    first = chunks(a, ids)
    assert chunks(b, reversed(ids)) == first
    assert chunks(a, ids) == first  # rebuilt after eviction
    fresh = SyntheticWorld(9, players=2, months=1, matches_per_month=6)
    player = [p.xuid for p in a.players]
    assert [a.match_stats_body(m) for m in a.add_matches(player, 2)] == [
        fresh.match_stats_body(m) for m in fresh.add_matches(player, 2)]


# -------------------------------------------------------------------------------------------------- encoder
def _oracle_patterns(data: bytes) -> list[tuple[str, int]]:
    """Bit positions of an xuid tail (last xuid byte 00, then 2d|25, c0) or an end marker at any bit offset:
    an implementation apart from the decoder's (8 shifted copies, ``bytes.find``)."""
    found = []
    n = len(data)
    value = int.from_bytes(data, "big")
    for shift in range(8):
        copy = ((value << shift) & ((1 << 8 * n) - 1)).to_bytes(n, "big")  # bit `shift` first
        for name, needle in (("xuid tail", b"\x00\x2d\xc0"), ("xuid tail", b"\x00\x25\xc0"),
                             ("end marker", b"\x00\x00\x2e\xe0")):
            at = copy.find(needle)
            while at >= 0:
                if 8 * (at + len(needle)) + shift <= 8 * n:  # not in the zero bits shifted in
                    found.append((name, 8 * at + shift))
                at = copy.find(needle, at + 1)
    return found


def test_filler_never_holds_an_xuid_tail_or_an_end_marker() -> None:
    import random

    for seed in (0, 1, 5):
        filler = Filler(seed, size=1 << 18)
        assert _oracle_patterns(filler._data) == []
        rng = random.Random(seed)
        for nbits in (16, 17, 23, 1000, 10_406, 14_000):
            bits = filler.bits(rng, nbits)
            assert bits >> (nbits - 1) == 1 and bits & 1 == 1  # starts and ends with a 1 bit
            # between two zero runs of the neighbours (the worst case), still nothing
            padded = (bits << 40) | 0  # 40 zero bits after
            data = padded.to_bytes((nbits + 40 + 7) // 8 + 5, "big")  # 40+ zero bits before
            assert _oracle_patterns(data) == []


def test_oracle_finds_planted_patterns() -> None:
    data = (int.from_bytes(bytes.fromhex("ffff002dc0ffff00002ee0ff"), "big") << 3).to_bytes(13, "big")
    assert _oracle_patterns(data) == [("xuid tail", 21), ("end marker", 61)]  # 5 leading zero bits


def test_encode_round_trip_all_versions_and_event_kinds() -> None:
    events = [highlight_event(XUID, "Zone Keeper", "medal", 1000, "Zone Guardian"),
              highlight_event(XUID, "Zone Keeper", "medal", 1000, "Double Kill"),
              highlight_event(XUID, "Ünïcødé 🙂", "kill", 2000),
              highlight_event(XUID + 1, "ABCDEFGHIJKLMNOP", "death", 3100),
              highlight_event(XUID + 2, "M", "mode", 4_000_000)]
    assert events[0].medal_name is None and events[0].event_type == "medal"  # no film code in spnkr's table
    assert events[1].medal_name == "Double Kill" and events[1].medal_value == 0
    for version in (30, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41):
        chunk = encode_highlight_events(events, version, seed=version)
        assert list(spnkr_events.read(chunk, version)) == events
    assert list(spnkr_events.read(encode_highlight_events([], 38, seed=1), 38)) == []


@pytest.mark.parametrize("event", [
    highlight_event(int(3e15), "X", "kill", 1),  # xuid out of spnkr's range
    highlight_event(XUID, "ABCDEFGHIJKLMNOPQ", "kill", 1),  # 17 UTF-16 units
    highlight_event(XUID, "X", "kill", 1)._replace(event_type="death"),  # type does not follow from the hint
    highlight_event(XUID, "X", "medal", 1, "Perfect")._replace(medal_name="Wingman"),
    highlight_event(XUID, "X", "kill", 2**32),
])
def test_encoder_refuses_events_spnkr_could_not_read_back(event) -> None:
    with pytest.raises(FilmEncodeError):
        encode_highlight_events([event], 38, seed=1)


def test_encoder_refuses_fields_that_form_an_end_marker() -> None:
    """A death at 0x0000bb80 ms: its type byte (…00) and time bytes (00 00 bb 80) hold ``00002ee0`` by chance,
    which spnkr would take for the end of the event: refused (the synthetic world draws other times)."""
    with pytest.raises(FilmEncodeError, match=r"other events|undecodable"):
        encode_highlight_events([highlight_event(XUID, "X", "death", 0xBB80)], 38, seed=1)
    encode_highlight_events([highlight_event(XUID, "X", "death", 0xBB80 + 4)], 38, seed=1)


def test_unknown_things_are_refused() -> None:
    with pytest.raises(FilmEncodeError):
        encode_highlight_events([], 32, seed=1)  # no recorded geometry for v32
    with pytest.raises(ValueError):
        highlight_event(XUID, "X", "assist", 1)
    with pytest.raises(KeyError):
        medal_code("Not A Medal")
