"""(b) Delta sync when nothing is new: ``players`` registered players, all synced, no new match.

Each player's sync state (``sync_meta``) holds a watermark at its newest history match; the delta sensor is
ticked until every player has been planned once (``PLAYERS_PER_TICK`` per tick, round-robin). Figures:
history calls per player (target ≤ 1), run requests (must be 0), the time of a tick. Same-run baseline: the
time the API's rate limit alone imposes on a tick (its history calls ÷ the rate limit, all on halostats).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from benchmarks._common import Result, timer
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.sync.sensors import PLAYERS_PER_TICK, delta_sync_sensor
from halo_pipeline.emulator.server import CombinedSource, Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.services.state import state_path
from halo_pipeline.storage.files import write_parquet_atomic
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import SYNC_META_SCHEMA


def synced_state(wh: Warehouse, xuid: int, newest: datetime, matches: int) -> None:
    """Write the ``sync_meta`` row of a player fully synced up to ``newest``."""
    write_parquet_atomic(pl.DataFrame({
        "xuid": [xuid], "last_sync_at": [datetime.now(UTC)], "last_match_id": ["x"], "last_match_at": [newest],
        "total_matches": [matches], "failed_matches": [0], "watermark": [newest], "months_synced": [1],
        "sync_status": ["ok"]}, schema=SYNC_META_SCHEMA), state_path(wh, xuid))


def run(smoke: bool = False) -> Result:
    players, latency_ms, rate = (8, 10.0, 50.0) if smoke else (200, 80.0, 5.0)
    result = Result(f"(b) Delta sync, nothing new: {players} players, {latency_ms:g} ms latency, {rate:g} req/s")
    per_world = 67
    worlds = [SyntheticWorld(seed=100 + i, players=min(per_world, players - i * per_world), months=1,
                             matches_per_month=4 if smoke else 10)
              for i in range((players + per_world - 1) // per_world)]
    xuids = [p.xuid for w in worlds for p in w.players]
    assert len(set(xuids)) == players, "synthetic xuids collided"
    source = CombinedSource(worlds) if len(worlds) > 1 else worlds[0]
    with Emulator(synthetic=source, latency_ms=latency_ms, rate_limit=rate) as emulator, \
            tempfile.TemporaryDirectory(prefix="halo-bench-delta-") as tmp:
        wh = Warehouse(Path(tmp))
        for world in worlds:
            for p in world.players:
                items = world.history_items(p.xuid)
                synced_state(wh, p.xuid, max((i.start_time for i in items), default=None), len(items))
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, [str(x) for x in xuids])
        resources = {"halo_api": HaloApiResource(api_url=emulator.url, requests_per_second=rate),
                     "warehouse": WarehouseResource(data_dir=tmp)}
        time.sleep(1.0)
        emulator.reset_counts()
        cursor, ticks, requests = None, [], 0
        planned = 0
        while planned < players:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            with timer() as t:
                out = delta_sync_sensor(context)
            ticks.append(t[0])
            cursor = out.cursor
            requests += len(out.run_requests or [])
            planned += min(PLAYERS_PER_TICK, players)
        counts = emulator.counts()
    calls = counts["requests"].get("match_history", 0)
    per_player = calls / players
    tick = sum(ticks) / len(ticks)
    bound = min(PLAYERS_PER_TICK, players) * per_player / rate
    result.add("history calls per player", per_player, "calls", target="≤ 1", ok=per_player <= 1)
    result.add("run requests", requests, "runs", target="0", ok=requests == 0)
    result.add("sensor tick", tick, "s/tick", bound, tick / bound)
    result.add("sensor tick per player", tick / min(PLAYERS_PER_TICK, players) * 1000, "ms/player")
    result.add("429 answered by the emulator", counts["rate_limited"], "responses")
    result.notes.append(f"{len(ticks)} ticks of ≤ {PLAYERS_PER_TICK} players; baseline = the tick's history "
                        f"calls at {rate:g} req/s (the rate limit alone)")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
