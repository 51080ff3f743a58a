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
    from halo_pipeline.storage.warehouse import data_location

    return data_location()  # a local Path, or a UPath for s3://…


def _instance(recover: bool = True):
    """The project's Dagster instance: ``$DAGSTER_HOME``, else ``DAGSTER_HOME`` of ``./.env``, else
    ``$HALO_DATA_DIR/dagster_home`` — then declared in ``./.env`` so that ``dagster``/``dg`` commands run from here
    use it too (:func:`halo_pipeline.instance.instance_home`) — after recovering the runs whose process died
    (``recover``; see :mod:`halo_pipeline.recovery`)."""
    import dagster as dg

    from halo_pipeline.instance import declare_home, ensure_home, instance_home
    from halo_pipeline.storage.files import check_writable_dir

    check_writable_dir(_data_dir(), "HALO_DATA_DIR")
    home, undeclared = instance_home(_data_dir(), Path.cwd(), dict(os.environ))
    home = ensure_home(home.resolve())
    if undeclared:
        click.echo(f"Dagster instance: {home} (declared in {declare_home(home, Path.cwd())} for dagster/dg "
                   "commands run from this folder)", err=True)
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    if recover:
        from halo_pipeline.recovery import recover as recover_dead_runs

        recover_dead_runs(instance)  # logs one line per run recovered, on stderr
    return instance


def _resources():
    from halo_pipeline.api.resource import HaloApiResource
    from halo_pipeline.storage.resource import WarehouseResource

    return HaloApiResource(), WarehouseResource()


def _defs():
    """What builds the code location (loaded when a run is launched: a sync with nothing new launches none)."""
    from halo_pipeline.definitions import defs

    return defs


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
    HALO_SPARTAN_TOKEN / HALO_CLEARANCE_TOKEN), HALO_REFERENCE_DIR (default: the packaged files), DAGSTER_HOME
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
@click.option("--faults", default=None, metavar="SPEC",
              help="Inject faults, e.g. '429:burst=5,every=40;5xx:rate=0.05;seed=1' "
                   "(grammar: halo_pipeline/emulator/faults.py).")
def emulator(recordings, synthetic_players, seed, months, matches_per_month, port, latency_ms, rate_limit, faults):
    """Run the Halo API emulator on 127.0.0.1 until killed (point HALO_API_URL at it)."""
    from halo_pipeline.emulator.faults import parse_faults
    from halo_pipeline.emulator.server import serve

    if recordings is None and synthetic_players <= 0:
        raise click.UsageError("give --recordings DIR and/or --synthetic-players N")
    parse_faults(faults)  # a bad spec fails here, in one line, before anything is loaded
    serve(recordings, synthetic_players, seed, port, latency_ms, rate_limit, months=months,
          matches_per_month=matches_per_month, faults=faults)


@main.group()
def players() -> None:
    """Register, list and remove players (dynamic partitions of the Dagster instance)."""


@players.command("add")
@click.argument("player")
def players_add(player: str) -> None:
    """Register PLAYER: an xuid (2535445291321133 or xuid(…)) or a gamertag (resolved by the profile API)."""
    from halo_pipeline.instance import add_player

    halo_api, warehouse = _resources()
    added = add_player(_instance(), warehouse.warehouse().landing, halo_api.client, player)
    click.echo(f"registered {added.xuid}" + (f" ({added.gamertag})" if added.gamertag else ""))


@players.command("list")
def players_list() -> None:
    """List registered players."""
    from halo_pipeline.instance import registered

    for p in registered(_instance(), _resources()[1].warehouse().landing):
        click.echo(f"{p.xuid}\t{p.gamertag or ''}")


@players.command("remove")
@click.argument("xuid")
@click.option("--purge", is_flag=True, help="Also delete the player's warehouse partitions and sync state.")
def players_remove(xuid: str, purge: bool) -> None:
    """Unregister XUID (its warehouse data is kept unless --purge)."""
    from halo_pipeline.instance import remove_player

    wh = _resources()[1].warehouse()
    removed = remove_player(_instance(), wh, xuid, purge=purge)
    if purge and wh.catalog_path.exists():  # the purged partitions leave the serving store too
        from halo_pipeline.storage.serving import update

        update(wh, players=[removed])
    click.echo(f"removed {removed}" + (" and purged its warehouse data" if purge else " (data kept)"))


