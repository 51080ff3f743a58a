"""(g) Film decode: highlight-events chunks decoded by spnkr's reader and by ``film_decoder``, on one core.

Every recorded chunk of ``../shared/halo_api/film`` (12 matches, film versions 30–41, 17 kB–1.6 MB
decompressed) is decoded ``reps`` times by each reader, interleaved chunk by chunk so that the load of other
processes hits both alike, in this one process pinned to one core. Figures: CPU milliseconds per match (process
time) of each, and the ratio spnkr ÷ ours (target ≥ 5×); the zlib decompression alone (which both pay) as the
floor; the same on synthetic chunks (the emulator's films). Every decode is checked equal to spnkr's events.

    .venv/bin/python -m benchmarks.bench_film_decode [--smoke]
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Iterator

from spnkr.film import highlight_events as spnkr_events

from benchmarks._common import Result, film_chunks, require_success
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.transforms.film_decoder import read_highlight_events


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Pin this process to one core (Linux) for the block; yields which, or why not."""
    if not hasattr(os, "sched_getaffinity"):
        yield "not pinned (no sched_setaffinity here)"
        return
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield f"pinned to core {core}"
    finally:
        os.sched_setaffinity(0, before)


def _cpu_ms(fn, *args) -> tuple[float, object]:
    start = time.process_time()
    out = fn(*args)
    return (time.process_time() - start) * 1000, out


def measure(chunks: list[tuple[str, bytes, int]], reps: int) -> tuple[float, float, float, int]:
    """``(spnkr ms/match, ours ms/match, zlib ms/match, events)``, CPU time, ``reps`` interleaved passes."""
    spnkr_ms = ours_ms = zlib_ms = 0.0
    events = 0
    for _ in range(reps):
        for match_id, chunk, version in chunks:
            ms, expected = _cpu_ms(lambda c, v: list(spnkr_events.read(c, v)), chunk, version)
            spnkr_ms += ms
            ms, got = _cpu_ms(read_highlight_events, chunk, version)
            ours_ms += ms
            zlib_ms += _cpu_ms(zlib.decompress, chunk)[0]
            require_success(got == expected, f"film_decoder equal to spnkr on {match_id} (v{version})")
            events += len(expected)  # type: ignore[arg-type]
    n = reps * len(chunks)
    return spnkr_ms / n, ours_ms / n, zlib_ms / n, events // reps


def synthetic_chunks(count: int) -> list[tuple[str, bytes, int]]:
    """The highlight chunks of the first ``count`` matchmade matches of a synthetic world."""
    world = SyntheticWorld(seed=3, players=3, months=1, matches_per_month=max(4, count * 2))
    out = []
    for match_id in world.match_ids():
        film = world.film(match_id)
        if film is not None:
            out.append((match_id, film.chunk, film.film_major_version))
        if len(out) == count:
            break
    return out


def run(smoke: bool = False) -> Result:
    result = Result("(g) Film decode: spnkr's reader vs film_decoder, one core")
    reps = 1 if smoke else 4
    with one_core() as pinned:
        result.notes.append(f"one process, {pinned}; CPU time (process_time); {reps} interleaved pass(es)")
        recorded = film_chunks()
        if recorded is None:
            result.notes.append("recorded chunks SKIPPED: ../shared/halo_api/film is absent")
        else:
            if smoke:  # the path, not the speed: the two smallest chunks
                recorded = sorted(recorded, key=lambda c: len(c[1]))[:2]
            spnkr_ms, ours_ms, zlib_ms, events = measure(recorded, reps)
            result.add("recorded: spnkr reader", spnkr_ms, "ms/match")
            result.add("recorded: film_decoder", ours_ms, "ms/match", spnkr_ms, spnkr_ms / ours_ms,
                       "≥ 5× faster (ratio = spnkr ÷ ours)", spnkr_ms / ours_ms >= 5 if not smoke else None)
            result.add("recorded: zlib.decompress alone (floor)", zlib_ms, "ms/match")
            result.notes.append(f"recorded: {len(recorded)} chunks, {events:,} events per pass, all equal")
        synthetic = synthetic_chunks(1 if smoke else 8)
        spnkr_ms, ours_ms, zlib_ms, events = measure(synthetic, 1 if smoke else 2)
        result.add("synthetic: spnkr reader", spnkr_ms, "ms/match")
        result.add("synthetic: film_decoder", ours_ms, "ms/match", spnkr_ms, spnkr_ms / ours_ms,
                   "≥ 5× faster (ratio = spnkr ÷ ours)", spnkr_ms / ours_ms >= 5 if not smoke else None)
        result.notes.append(f"synthetic: {len(synthetic)} chunks (emulator films), {events:,} events per pass")
    result.notes.append(f"load average during the run: {os.getloadavg()[0]:.1f} (other processes share the cores)")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
