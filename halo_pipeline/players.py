"""Registered players: one dynamic partition key (the xuid) each in the Dagster instance.

Dagster has no command for adding dynamic partition keys; ``halo-pipeline players`` fills that gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import dagster as dg
import orjson

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.ids import InvalidInput, check_gamertag, looks_like_xuid, parse_xuid
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.storage.files import remove_tree
from halo_pipeline.storage.landing import PROFILE, RawLanding
from halo_pipeline.storage.warehouse import Warehouse


@dataclass(frozen=True)
class Player:
    xuid: int
    gamertag: str | None


def resolve(halo_api: HaloApiResource, value: str) -> tuple[Player, bytes | None]:
    """The player named by ``value`` (xuid, ``xuid(…)`` or gamertag) and the profile body to land.

    Raises:
        InvalidInput: malformed xuid or gamertag, or a gamertag the profile API does not know.
    """
    if looks_like_xuid(value):
        xuid = parse_xuid(value)

        async def by_xuid() -> list[dict]:
            async with halo_api.client() as api:
                try:
                    return await api.users_by_xuid([xuid])
                except aiohttp.ClientResponseError as exc:
                    if exc.status in (400, 404):
                        return []
                    raise

        users = [u for u in run_api(by_xuid()) if str(u.get("xuid")) == str(xuid)]
        return Player(xuid, users[0].get("gamertag") if users else None), orjson.dumps(users[0]) if users else None

    gamertag = check_gamertag(value)

    async def by_gamertag() -> dict:
        async with halo_api.client() as api:
            return await api.user_by_gamertag(gamertag)

    try:
        user = run_api(by_gamertag())
    except aiohttp.ClientResponseError as exc:
        if exc.status in (400, 404):
            raise InvalidInput(f"unknown gamertag {gamertag!r}: the profile API has no such player") from None
        raise
    return Player(parse_xuid(user["xuid"]), user.get("gamertag")), orjson.dumps(user)


def add_player(instance: dg.DagsterInstance, landing: RawLanding, halo_api: HaloApiResource, value: str) -> Player:
    """Register a player: resolve it, land its profile, then add its partition key (the commit point).

    Raises:
        InvalidInput: see :func:`resolve`, or the player is already registered.
    """
    player, profile = resolve(halo_api, value)
    if str(player.xuid) in instance.get_dynamic_partitions(PLAYERS):
        raise InvalidInput(f"player {player.xuid} ({player.gamertag or 'gamertag unknown'}) is already registered")
    if profile is not None:
        landing.put(PROFILE, str(player.xuid), profile)
    instance.add_dynamic_partitions(PLAYERS, [str(player.xuid)])
    return player


def registered(instance: dg.DagsterInstance, landing: RawLanding) -> list[Player]:
    """Registered players with the gamertag of their landed profile (``None`` when unknown)."""
    players = []
    for key in instance.get_dynamic_partitions(PLAYERS):
        body = landing.get(PROFILE, key)
        players.append(Player(int(key), orjson.loads(body).get("gamertag") if body else None))
    return players


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
