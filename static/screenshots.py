"""Screenshots of the Dagster UI for the README (not run in CI): the asset graph, a partitioned asset's Partitions
and Checks tabs, and a sync run, taken with headless Chromium from the real webserver on the instance of the
folder it runs in (run `halo-pipeline demo` there first).

    .venv/bin/python static/screenshots.py [--out static/screenshots] [--chromium /usr/bin/chromium]

Needs Debian's chromium (`apt-get install chromium`); writes PNGs named after the page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from dotenv import dotenv_values

from halo_pipeline.testing import dagster_webserver, graphql

REPO = Path(__file__).resolve().parents[1]
PAGES = {
    "graph": "/asset-groups",
    "partitions": "/assets/match_facts?view=partitions&partition={partition}",
    "checks": "/assets/match_facts?view=checks",
}
PLAYERS_QUERY = ('{ assetNodeOrError(assetKey: {path: ["match_facts"]}) { ... on AssetNode '
                 '{ partitionKeysByDimension { name partitionKeys } } } }')
LATEST_SYNC_RUN = '{ runsOrError(filter: {pipelineName: "sync_job", statuses: [SUCCESS]}, limit: 1) ' \
                  '{ ... on Runs { results { runId } } } }'


def shoot(chromium: str, url: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1600,1000",
                        "--virtual-time-budget=20000", f"--screenshot={out}", url],
                       check=True, capture_output=True, timeout=180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "static" / "screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    env = dict(os.environ)
    env.update({k: v for k, v in dotenv_values(Path.cwd() / ".env").items() if v})
    args.out.mkdir(parents=True, exist_ok=True)
    with dagster_webserver(REPO / "workspace.yaml", env, Path.cwd()) as url:
        graphql(url, "mutation { setNuxSeen }")  # the one-time "join the community" dialog stays closed
        runs = graphql(url, LATEST_SYNC_RUN)["runsOrError"]["results"]
        pages = PAGES | ({"run": f"/runs/{runs[0]['runId']}"} if runs else {})
        players = graphql(url, PLAYERS_QUERY)["assetNodeOrError"]["partitionKeysByDimension"]
        keys = {d["name"]: d["partitionKeys"] for d in players}
        month = max(m for m in keys["month"] if m <= "2025-06-01")  # the demo world's last month
        pages["partitions"] = pages["partitions"].format(partition=quote(f"{month}|{keys['player'][0]}"))
        for name, path in pages.items():
            shoot(args.chromium, url + path, args.out / f"{name}.png")
            print(f"{args.out / f'{name}.png'}: {url}{path}")


if __name__ == "__main__":
    main()