@main.group()
def friends() -> None:
    """Declare who each registered player (the owner) plays with, with nicknames.

    Friends added here are kept in $HALO_DATA_DIR/friends.json; friends can also be declared in the players
    file ($HALO_PLAYERS_FILE, default players.yaml: `friends:` under a player entry), which wins when both
    name one. A friend need not be registered (--register also syncs them)."""


def _friends_changed(instance, warehouse, owner: int, rederive: bool) -> None:
    """Refresh the friends table (and re-derive the owner's months with --rederive), or say how."""
    from halo_pipeline.runner import refresh_friends

    report = refresh_friends(_defs(), instance, warehouse, owner, rederive)
    if not report.ok:
        failed = "; ".join(f"{job} {label} (run {run_id})" for run_id, job, label, ok in report.runs if not ok)
        raise click.ClickException(f"failed runs: {failed}")
    if not rederive:
        click.echo(f"past matches show the change once re-derived: `halo-pipeline friends add|remove … --rederive`, "
                   f"or `halo-pipeline backfill --player {owner} --from … --to …` (0 API calls)")


@friends.command("add")
@click.argument("owner")
@click.argument("friend")
@click.option("--nickname", default=None, help="How the reports name the friend (1-32 printable characters).")
@click.option("--register", is_flag=True, help="Also register the friend (their matches are synced too).")
@click.option("--rederive", is_flag=True, help="Re-derive the owner's synced months now (zero API calls).")
def friends_add(owner: str, friend: str, nickname: str | None, register: bool, rederive: bool) -> None:
    """Declare FRIEND (xuid or gamertag) a friend of the registered player OWNER (xuid or gamertag); adding a
    friend again with another --nickname renames them."""
    from halo_pipeline.instance import add_player, registered
    from halo_pipeline.services.friends import add_friend

    instance = _instance()
    halo_api, warehouse = _resources()
    wh = warehouse.warehouse()
    players = registered(instance, wh.landing)
    stored, new = add_friend(wh, players, halo_api.client, owner, friend, nickname)
    click.echo(f"{'added' if new else 'renamed'} friend {stored.name} ({stored.xuid}) of {stored.owner}")
    if register and stored.xuid not in {p.xuid for p in players}:
        player = add_player(instance, wh.landing, halo_api.client, str(stored.xuid))
        click.echo(f"registered {player.xuid}" + (f" ({player.gamertag})" if player.gamertag else ""))
    _friends_changed(instance, warehouse, stored.owner, rederive)


@friends.command("remove")
@click.argument("owner")
@click.argument("friend")
@click.option("--rederive", is_flag=True, help="Re-derive the owner's synced months now (zero API calls).")
def friends_remove(owner: str, friend: str, rederive: bool) -> None:
    """Forget FRIEND (xuid, gamertag or nickname) of OWNER, declared with `friends add`."""
    from halo_pipeline.instance import registered
    from halo_pipeline.services.friends import players_file, remove_friend

    instance = _instance()
    warehouse = _resources()[1]
    wh = warehouse.warehouse()
    players = registered(instance, wh.landing)
    removed = remove_friend(wh, players, owner, friend, players_file())
    click.echo(f"removed friend {removed.name} ({removed.xuid}) of {removed.owner}")
    _friends_changed(instance, warehouse, removed.owner,
                     rederive and removed.owner in {p.xuid for p in players})


@friends.command("list")
@click.argument("owner", required=False)
def friends_list(owner: str | None) -> None:
    """List declared friends (of OWNER, an xuid or gamertag, when given): owner, friend xuid, gamertag,
    nickname, source (players.yaml | cli). Zero API calls."""
    from halo_pipeline.instance import registered
    from halo_pipeline.services.friends import find_player, list_friends, players_file

    wh = _resources()[1].warehouse()
    players = registered(_instance(), wh.landing)
    wanted = None
    if owner is not None:
        found = find_player(players, owner)
        if found is None:
            raise InvalidInput(f"player {owner.strip()!r} is not registered")
        wanted = found.xuid
    for f in list_friends(wh, players, players_file()):
        if wanted is None or f.owner == wanted:
            click.echo(f"{f.owner}\t{f.xuid or '?'}\t{f.gamertag or ''}\t{f.nickname or ''}\t{f.source}")


