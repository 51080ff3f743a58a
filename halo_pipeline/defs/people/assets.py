"""People: declared friends, player profiles, the players dimension (group ``people``), and teammates (group
``analytics``: partitioned player × month like the other analytics, so the sync, backfill and follow-up jobs
derive it).

``friends``, ``player_profiles`` and ``players`` are **unpartitioned**: ``players`` is one row per xuid across
every owner (a stranger met by two owners is one row, and per-owner files would repeat them), and small (one
row per human met), so one file rebuilt from the warehouse in seconds after each sync is simpler than a
partition per player; ``friends`` and ``player_profiles`` are written one file per player
(``warehouse/<table>/player=<xuid>/``) so that removing a player with ``--purge`` and backups see them, but are
materialized whole: declarations and the daily profiles concern every player at once.
"""

import hashlib

import dagster as dg
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.common import (
    API_POOL,
    FOLLOWS_UPSTREAM,
    SINGLE_RUN,
    each_partition,
    frame_metadata,
    record_partitions,
)
from halo_pipeline.defs.stats.assets import write_partitions
from halo_pipeline.ids import InvalidInput
from halo_pipeline.instance import registered
from halo_pipeline.partitions import PLAYERS, player_month_partitions
from halo_pipeline.services import people as sp
from halo_pipeline.services.friends import collect_friends, friends_frame, players_file, read_friends, write_friends
from halo_pipeline.storage.files import write_parquet_atomic
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.transforms.people import latest_profiles

PEOPLE_GROUP = "people"


@dg.asset(group_name=PEOPLE_GROUP, pool=API_POOL, kinds={"yaml", "parquet"})
def friends(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
            halo_api: HaloApiResource) -> dg.MaterializeResult:
    """Declared friends of each owner, one row per owner × friend: xuid (the owner, Int64), friend_xuid (Int64),
    gamertag, nickname (null when none), source (`players.yaml` | `cli`), registered (the friend is synced too),
    added_at (UTC, `friends add` only). Sources: `friends:` lists in $HALO_PLAYERS_FILE (default players.yaml)
    and `halo-pipeline friends add|remove` (<data_dir>/friends.json); the file wins when both name a friend.
    Gamertags are resolved once (profile `GET /users/gt(…)`), then read from the last table: usually zero API
    calls. A malformed entry (unknown gamertag, a friend equal to its owner, a nickname with control
    characters) fails the run in one line and the previous table stays. Its data version is a hash of the table:
    match_facts are re-derived (declarative automation) only when it changed. Stored per owner:
    warehouse/friends/player=<owner>/data.parquet."""
    wh = warehouse.warehouse()
    players = registered(context.instance, wh.landing)
    path = players_file()
    try:
        declared = collect_friends(wh, players, halo_api.client, path)
    except InvalidInput as exc:
        raise dg.Failure(str(exc)) from None
    table = friends_frame(declared, {p.xuid for p in players})
    counts = write_friends(wh, table)
    version = hashlib.sha256(table.sort(pl.all()).write_csv().encode()).hexdigest()[:16]
    return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=frame_metadata("friends", table) | {
        "owners": len(counts), "players_file": dg.MetadataValue.path(str(path.resolve()))})


class ProfilesConfig(dg.Config):
    """``rebuild``: rewrite every registered player's and friend's profile file from raw landing (zero API
    calls beyond today's due profiles); ``offline``: never call the API, write the files from what is landed
    (a merge or a re-derivation, which promise zero API calls)."""

    rebuild: bool = False
    offline: bool = False


