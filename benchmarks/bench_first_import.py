"""(a) First import through the emulator with the API's latency and rate limit.

A synthetic world (several players sharing matches) is served by the emulator with ``latency_ms`` and a
server-side token bucket of ``rate_limit`` requests/s per service. Each player's whole history is imported as
``halo-pipeline sync`` does it: one run per player over its range of months (match_history, raw_matches and
every stats table, Dagster in process). Figures: matches/s; requests per match per service; the ceiling =
rate limit ÷ calls per match on the busiest service, and the ratio to it; 429s answered by the emulator.
Same-run baseline: a naive loop (one match at a time: stats, then skill, then film, like LevelUp) over a
subset of the same world's matches, through the same client and limiter.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks._common import EmulatorProcess, Result, cpu_seconds, peak_rss_mib, require_success, timer
from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.matches.assets import match_history, raw_matches
from halo_pipeline.defs.stats.assets import highlight_events, stats_tables, xuid_aliases
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.runner import QUIET  # Dagster's console at WARNING; every event is still in the instance
from halo_pipeline.storage.resource import WarehouseResource

SYNC_ASSETS = [match_history, raw_matches, stats_tables, highlight_events, xuid_aliases]
LAST = "2025-06-01"  # the synthetic world ends in 2025-06


def world_spec(matches: int, players: int = 4, seed: int = 11, months: int = 6) -> dict:
    """The :class:`SyntheticWorld` arguments of a world of at least ``matches`` distinct matches over ``players``
    players (they share some): ``seed``, ``players``, ``months``, ``matches_per_month``."""
    per_month = max(1, round(matches / (players * months) * 1.25))
    while True:
        spec = {"seed": seed, "players": players, "months": months, "matches_per_month": per_month}
        if len(SyntheticWorld(**spec).match_ids()) >= matches:
            return spec
        per_month = int(per_month * 1.2) + 1


def world_of(matches: int, players: int = 4, seed: int = 11, months: int = 6) -> SyntheticWorld:
    """The world of :func:`world_spec`."""
    return SyntheticWorld(**world_spec(matches, players, seed, months))


def naive_loop(api_resource: HaloApiResource, world: SyntheticWorld, n: int) -> float:
    """matches/s of a one-at-a-time loop (stats → skill → film manifest) over ``n`` of the world's matches."""
    ids = world.match_ids()[:n]

    async def go() -> None:
        async with api_resource.client() as api:
            for mid in ids:
                await api.match_stats(mid)
                for call in (api.match_skill(mid, [world.players[0].xuid]), api.film_highlights(mid)):
                    try:
                        await call
                    except Exception:  # noqa: BLE001 - 404s of customs / films, as the pipeline sees them
                        pass

    with timer() as t:
        run_api(go())
    return n / t[0]


def import_all(world: SyntheticWorld, url: str, data_dir: Path, rate: float, first: str = "2025-01-01"
               ) -> tuple[float, bool]:
    """Run the first import of every player of ``world`` (months ``first`` … the world's last: ``halo-pipeline
    sync`` pages a new player's whole history first and plans exactly its months); returns (wall seconds,
    every run succeeded)."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(p.xuid) for p in world.players])
    resources = {"halo_api": HaloApiResource(api_url=url, requests_per_second=rate),
                 "warehouse": WarehouseResource(data_dir=str(data_dir))}
    ok = True
    with timer() as t:
        for player in world.players:
            result = dg.materialize(SYNC_ASSETS, instance=instance, resources=resources,
                                    tags=partition_range_tags(player.xuid, first, LAST), run_config=QUIET,
                                    raise_on_error=False)
            ok = ok and result.success
    return t[0], ok


def run(smoke: bool = False, matches: int | None = None, latency_ms: float = 80.0, rate: float = 5.0) -> Result:
    if smoke:
        matches, latency_ms, rate = matches or 12, 20.0, 25.0
    matches = matches or 2000
    result = Result(f"(a) First import: ≥ {matches:,} matches, {latency_ms:g} ms latency, {rate:g} req/s per service")
    with timer() as t:
        spec = world_spec(matches, players=2 if smoke else 4, months=1 if smoke else 6)
        world = SyntheticWorld(**spec)
    n = len(world.match_ids())
    result.notes.append(f"{n:,} distinct matches, {len(world.players)} players, a theater film for every matchmade "
                        f"match (world built in {t[0]:.1f} s); the emulator runs in its own process")
    with EmulatorProcess(**spec, latency_ms=latency_ms, rate_limit=rate) as emulator, \
            tempfile.TemporaryDirectory(prefix="halo-bench-import-") as tmp:
        naive = naive_loop(HaloApiResource(api_url=emulator.url, requests_per_second=rate), world,
                           5 if smoke else 40)
        time.sleep(1.5)  # let the emulator's buckets refill
        emulator.reset_counts()
        cpu_before = cpu_seconds(exclude=(emulator.process.pid,))
        seconds, ok = import_all(world, emulator.url, Path(tmp), rate)
        cpu = cpu_seconds(exclude=(emulator.process.pid,)) - cpu_before
        require_success(ok, "a first-import run")
        counts = emulator.counts()
    by_service = counts["by_service"]
    n = counts["requests"].get("match_stats", n)  # the matches the histories hold in the imported months
    per_match = {service: calls / n for service, calls in sorted(by_service.items())}
    busiest = max(per_match, key=per_match.get)
    ceiling = rate / per_match[busiest]
    speed = n / seconds
    result.add("first import", speed, "matches/s", ceiling, speed / ceiling, "≥ 0.9 of the ceiling",
               speed / ceiling >= 0.9 if not smoke else None)
    result.add(f"ceiling ({busiest}: {per_match[busiest]:.3f} calls/match)", ceiling, "matches/s")
    result.add("naive one-at-a-time loop (same run)", naive, "matches/s", ceiling, naive / ceiling)
    result.add("first import vs naive loop", speed / naive, "×")
    result.add("CPU per imported match (process + pool workers)", cpu / n * 1000, "ms", target="≤ 120 ms",
               ok=cpu / n <= 0.12 if not smoke else None)
    for service, calls in per_match.items():
        result.add(f"requests per match: {service}", calls, "req/match")
    result.add("429 answered by the emulator", counts["rate_limited"], "responses", target="0 unhonoured",
               ok=True if counts["rate_limited"] == 0 else None)
    result.add("peak RSS of the benchmark process", peak_rss_mib(), "MiB")
    result.notes.append(f"{seconds:.1f} s wall for {n:,} matches; requests by route: {counts['requests']}")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