@main.command()
@click.option("--player", "player_values", multiple=True, help="xuid of a registered player (repeatable).")
@click.option("--match-type", type=click.Choice(["all", "matchmaking", "custom", "local"]), default="all")
@click.option("--full", is_flag=True, help="Walk the whole history (first import, repair) instead of a delta.")
@click.option("--since", default=None, help="With --full: ignore matches before this date (YYYY-MM[-DD]).")
@click.option("--max-matches", type=int, default=None, help="With --full: only the newest N matches.")
@click.option("--all-months", is_flag=True, help="Then materialize every month without a partition yet (months "
              "without matches: zero API calls, ≈ 0.5–1 s of Dagster bookkeeping each), so the UI shows none missing.")
@click.option("--with-assets/--without-assets", default=None,
              help="Also land the images not landed yet: medal icons, map/mode/playlist/variant thumbnails, career "
                   "rank icons (LevelUp's --with-assets). Default: $HALO_WITH_ASSETS (1/true), else off.")
def sync(player_values, match_type, full, since, max_matches, all_months, with_assets) -> None:
    """Sync registered players through Dagster (runs show in the UI) and print the summary.

    Default: a delta sync (only the months with matches newer than each player's watermark; a player
    never synced gets a first import)."""
    from halo_pipeline.ids import parse_xuid
    from halo_pipeline.months import Month
    from halo_pipeline.partitions import PLAYERS
    from halo_pipeline.runner import sync_players
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
    if since:
        Month.parse(since)
    if with_assets is None:
        with_assets = os.environ.get("HALO_WITH_ASSETS", "").strip().lower() in ("1", "true", "yes", "on")
    report = sync_players(_defs(), instance, halo_api, warehouse, xuids, match_type=match_type, full=full,
                          since=since, max_matches=max_matches, log=click.echo, all_months=all_months,
                          with_assets=with_assets)
    if report.runs:  # nothing new, nothing run: the warehouse is as `halo-pipeline stats` last showed it
        click.echo("")
        click.echo(summary(warehouse.warehouse()))
    if not report.ok:
        failed = [f"{job} {label} (run {run_id})" for run_id, job, label, ok in report.runs if not ok]
        raise click.ClickException("failed runs: " + "; ".join(failed))


@main.command()
@click.option("--player", "player_value", required=True, help="xuid of a registered player.")
@click.option("--from", "first", required=True, help="First month, YYYY-MM.")
@click.option("--to", "last", required=True, help="Last month, YYYY-MM.")
@click.option("--assets", default=None, help="Comma-separated asset names (default: every derived asset).")
@click.option("--refetch", is_flag=True, help="Call the API again for matches already landed (--force-*).")
@click.option("--dry-run", is_flag=True, help="List the partitions and match ids it would touch; write nothing.")
def backfill(player_value, first, last, assets, refetch, dry_run) -> None:
    """Re-materialize a player's months from raw landing (zero API calls) as one Dagster run.

    With --refetch the matches are fetched again first (sync_job with raw_matches' refetch: true)."""
    from halo_pipeline.partitions import PLAYERS
    from halo_pipeline.runner import run_backfill
    from halo_pipeline.services.backfill import plan_backfill

    instance = _instance()
    warehouse = _resources()[1]
    defs = _defs()()
    known = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    plan = plan_backfill(warehouse.warehouse(), instance.get_dynamic_partitions(PLAYERS), known, player_value,
                         first, last, assets, refetch)
    for line in plan.describe():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing written")
        return
    report = run_backfill(defs, instance, plan, warehouse)
    if not report.ok:
        failed = ", ".join(f"{job} (run {rid})" for rid, job, _, ok in report.runs if not ok)
        raise click.ClickException(f"backfill failed: {failed}")
    click.echo(f"backfill done: run {report.runs[0][0]}")


@main.command()
@click.option("--repair", is_flag=True, help="Free what belongs to dead runs (never touches a live run).")
@click.option("--fail-run", "fail_runs", multiple=True, metavar="RUN_ID",
              help="With --repair: also mark this in-progress run failed when its owner cannot be checked "
                   "(refused when it is alive). Repeatable.")
def doctor(repair, fail_runs) -> None:
    """Show runs in progress (pid, heartbeat, alive or dead), pool slots and who holds them, stale claims, failed
    matches waiting for retry; with --repair, recover dead runs and free their slots.

    Exit code 1 when something needs a repair (and --repair was not given)."""
    from halo_pipeline.doctor import diagnose
    from halo_pipeline.doctor import repair as run_repair

    if fail_runs and not repair:
        raise click.UsageError("--fail-run needs --repair")
    instance = _instance(recover=False)
    wh = _warehouse()
    if repair:
        for line in run_repair(instance, wh, list(fail_runs)):
            click.echo(line)
        click.echo("")
    report = diagnose(instance, wh)
    click.echo("\n".join(report.lines))
    if report.problems and not repair:
        sys.exit(1)


