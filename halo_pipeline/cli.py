"""``halo-pipeline``: what Dagster has no command for (players, emulator, a sync through Dagster, stats).

Everything else is plain Dagster: ``dagster dev``, ``dagster asset materialize``, UI backfills.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from halo_pipeline.ids import InvalidInput


def _data_dir() -> Path:
    return Path(os.environ.get("HALO_DATA_DIR") or "data").resolve()


def _instance():
    """The Dagster instance at ``$DAGSTER_HOME`` (default ``$HALO_DATA_DIR/dagster_home``)."""
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(_data_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("# Created by halo-pipeline: instance storage lives in this folder (SQLite).\n"
                          "telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


def _resources():
    from halo_pipeline.api.resource import HaloApiResource, WarehouseResource

    return HaloApiResource(), WarehouseResource()


class _Errors(click.Group):
    """Bad input and missing credentials end with one line on stderr and exit code 2, no traceback."""

    def invoke(self, ctx):
        from halo_pipeline.api.resource import MissingCredentials

        try:
            return super().invoke(ctx)
        except (InvalidInput, MissingCredentials) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Errors)
def main() -> None:
    """Keep Halo Infinite match records in a Parquet + DuckDB warehouse, orchestrated by Dagster.

    Environment: HALO_DATA_DIR (default data/), HALO_API_URL (an emulator; unset: the live API with
    HALO_SPARTAN_TOKEN / HALO_CLEARANCE_TOKEN), HALO_REFERENCE_DIR (default static/reference), DAGSTER_HOME
    (default $HALO_DATA_DIR/dagster_home).
    """


@main.command()
@click.option("--recordings", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder laid out like ../shared/halo_api to replay.")
@click.option("--synthetic-players", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--months", type=int, default=6, show_default=True)
@click.option("--matches-per-month", type=int, default=30, show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--rate-limit", type=float, default=None, help="Requests/s per service before answering 429.")
def emulator(recordings, synthetic_players, seed, months, matches_per_month, port, latency_ms, rate_limit):
    """Run the Halo API emulator on 127.0.0.1 until killed (point HALO_API_URL at it)."""
    from halo_pipeline.emulator.server import serve

    if recordings is None and synthetic_players <= 0:
        raise click.UsageError("give --recordings DIR and/or --synthetic-players N")
    serve(recordings, synthetic_players, seed, port, latency_ms, rate_limit, months=months,
          matches_per_month=matches_per_month)


@main.group()
def players() -> None:
    """Register, list and remove players (dynamic partitions of the Dagster instance)."""


@players.command("add")
@click.argument("player")
def players_add(player: str) -> None:
    """Register PLAYER: an xuid (2535445291321133 or xuid(…)) or a gamertag (resolved by the profile API)."""
    from halo_pipeline.players import add_player

    halo_api, warehouse = _resources()
    added = add_player(_instance(), warehouse.warehouse().landing, halo_api, player)
    click.echo(f"registered {added.xuid}" + (f" ({added.gamertag})" if added.gamertag else ""))


@players.command("list")
def players_list() -> None:
    """List registered players."""
    from halo_pipeline.players import registered

    for p in registered(_instance(), _resources()[1].warehouse().landing):
        click.echo(f"{p.xuid}\t{p.gamertag or ''}")


@players.command("remove")
@click.argument("xuid")
def players_remove(xuid: str) -> None:
    """Unregister XUID (its warehouse data is kept)."""
    from halo_pipeline.players import remove_player

    click.echo(f"removed {remove_player(_instance(), xuid)}")


@main.command()
@click.option("--player", "player_values", multiple=True, help="xuid of a registered player (repeatable).")
@click.option("--match-type", type=click.Choice(["all", "matchmaking", "custom", "local"]), default="all")
def sync(player_values, match_type) -> None:
    """Sync registered players through Dagster (runs show in the UI) and print the summary."""
    from halo_pipeline.definitions import defs
    from halo_pipeline.defs.sync.run import sync_players
    from halo_pipeline.ids import parse_xuid
    from halo_pipeline.partitions import PLAYERS
    from halo_pipeline.storage.catalog import summary

    instance = _instance()
    halo_api, warehouse = _resources()
    xuids = [parse_xuid(v) for v in player_values] or None
    registered_keys = set(instance.get_dynamic_partitions(PLAYERS))
    for x in xuids or ():
        if str(x) not in registered_keys:
            raise InvalidInput(f"player {x} is not registered: run `halo-pipeline players add {x}` first")
    if not (xuids or registered_keys):
        raise InvalidInput("no player registered: run `halo-pipeline players add <xuid|gamertag>` first")
    report = sync_players(defs, instance, halo_api, xuids, match_type=match_type, log=click.echo)
    click.echo("")
    click.echo(summary(warehouse.warehouse()))
    if not report.ok:
        failed = [f"{job} {label} (run {run_id})" for run_id, job, label, ok in report.runs if not ok]
        raise click.ClickException("failed runs: " + "; ".join(failed))


@main.command()
def stats() -> None:
    """Print per table row counts and date range, and per player the last sync."""
    from halo_pipeline.storage.catalog import summary

    click.echo(summary(_resources()[1].warehouse()))


@main.command()
@click.option("--players", "n_players", type=int, default=3, show_default=True)
@click.option("--months", type=int, default=6, show_default=True)
@click.option("--matches-per-month", type=int, default=30, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.pass_context
def demo(ctx, n_players, months, matches_per_month, seed) -> None:
    """Start the built-in emulator with synthetic players, register them, sync them and print the summary."""
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    from halo_pipeline.players import add_player
    from halo_pipeline.partitions import PLAYERS

    world = SyntheticWorld(seed=seed, players=n_players, months=months, matches_per_month=matches_per_month)
    with Emulator(synthetic=world) as emulator_server:
        os.environ["HALO_API_URL"] = emulator_server.url
        click.echo(f"emulator: {emulator_server.url} ({n_players} synthetic players, seed {seed})")
        instance = _instance()
        halo_api, warehouse = _resources()
        known = set(instance.get_dynamic_partitions(PLAYERS))
        for xuid in (p.xuid for p in world.players):
            if str(xuid) not in known:
                player = add_player(instance, warehouse.warehouse().landing, halo_api, str(xuid))
                click.echo(f"registered {player.xuid} ({player.gamertag})")
        ctx.invoke(sync)


if __name__ == "__main__":
    main()
