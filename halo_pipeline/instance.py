"""The local Dagster instance (``DAGSTER_HOME``) the CLI, ``dagster dev`` and the daemon share."""

from __future__ import annotations

from pathlib import Path

#: Written into a new ``DAGSTER_HOME``: SQLite storage in that folder, one API-calling step at a time across
#: runs (the ``halo_api`` pool: the API's rate limit is per account, not per run), at most one queued sync
#: run per player (two runs never write the same partitions at once), four runs at a time.
DAGSTER_YAML = """\
# Created by halo-pipeline. Instance storage lives in this folder (SQLite).
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1          # pool "halo_api": assets that call the Halo API, one step at a time
    op_granularity_run_buffer: 1   # launch a run whose first step waits for the pool: runs overlap
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: halo/player      # one sync run per player at a time
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def ensure_home(home: Path) -> Path:
    """Create ``home`` with :data:`DAGSTER_YAML` unless it already has a ``dagster.yaml``; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