@main.command()
def auth() -> None:
    """Sign in to Xbox Live (spnkr's OAuth flow) and print the refresh token to store in the environment as
    HALO_OAUTH_REFRESH_TOKEN. Needs HALO_AZURE_CLIENT_ID and HALO_AZURE_CLIENT_SECRET (an Azure AD app)."""
    import asyncio

    from halo_pipeline.api.auth import authenticate

    token = asyncio.run(authenticate())
    click.echo("Store this in your environment (it is a secret; it is not written anywhere else):")
    click.echo(f"export HALO_OAUTH_REFRESH_TOKEN='{token}'")


@main.command()
@click.option("--rebuild", is_flag=True, help="Build a new store from every Parquet file (then publish it).")
@click.option("--reconcile", is_flag=True, help="Compare every Parquet file with the store and apply the "
              "differences (files changed outside Dagster).")
@click.option("--check", is_flag=True, help="Only compare the store with every Parquet partition (row counts "
              "and numeric sums); exit 1 on a mismatch or a partition not applied yet.")
def serve(rebuild, reconcile, check) -> None:
    """Update the serving store (warehouse/halo.duckdb: tables + mv_* roll-ups) through Dagster.

    Default: the partitions materialized since its last update (a catalog_job run, shown in the UI)."""
    from halo_pipeline.runner import SyncReport, execute
    from halo_pipeline.storage import serving

    wh = _resources()[1].warehouse()
    if check:
        result = serving.compare(wh)
        for m in result.mismatches[:50]:
            click.echo(f"MISMATCH {m.partition.table} {m.partition.month}|{m.partition.owner}: {m.what} "
                       f"store={m.store} parquet={m.parquet}")
        for p in result.pending[:50]:
            click.echo(f"pending  {p.table} {p.month}|{p.owner}")
        click.echo(f"{result.compared} partitions compared, {len(result.mismatches)} mismatch(es), "
                   f"{len(result.pending)} pending")
        if result.mismatches or result.pending:
            raise SystemExit(1)
        return
    report = SyncReport()
    config = {"ops": {"warehouse_catalog": {"config": {"rebuild": rebuild, "reconcile": reconcile}}}}
    ok = execute(_defs(), "catalog_job", _instance(), report, label="serve", run_config=config)
    if not ok:
        raise click.ClickException(f"serving store update failed (run {report.runs[0][0]})")
    st = serving.state(wh) or {}
    click.echo(f"serving store: {wh.catalog_path} → {serving.published_slot(wh).name} (update {st.get('seq')}, "
               f"run {report.runs[0][0]})")


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
    from halo_pipeline.instance import add_player
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
                player = add_player(instance, warehouse.warehouse().landing, halo_api.client, str(xuid))
                click.echo(f"registered {player.xuid} ({player.gamertag})")
        ctx.invoke(sync, player_values=(), match_type="all", full=False, since=None, max_matches=None,
                   all_months=True, with_assets=True)


# ---- moving in: LevelUp's stores, another warehouse ------------------------------------------------------------


@main.group("import")
def import_group() -> None:
    """Import the history another tool kept (LevelUp)."""


@import_group.command("levelup")
@click.argument("levelup_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--player", "player_value", default=None, help="Only this player (gamertag or xuid).")
@click.option("--dry-run", is_flag=True, help="List players, months and match counts; write nothing.")
def import_levelup(levelup_dir, player_value, dry_run) -> None:
    """Import LevelUp's stores under LEVELUP_DIR (its data folder: players/<gamertag>/stats.duckdb and/or
    warehouse/shared_matches.duckdb): register each player, keep every match as a legacy source
    (raw/levelup/) and derive its rows where the API has nothing (source 'levelup'). A second import changes
    nothing. Replaces LevelUp's merge_databases.py / migrate_to_parquet.py for moving a history in."""
    from halo_pipeline.instance import ensure_registered
    from halo_pipeline.runner import SyncReport, rederive
    from halo_pipeline.services.levelup import find_players, import_player, select_player
    from halo_pipeline.services.players import resolve

    halo_api, warehouse = _resources()
    wh = warehouse.warehouse()
    found = select_player(find_players(levelup_dir, lambda gt: resolve(halo_api.client, gt)[0].xuid), player_value)
    results = [import_player(wh, p, dry_run=dry_run) for p in found]
    for result in results:
        for line in result.describe(dry_run):
            click.echo(line)
    if dry_run:
        click.echo("dry run: nothing written")
        return
    instance = _instance()
    added = ensure_registered(instance, [r.player.xuid for r in results])
    for xuid in added:
        click.echo(f"registered {xuid}")
    report = SyncReport()
    rederive(_defs(), instance, warehouse, {r.player.xuid: r.stale for r in results if r.stale}, report, click.echo)
    if not report.runs:
        click.echo("nothing changed: every match was already imported and derived")
    if not report.ok:
        failed = ", ".join(f"{job} (run {rid})" for rid, job, _, ok in report.runs if not ok)
        raise click.ClickException(f"import: runs failed: {failed}")


