"""The Dagster instance (``DAGSTER_HOME``) the CLI, ``dagster dev`` and the daemon share, and what lives in it:
the registered players (Dagster has no command for adding dynamic partition keys; ``halo-pipeline players``
fills that gap)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from halo_pipeline.ids import InvalidInput, parse_xuid
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.services.players import OpenClient, Player, gamertag_of, resolve
from halo_pipeline.storage.files import remove_tree
from halo_pipeline.storage.landing import PROFILE, RawLanding
from halo_pipeline.storage.warehouse import Warehouse

#: Written into a new ``DAGSTER_HOME``: SQLite storage in that folder, one API-calling step at a time across
#: runs (the ``halo_api`` pool: the API's rate limit is per account, not per run), at most one queued sync
#: run per player (two runs never write the same partitions at once), four runs at a time, and the daemon's
#: run monitoring (a run stuck starting or canceling is failed; slots left by finished runs are freed). Runs whose
#: process died are recovered by :mod:`halo_pipeline.recovery`, with or without a daemon.
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
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  free_slots_after_run_end_seconds: 60
"""


#: The file Dagster's own commands (``dagster``, ``dg``) read variables from, in the folder they run in.
DOTENV = ".env"


def instance_home(data_dir: Path, cwd: Path, environ: dict[str, str]) -> tuple[Path, bool]:
    """Where the project's Dagster instance lives, and whether ``.env`` must be written so that Dagster's own
    commands run from ``cwd`` find the same instance.

    In order: ``$DAGSTER_HOME`` when exported; else ``DAGSTER_HOME`` of ``cwd/.env`` (what ``dagster`` and ``dg``
    read there); else ``<data_dir>/dagster_home`` (``./dagster_home`` when the data is on object storage: an
    instance is a local folder) — written to ``cwd/.env`` by the caller (second value True).
    """
    from dotenv import dotenv_values

    if environ.get("DAGSTER_HOME"):
        return Path(environ["DAGSTER_HOME"]), False
    declared = dotenv_values(cwd / DOTENV).get("DAGSTER_HOME") if (cwd / DOTENV).is_file() else None
    if declared:
        return Path(declared), False
    local = getattr(data_dir, "protocol", "") in ("", "file", "local")
    return (Path(data_dir) if local else cwd) / "dagster_home", True


def declare_home(home: Path, cwd: Path) -> Path:
    """Append ``DAGSTER_HOME=<home>`` to ``cwd/.env`` (created if absent), so that ``dagster``/``dg`` commands run
    from ``cwd`` use the instance ``halo-pipeline`` uses (they read ``.env`` there); returns the file."""
    path = cwd / DOTENV
    text = path.read_text() if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "# Written by halo-pipeline: Dagster's commands run from this folder use this instance.\n"
                    f"DAGSTER_HOME={home.resolve()}\n")
    return path


def ensure_home(home: Path) -> Path:
    """Create ``home`` with :data:`DAGSTER_YAML` unless it already has a ``dagster.yaml``; returns ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


# --------------------------------------------------------------------------------------------------- players


def add_player(instance: dg.DagsterInstance, landing: RawLanding, open_client: OpenClient, value: str) -> Player:
    """Register a player: resolve it (:func:`halo_pipeline.services.players.resolve`), land its profile, then add
    its partition key to the dynamic partitions ``players`` (the commit point).

    Raises:
        InvalidInput: malformed or unknown xuid/gamertag, or the player is already registered.
    """
    player, profile = resolve(open_client, value)
    if str(player.xuid) in instance.get_dynamic_partitions(PLAYERS):
        raise InvalidInput(f"player {player.xuid} ({player.gamertag or 'gamertag unknown'}) is already registered")
    if profile is not None:
        landing.put(PROFILE, str(player.xuid), profile)
    instance.add_dynamic_partitions(PLAYERS, [str(player.xuid)])
    return player


def ensure_registered(instance: dg.DagsterInstance, xuids: list[int]) -> list[int]:
    """Register the players of ``xuids`` not registered yet, without any API call (their xuid is known: a LevelUp
    store's, another warehouse's); returns those added."""
    known = set(instance.get_dynamic_partitions(PLAYERS))
    added = [x for x in dict.fromkeys(xuids) if str(x) not in known]
    if added:
        instance.add_dynamic_partitions(PLAYERS, [str(x) for x in added])
    return added


def registered_digest(xuids: Iterable[int | str]) -> str:
    """A short digest of a set of registered players (the ``friends`` materialization records the one it saw, so
    that a sync knows whether the registered players changed since)."""
    return hashlib.sha256(",".join(sorted(str(x) for x in xuids)).encode()).hexdigest()[:16]


def registered(instance: dg.DagsterInstance, landing: RawLanding) -> list[Player]:
    """Registered players with the gamertag of their landed profile (``None`` when unknown)."""
    return [Player(int(key), gamertag_of(landing, key)) for key in instance.get_dynamic_partitions(PLAYERS)]


def remove_player(instance: dg.DagsterInstance, warehouse: Warehouse, value: str, purge: bool = False) -> int:
    """Unregister a player. Its warehouse data stays unless ``purge``: then every table's partitions of the
    player and its sync state are deleted (raw landing is shared by match id across players and is kept).

    Raises:
        InvalidInput: malformed xuid, or the player is not registered.
    """
    xuid = parse_xuid(value)
    if str(xuid) not in instance.get_dynamic_partitions(PLAYERS):
        raise InvalidInput(f"player {xuid} is not registered")
    instance.delete_dynamic_partition(PLAYERS, str(xuid))
    if purge and warehouse.root.exists():
        for folder in warehouse.root.glob(f"*/player={xuid}"):
            remove_tree(folder)
    return xuid
