"""Dagster at community scale (m): 2,000 registered players (dynamic partitions) × every month since 2021-11 on
the persistent SQLite instance the CLI creates, against the same figures at 50 players measured in the same run.

    .venv/bin/python -m benchmarks.bench_scale [--smoke]

Measured: ``players add`` (the CLI's code path, against the emulator), the delta sensor's tick
(``delta_sync_sensor`` evaluated with the instance, an emulator without rate limit: Dagster's part of a tick), the
asset page's GraphQL query (the UI's own ``PartitionHealthQuery`` for ``match_facts``, sent to a real
``dagster-webserver``) with 3 months of materializations per player recorded, and a partition backfill launch
(GraphQL ``launchPartitionBackfill`` of one month × every player, and of one player's every month).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import requests

from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.partitions import PLAYERS, partition_key
from halo_pipeline.testing import stop_process_group

REPO = Path(__file__).resolve().parents[1]
BASE_XUID = 2533274700000000

PARTITION_HEALTH = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
            }
          }
        }
      }
    }
  }
}"""
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict) -> tuple[float, dict]:
    t = time.perf_counter()
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=600)
    elapsed = time.perf_counter() - t
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors'][:2]}")
    return elapsed, body["data"]


def _measure(players: int, root: Path, emulator_url: str, webserver: bool = True) -> dict[str, float]:
    from halo_pipeline.api.resource import HaloApiResource
    from halo_pipeline.defs.sync.sensors import delta_sync_sensor
    from halo_pipeline.instance import add_player, ensure_home
    from halo_pipeline.storage.resource import WarehouseResource

    home, data = ensure_home(root / "home"), root / "data"
    months = FIRST_MONTH.until(Month.current())
    out: dict[str, float] = {"partitions": players * len(months)}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        t = time.perf_counter()
        instance.add_dynamic_partitions(PLAYERS, [str(BASE_XUID + i) for i in range(players)])
        out["register all (one call)"] = time.perf_counter() - t
        for i in range(players):  # three materialized months per player: the status the page computes over
            for month in months[-3:]:
                instance.report_runless_asset_event(dg.AssetMaterialization(
                    "match_facts", partition=str(partition_key(BASE_XUID + i, month))))
        api = HaloApiResource(api_url=emulator_url, requests_per_second=1000, max_in_flight=64)
        wh = WarehouseResource(data_dir=str(data))
        times = []
        for i in range(3):
            t = time.perf_counter()
            add_player(instance, wh.warehouse().landing, api.client, str(BASE_XUID + players + i))
            times.append(time.perf_counter() - t)
        out["players add"] = statistics.median(times)
        times = []
        for i in range(3):
            context = dg.build_sensor_context(instance=instance, cursor=str(i * 50),
                                              resources={"halo_api": api, "warehouse": wh})
            t = time.perf_counter()
            delta_sync_sensor(context)
            times.append(time.perf_counter() - t)
        out["delta sensor tick"] = statistics.median(times)
    if not webserver:
        return out

    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HALO_DATA_DIR": str(data)}
    server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("dagster-webserver did not start")
            time.sleep(0.5)
        key = {"path": ["match_facts"]}
        _graphql(url, PARTITION_HEALTH, {"assetKey": key})  # the code location is loaded on first use
        runs = [_graphql(url, PARTITION_HEALTH, {"assetKey": key})[0] for _ in range(3)]
        out["asset page (PartitionHealthQuery)"] = statistics.median(runs)
        month = months[-1]
        names = [str(partition_key(BASE_XUID + i, month)) for i in range(players)]
        elapsed, data_ = _graphql(url, LAUNCH_BACKFILL, {"backfillParams": {
            "assetSelection": [key], "partitionNames": names, "fromFailure": False}})
        assert data_["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", data_
        out["backfill launch: 1 month × every player"] = elapsed
        names = [str(partition_key(BASE_XUID, m)) for m in months]
        elapsed, data_ = _graphql(url, LAUNCH_BACKFILL, {"backfillParams": {
            "assetSelection": [key], "partitionNames": names, "fromFailure": False}})
        assert data_["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", data_
        out["backfill launch: 1 player × every month"] = elapsed
    finally:
        stop_process_group(server)
    return out


def run(smoke: bool = False):
    """The benchmark runner's entry point: each figure at 2,000 players with its 50-player value as baseline."""
    from benchmarks._common import Result
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld

    small, large = (2, 5) if smoke else (50, 2000)
    result = Result(f"(m) Dagster at scale: {large:,} vs {small} registered players × every month since "
                    f"{FIRST_MONTH.label}")
    with tempfile.TemporaryDirectory(prefix="halo-bench-scale-") as tmp, \
            Emulator(synthetic=SyntheticWorld(seed=3, players=1, months=1, matches_per_month=1)) as emulator:
        base = _measure(small, Path(tmp) / "small", emulator.url, webserver=not smoke)
        big = _measure(large, Path(tmp) / "large", emulator.url, webserver=not smoke)
    for name, value in big.items():
        if name == "partitions":
            continue
        result.add(name, value, "s", base[name], value / base[name] if base[name] else None)
    if smoke:
        result.notes.append("--smoke: the webserver's figures (asset page, backfill launches) are full mode only")
    result.notes.append(f"{int(big['partitions']):,} vs {int(base['partitions']):,} partitions per asset; "
                        "ratio = the large instance's figure / the small one's (1.0: flat in players)")
    return result


if __name__ == "__main__":
    run(smoke="--smoke" in sys.argv).print()