@main.command()
@click.argument("other_data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be merged; write nothing.")
def merge(other_data_dir, dry_run) -> None:
    """Merge another warehouse (its HALO_DATA_DIR: a second machine, a restored backup) into this one: the union
    of raw landing by match id (complete bodies only; a conflict — same id, other bytes — is reported and the
    newer landing kept), then the touched partitions re-derived with zero API calls. Replaces LevelUp's
    merge_databases.py."""
    from halo_pipeline.runner import SyncReport, rederive
    from halo_pipeline.services.merge import merge_warehouse
    from halo_pipeline.storage.warehouse import Warehouse

    warehouse = _resources()[1]
    result = merge_warehouse(warehouse.warehouse(), Warehouse(other_data_dir.resolve()), dry_run=dry_run)
    for line in result.describe():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing written")
        return
    report = SyncReport()
    touched = {x: result.touched.get(x, set()) for x in result.players} | result.touched
    rederive(_defs(), _instance(), warehouse, touched, report, click.echo)
    if not report.ok:
        failed = ", ".join(f"{job} (run {rid})" for rid, job, _, ok in report.runs if not ok)
        raise click.ClickException(f"merge: runs failed: {failed}")


# ---- maintenance (thin wrappers over halo_pipeline.services.maintenance) ----------------------------------------


def _warehouse():
    from halo_pipeline.storage.warehouse import Warehouse

    return Warehouse(_data_dir())


@main.command()
@click.option("--table", required=True, help="A warehouse table, e.g. match_facts, sessions, map_stats.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="parquet", show_default=True)
@click.option("--player", default=None, help="Only this xuid.")
@click.option("--since", default=None, help="Only rows from this date on (YYYY-MM[-DD], UTC).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: <table>.<format> in the current folder).")
def export(table, fmt, player, since, out) -> None:
    """Export a table (live and archived months) to CSV or Parquet."""
    from halo_pipeline.services.maintenance import export_table

    out = out or Path(f"{table}.{fmt}")
    rows = export_table(_warehouse(), table, out, fmt, player, since)
    click.echo(f"exported {rows} rows of {table} to {out}")


@main.command()
@click.option("--player", required=True, help="xuid of the player to back up.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The .tar to write.")
def backup(player, out) -> None:
    """Write a checksummed snapshot of a player's warehouse files, raw landing and sync state to a .tar."""
    from halo_pipeline.services.maintenance import backup as run_backup

    manifest = run_backup(_warehouse(), player, out)
    click.echo(f"backed up {len(manifest['files'])} files of {manifest['xuid']} to {out}")


@main.command()
@click.argument("backup_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files modified after the backup was taken.")
def restore(backup_file, force) -> None:
    """Restore a backup after verifying its checksums (refuses to overwrite newer data without --force)."""
    from halo_pipeline.services.maintenance import restore as run_restore

    wh = _warehouse()
    result = run_restore(wh, backup_file, force=force)
    if wh.catalog_path.exists():  # restored partitions are served at once
        from halo_pipeline.storage.serving import update

        update(wh, players=[int(result["xuid"])])
    click.echo(f"restored {result['written']} files of {result['xuid']} ({result['same']} already identical)")


@main.command()
@click.option("--older-than-days", type=int, required=True, help="Archive months that ended before N days ago.")
def archive(older_than_days) -> None:
    """Move old months to warehouse/archive/ (the serving store and the analytics still read them)."""
    from halo_pipeline.services.maintenance import archive as run_archive
    from halo_pipeline.storage.catalog import build_catalog

    wh = _warehouse()
    moved = run_archive(wh, older_than_days)
    if moved and wh.catalog_path.exists():
        build_catalog(wh)
    click.echo(f"archived {len(moved)} partition files")


if __name__ == "__main__":
    main()
