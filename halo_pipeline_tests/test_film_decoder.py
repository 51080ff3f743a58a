"""The fast highlight-events decoder (:mod:`halo_pipeline.transforms.film_decoder`) against spnkr's reader, the
reference: every recorded chunk, synthetic chunks, hand-built edge cases (bit offsets, the 480-bit and
20,000-bit limits, overlapping markers, xuid bounds, event types, gamertags) and a seeded fuzz of corrupt
chunks. On each input both give the same events, or both fail for the same reason."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import polars as pl
import pytest
from bitstring import ReadError
from spnkr.errors import FilmReadError
from spnkr.film import highlight_events as spnkr_events

from halo_pipeline.emulator.film_encoder import encode_highlight_events, highlight_event
from halo_pipeline.transforms import film_decoder as fd
from halo_pipeline.transforms.film import FilmDecodeError, highlight_events

VERSIONS = (30, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41)
MARKER = "00002ee0"


# ------------------------------------------------------------------------------------------------- outcomes
def spnkr_outcome(chunk: bytes, version: int) -> tuple[str, object]:
    """``("ok", events)`` or ``("error", reason)`` of spnkr's reader; any other exception fails the test."""
    try:
        return "ok", list(spnkr_events.read(chunk, version))
    except zlib.error:
        return "error", "zlib"
    except ReadError:  # bitstring's, an IndexError: before IndexError
        return "error", "short_event"
    except IndexError:
        return "error", "no_end_marker"
    except UnicodeDecodeError:
        return "error", "gamertag"
    except FilmReadError:
        return "error", "event_type"


def our_outcome(chunk: bytes, version: int) -> tuple[str, object]:
    try:
        return "ok", fd.read_highlight_events(chunk, version)
    except fd.HighlightEventsError as exc:
        return "error", exc.reason


def label(outcome: tuple[str, object]) -> str:
    """The reason of a failure, or "ok"."""
    return outcome[1] if outcome[0] == "error" else "ok"  # type: ignore[return-value]


def assert_same(chunk: bytes, version: int, what: str = "") -> tuple[str, object]:
    expected = spnkr_outcome(chunk, version)
    got = our_outcome(chunk, version)
    if got != expected:  # a short message: the event lists can be long
        if expected[0] == got[0] == "ok":
            diff = next((i for i, (a, b) in enumerate(zip(expected[1], got[1], strict=False)) if a != b), None)
            raise AssertionError(f"{what} v{version}: {len(expected[1])} events vs {len(got[1])}, first "
                                 f"difference at {diff}: {expected[1][diff] if diff is not None else ''} vs "
                                 f"{got[1][diff] if diff is not None else ''}")
        raise AssertionError(f"{what} v{version}: spnkr {expected[0]} {expected[1] if expected[0] == 'error' else ''}"
                             f", ours {got[0]} {got[1] if got[0] == 'error' else ''}")
    return expected


# ------------------------------------------------------------------------------------------- constants mirror
def test_constants_mirror_spnkr() -> None:
    assert fd.MEDAL_SORTING_WEIGHTS == spnkr_events._MEDAL_SORTING_WEIGHTS
    assert (fd.MIN_XUID, fd.MAX_XUID) == (spnkr_events._MIN_XUID, spnkr_events._MAX_XUID)
    assert (fd.MODE, fd.DEATH, fd.KILL) == (spnkr_events._MODE, spnkr_events._DEATH, spnkr_events._KILL)
    for version in VERSIONS:  # the field offsets: 480 bits in both layouts, gamertag first or after 12 bytes
        tokens = spnkr_events._tokens(version)
        assert tokens[0] == ("pad:96" if version in (39, 40) else "bytes:32")


# ------------------------------------------------------------------------------------------- recorded chunks
def recorded_chunks(halo_api_dir: Path) -> list[tuple[str, bytes, int]]:
    out = []
    for path in sorted((halo_api_dir / "film").glob("*.gzip")):
        version = int(path.name.split("_")[0]) if path.name[0].isdigit() else 37
        out.append((path.name, path.read_bytes(), version))
    assert len(out) >= 13, "the recorded film chunks are missing from ../shared/halo_api/film"
    return out