@dg.asset(group_name=PEOPLE_GROUP, pool=API_POOL, deps=[friends], kinds={"api", "parquet"})
def player_profiles(context: dg.AssetExecutionContext, config: ProfilesConfig, warehouse: WarehouseResource,
                    halo_api: HaloApiResource) -> dg.MaterializeResult:
    """Daily profile snapshots of the registered players and declared friends (never of every stranger met),
    one row per player × UTC day fetched: xuid, profile_date (Date), gamertag, service_tag, emblem_path,
    emblem_configuration_id, backdrop_path, nameplate_path (null: the API has none, see the README),
    player_title_path, career_rank (Int16, 1–272), career_rank_title ("Gold Captain 2"), career_rank_tier
    (Bronze … Onyx, Hero), career_rank_xp / career_rank_xp_required (Int32: XP toward the next rank, and what it
    takes), career_rank_max. Sources: profile `GET /users?xuids=…`, economy `GET
    /hi/players/xuid(…)/customization` and `…/rewardtracks/careerranks/careerrank1`, gamecms-hacs career track
    — each at most once per player per UTC day, landed under raw/profile/ (a second run the same day makes no
    call). Stored per player: warehouse/player_profiles/player=<xuid>/data.parquet."""
    wh = warehouse.warehouse()
    landing = wh.landing
    owners = [int(x) for x in context.instance.get_dynamic_partitions(PLAYERS)]
    targets = sorted(set(owners) | set(read_friends(wh)["friend_xuid"].to_list()))
    day = sp.utc_today()
    due = [] if config.offline else [x for x in targets if sp.due_parts(landing, x, day)]

    async def fetch() -> sp.ProfileFetch:
        if not due:  # every profile of today is landed: no client (no token needed), zero API calls
            return sp.ProfileFetch()
        async with halo_api.client() as api:
            return await sp.land_daily_profiles(api, landing, due, day)

    fetched = run_api(fetch())
    for failure in fetched.failures:
        context.log.warning(f"player_profiles: {failure} (asked again by the next run)")
    rewrite = targets if config.rebuild else [x for x in targets if x in set(fetched.players)
                                              or not sp.profiles_path(wh, x).exists()]
    written = sp.write_profiles(wh, rewrite)
    return dg.MaterializeResult(metadata=frame_metadata("player_profiles", latest_profiles(written)) | {
        "players": len(targets), "players_fetched": len(fetched.players), "bodies_landed": fetched.landed,
        "api_calls": fetched.calls, "failures": len(fetched.failures), "profile_date": day.isoformat()})


@dg.asset(group_name=PEOPLE_GROUP, kinds={"parquet"}, automation_condition=FOLLOWS_UPSTREAM,
          deps=[player_profiles, friends, "match_participants", "match_facts", "xuid_aliases"])
def players(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per xuid seen — registered owners, declared friends and every human participant of the
    warehouse: xuid, gamertag (the newest profile's, else the newest month's xuid_aliases), is_registered,
    is_friend, the newest profile (service_tag, emblem_path, emblem_configuration_id, backdrop_path,
    nameplate_path, player_title_path, career rank columns, profile_date), first_seen / last_seen (UTC start
    of the first and last match of the warehouse they played), matches_seen. Unpartitioned (one row per
    xuid whichever owner met them; rebuilt from the warehouse after each sync, zero API calls):
    warehouse/players/data.parquet."""
    wh = warehouse.warehouse()
    owners = [int(x) for x in context.instance.get_dynamic_partitions(PLAYERS)]
    table = sp.players_table(wh, owners, read_friends(wh)["friend_xuid"].to_list())
    write_parquet_atomic(table, sp.players_path(wh))
    return dg.MaterializeResult(metadata=frame_metadata("players", table) | {
        "registered": int(table["is_registered"].sum()), "friends": int(table["is_friend"].sum()),
        "with_profile": int(table["profile_date"].is_not_null().sum())})


@dg.asset(name="teammates", group_name="analytics", partitions_def=player_month_partitions,
          backfill_policy=SINGLE_RUN, deps=["match_participants", "match_facts"], kinds={"polars", "parquet"},
          automation_condition=FOLLOWS_UPSTREAM)
def teammates(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Who the owner played with and against in the month, one row per other human: teammate_xuid,
    matches_together = matches_same_team (a TeamId shared in any PlayerTeamStats entry of both: a player who
    changed teams has several) + matches_opposed; wins/losses/ties_together (same team, the owner's outcome),
    wins/losses_against; owner_ and teammate_ kills/deaths/assists on the same team; time_played_together_seconds;
    first/last_match_at (UTC); combined_kd = (owner + teammate kills) / max(owner + teammate deaths, 1);
    win_rate_together. Counts Int32, additive over months (catalog roll-up: mv_top_teammates, with nicknames).
    A pure function of the partition's match_participants and match_facts: zero API calls."""
    wh = warehouse.warehouse()
    written = write_partitions(wh, ((x, m, {"teammates": sp.month_teammates(wh, x, m)})
                                    for x, m in each_partition(context)))
    return record_partitions(context, "teammates", written.get("teammates", []))