def test_every_recorded_chunk_decodes_exactly_as_spnkr(halo_api_dir: Path) -> None:
    total = 0
    for name, chunk, version in recorded_chunks(halo_api_dir):
        kind, events = assert_same(chunk, version, name)
        assert kind == "ok" and events, name
        total += len(events)
    assert total == 3970  # 245 + 528 + 249 + 350 + 373 + 335 + 6 + 230 + 640 + 417 + 226 + 365 + 6


def test_recorded_chunks_read_with_the_other_layout(halo_api_dir: Path) -> None:
    """The same bytes read with the other gamertag offset (other bytes, maybe not UTF-16): same outcome."""
    smallest = sorted(recorded_chunks(halo_api_dir), key=lambda c: len(c[1]))[:4]
    for name, chunk, version in smallest:
        for other in (38, 39, 40, 41):
            if other != version:
                assert_same(chunk, other, name)


def test_recorded_chunks_cut_at_many_lengths(halo_api_dir: Path) -> None:
    """The small recorded chunk cut anywhere: compressed (zlib errors) and decompressed then recompressed (an
    xuid near the end, a marker cut off, an event without its end)."""
    chunk = (halo_api_dir / "film" / "highlight_events.gzip").read_bytes()
    raw = zlib.decompress(chunk)
    outcomes = set()
    for cut in range(0, len(chunk), max(1, len(chunk) // 60)):
        outcomes.add(label(assert_same(chunk[:cut], 37, f"compressed[:{cut}]")))
    for cut in sorted({*range(0, len(raw), max(1, len(raw) // 80)), *range(len(raw) - 40, len(raw) + 1)}):
        result = assert_same(zlib.compress(raw[:cut]), 37, f"raw[:{cut}]")
        outcomes.add(label(result) if result[0] == "error" else len(result[1]))  # type: ignore[arg-type]
    assert {"zlib", "no_end_marker", 0, 6} <= outcomes, outcomes


# --------------------------------------------------------------------------------------- hand-built bit strings
def hexbits(text: str) -> str:
    return "".join(f"{b:08b}" for b in bytes.fromhex(text))


def xuid_bits(xuid: int, separator: str = "2d") -> str:
    return "".join(f"{b:08b}" for b in xuid.to_bytes(8, "little")) + hexbits(separator + "c0")


def field_bits(version: int, gamertag: bytes | str = "Spartan", type_hint: int = 50, time_ms: int = 61_000,
               is_medal: int = 0, medal: int = 0) -> str:
    name = gamertag.encode("utf-16le") if isinstance(gamertag, str) else gamertag
    name = name.ljust(32, b"\x00")[:32]
    tail = bytes([type_hint]) + time_ms.to_bytes(4, "big") + bytes([0, 0, 0, is_medal, 0, 0, 0, medal])
    fields = (bytes(12) + name + bytes(3) if version in (39, 40) else name + bytes(15)) + tail
    assert len(fields) == 60
    return "".join(f"{b:08b}" for b in fields)


def event(xuid: int = 2533274900000001, version: int = 38, gap: int = 333, **fields) -> str:
    """xuid + 2d c0 + ``gap`` one bits + the 60 bytes of fields + the end marker."""
    return xuid_bits(xuid) + "1" * gap + field_bits(version, **fields) + hexbits(MARKER)


def chunk_of(bits: str, pad: str = "1") -> bytes:
    bits += pad * (-len(bits) % 8)
    return zlib.compress(int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b"")


CASES: dict[str, tuple[str, int]] = {}
for _offset in range(8):
    CASES[f"event at bit offset {_offset}"] = ("1" * _offset + event(), 38)
    CASES[f"two events, second at offset {_offset}"] = (event() + "1" * _offset + event(time_ms=99), 36)
for _version in VERSIONS:
    CASES[f"layout v{_version}"] = ("1" * 5 + event(version=_version, gamertag="Ünïcødé 🙂"), _version)
for _sep in ("2d", "25", "2c", "ad", "05"):
    CASES[f"separator {_sep}"] = (xuid_bits(2533274900000001, _sep) + "1" * 333 + field_bits(38) + hexbits(MARKER), 38)
for _xuid in (int(2e15) - 1, int(2e15), int(2e15) + 1, int(3e15) - 1, int(3e15), 2**56 + 2533274900000001):
    CASES[f"xuid {_xuid}"] = (event(_xuid), 38)
for _e in (80, 200, 479, 480, 481, 19_967, 19_968, 19_969, 20_100):
    # the end marker _e bits after the xuid: a short event (< 480), exactly 480, the window's edge (a marker
    # must end within 20,000 bits of the xuid: 19,968 is the last start that does)
    CASES[f"marker {_e} bits after the xuid"] = (xuid_bits(2533274900000001) + "1" * (_e - 80) + hexbits(MARKER), 38)
    if _e >= 560:
        CASES[f"event of {_e} bits"] = (event(gap=_e - 560), 38)
for _hint, _medal in ((10, 0), (20, 0), (50, 0), (100, 1), (100, 0), (10, 1), (51, 1), (250, 1), (99, 1),
                      (100, 2), (0, 0), (255, 1)):
    CASES[f"type hint {_hint} is_medal {_medal}"] = (event(type_hint=_hint, is_medal=_medal, medal=14), 38)
CASES["unknown medal value"] = (event(type_hint=100, is_medal=1, medal=250), 38)
CASES["lone surrogate gamertag"] = (event(gamertag=b"\x00\xd8A\x00"), 38)
CASES["lone surrogate gamertag and unknown type"] = (event(gamertag=b"\x00\xd8A\x00", type_hint=7), 38)
CASES["gamertag with NULs inside and around"] = (event(gamertag=b"\x00\x00A\x00\x00\x00B\x00"), 40)
CASES["full 16-unit gamertag"] = (event(gamertag="ABCDEFGHIJKLMNOP"), 39)
CASES["xuid too close to the start"] = ("1" * 8 + hexbits("0900") + hexbits("2dc0") + event(), 38)
CASES["c0 in the first bits"] = (hexbits("c0") + "0" + hexbits("2dc0") + event(), 38)
CASES["xuid at the very end"] = ("1" * 3 + xuid_bits(2533274900000001), 38)
CASES["xuid, then the data ends"] = (event() + xuid_bits(2533274900000002) + "1" * 200, 38)
CASES["marker cut by the end of data"] = (xuid_bits(2533274900000001) + "1" * 600 + hexbits(MARKER)[:-1], 38)
CASES["overlapping markers (27 bits apart)"] = (
    xuid_bits(2533274900000001) + "1" * 333 + field_bits(38) + hexbits(MARKER) + hexbits(MARKER)[5:], 38)
CASES["two xuids share one marker"] = (
    xuid_bits(2533274900000001) + "1" * 90 + xuid_bits(2533274900000002) + "1" * 90 + field_bits(38)
    + hexbits(MARKER), 38)
CASES["marker at the xuid's first bit"] = (event(int.from_bytes(bytes.fromhex("00002ee033110900"), "little")), 38)
CASES["marker before the xuid only"] = (hexbits(MARKER) + "1" * 9 + xuid_bits(2533274900000001) + "1" * 900, 38)
CASES["empty"] = ("", 38)
CASES["one byte"] = ("11000000", 38)
CASES["c0 bytes only"] = (hexbits("c0" * 64), 38)
CASES["zeros then xuid tails"] = ("0" * 200 + hexbits("002dc0" * 10 + "0a002dc0" * 10), 38)
CASES["events over the 20,000-bit window of the first"] = (
    xuid_bits(2533274900000001) + "1" * 12_000 + event(2533274900000002, gap=9_000), 38)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_built_chunks(name: str) -> None:
    bits, version = CASES[name]
    for pad in ("1", "0"):  # the last partial byte filled with ones, then with zeros
        assert_same(chunk_of(bits, pad), version, name)


def test_hand_built_cases_cover_every_outcome() -> None:
    outcomes = {label(our_outcome(chunk_of(bits), v)) for bits, v in CASES.values()}
    assert outcomes == {"ok", "no_end_marker", "short_event", "gamertag", "event_type"}
    assert our_outcome(b"\x78\x9c\x01", 38) == ("error", "zlib")


# -------------------------------------------------------------------------------------------------- fuzzing
def _fuzz_bases() -> list[tuple[bytes, int]]:
    """Small realistic streams (decompressed) from the encoder: 6–10 events each, every layout."""
    rng = random.Random(7)
    bases = []
    for i, version in enumerate((36, 38, 39, 40, 41, 30)):
        events = [highlight_event(2533274900000000 + rng.randrange(10**6), f"Fuzz Spartan {j}",
                                  rng.choice(("kill", "death", "mode", "medal")), rng.randrange(1000, 900_000),
                                  rng.choice(("Double Kill", "Perfect", "Zone Guardian", "Wingman")))
                  for j in range(6 + i % 5)]
        events.sort(key=lambda e: e.time_ms)
        bases.append((zlib.decompress(encode_highlight_events(events, version, seed=i)), version))
    return bases


def _shift_insert(raw: bytes, at_bit: int, junk: str) -> bytes:
    bits = "".join(f"{b:08b}" for b in raw)
    bits = bits[:at_bit] + junk + bits[at_bit:]
    bits += "1" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _plant(raw: bytes, at: int, pattern: str) -> bytes:
    """``raw`` with ``pattern`` (bits) written over the bits from ``at`` (cut at the end of ``raw``)."""
    bits = "".join(f"{b:08b}" for b in raw)
    bits = (bits[:at] + pattern + bits[at + len(pattern):])[: len(bits)]
    return int(bits, 2).to_bytes(len(raw), "big")


def _mutate(raw: bytes, rng: random.Random, version: int) -> tuple[str, bytes, bool]:
    """``(what, data, compressed?)``: a mutation of the decompressed bytes (recompressed by the caller), or
    of the compressed chunk."""
    kind = rng.randrange(12)
    data = bytearray(raw)
    n = len(data)
    if kind >= 10:  # aimed at one event (found with the decoder; the verdict is still spnkr's)
        xuids, markers = fd._find_patterns(raw)
        start, _ = rng.choice(xuids)
        if kind == 10:  # an end marker less than 480 bits after the xuid
            return "short event", _plant(raw, start + rng.randrange(80, 480), hexbits(MARKER)), False
        end = next(m for m in markers if m >= start)
        gamertag = end - 480 + (96 if version in (39, 40) else 0)
        surrogate = hexbits(rng.choice(("00d8", "ffdb", "00dc", "00d84100")))
        return "bad gamertag", _plant(raw, gamertag + 16 * rng.randrange(0, 14), surrogate), False
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return "bit flips", bytes(data), False
    if kind == 1:
        return "cut", bytes(data[: rng.randrange(n)]), False
    if kind == 2:
        at = rng.randrange(n)
        if rng.random() < 0.5:
            del data[at: at + rng.randint(1, 3)]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 3))
        return "bytes deleted/inserted", bytes(data), False
    if kind == 3:
        junk = "".join(rng.choice("01") for _ in range(rng.randint(1, 23)))
        return "bits inserted", _shift_insert(raw, rng.randrange(8 * n), junk), False
    if kind == 4:
        pattern = rng.choice((hexbits("c0"), hexbits("2dc0"), hexbits("0a002dc0"), hexbits("0900" + "25c0"),
                              hexbits(MARKER), xuid_bits(2533274900000000 + rng.randrange(10**6))))
        return "pattern planted", _plant(raw, rng.randrange(8 * n), pattern), False
    if kind == 5:
        at, length = rng.randrange(n), rng.randint(1, 80)
        data[at: at + length] = bytes([rng.choice((0, 255))]) * len(data[at: at + length])
        return "run overwritten", bytes(data), False
    compressed = zlib.compress(raw)
    if kind == 6:
        return "compressed truncated", compressed[: rng.randrange(len(compressed))], True
    if kind == 7:
        flipped = bytearray(compressed)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return "compressed bit flips", bytes(flipped), True
    if kind == 8:
        return "random bytes", rng.randbytes(rng.randint(0, 300)), True
    return "random bytes, zlib header", b"\x78\x9c" + rng.randbytes(rng.randint(0, 300)), True


def test_fuzzed_chunks_fail_exactly_when_spnkr_fails() -> None:
    rng = random.Random(20261129)
    bases = _fuzz_bases()
    seen: dict[str, int] = {}
    for i in range(400):
        raw, version = bases[i % len(bases)]
        what, data, compressed = _mutate(raw, rng, version)
        if rng.random() < 0.15:
            version = rng.choice(VERSIONS)
        chunk = data if compressed else zlib.compress(data)
        key = label(assert_same(chunk, version, f"mutation {i} ({what})"))
        seen[key] = seen.get(key, 0) + 1
    # the fuzz reaches every outcome, not only zlib errors
    assert set(seen) == {"ok", "zlib", "no_end_marker", "short_event", "gamertag", "event_type"}, seen


# ---------------------------------------------------------------------------------------------- the wrapper
@pytest.mark.parametrize("name", ["lone surrogate gamertag", "type hint 99 is_medal 1",
                                  "marker 200 bits after the xuid", "xuid, then the data ends"])
def test_wrapper_turns_every_failure_into_film_decode_error(name: str) -> None:
    bits, version = CASES[name]
    with pytest.raises(FilmDecodeError) as info:
        highlight_events("m-1", chunk_of(bits), version)
    assert "\n" not in str(info.value) and "m-1" in str(info.value)


def test_wrapper_frame_equals_decoder_events() -> None:
    bits, version = CASES["two events, second at offset 3"]
    frame = highlight_events("m-2", chunk_of(bits), version)
    assert frame.select("xuid", "gamertag", "type_hint", "is_medal", "event_type", "time_ms", "medal_value",
                        "medal_name").rows() == [tuple(e) for e in fd.read_highlight_events(chunk_of(bits), version)]


# ------------------------------------------------------------------------------------------- the pipeline's path


@pytest.mark.parametrize("pool", [False, True], ids=["in process", "process pool"])
def test_highlight_events_of_landed_chunks_decoded_once_and_kept(halo_api_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, pool: bool) -> None:
    """``decode_highlight_events`` over landed chunks, in this process and in the process pool: each match's
    events as the decoder reads them, an undecodable chunk reported (not failing the others), a match without a
    chunk skipped, and a second call reading the kept events (no chunk decoded again)."""
    from halo_pipeline.services import derive
    from halo_pipeline.storage.warehouse import Warehouse

    monkeypatch.setattr(derive, "FILM_POOL_THRESHOLD", 1 if pool else 10**9)
    wh = Warehouse(tmp_path)
    chunks = sorted(recorded_chunks(halo_api_dir), key=lambda c: len(c[1]))[:4]
    ids = []
    for i, (_, chunk, version) in enumerate(chunks):
        ids.append(f"{i:02d}-match")
        wh.landing.put_film(ids[-1], version, chunk)
    wh.landing.put_film("99-broken", 37, b"not a zlib stream")
    warnings: list[str] = []
    events = derive.decode_highlight_events(wh, [*ids, "99-broken", "98-no-film"], warnings.append)
    expected = [highlight_events(mid, chunk, version) for mid, (_, chunk, version) in zip(ids, chunks, strict=True)]
    assert events.equals(pl.concat(expected))
    assert len(warnings) == 1 and "99-broken" in warnings[0]
    kept = {p: p.stat().st_mtime_ns for p in (wh.landing.root / derive.FILM_EVENTS).rglob("*.parquet")}
    assert len(kept) == len(ids)
    assert derive.decode_highlight_events(wh, ids).equals(events)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # read, not decoded and written again
