"""Who a player is: an xuid or a gamertag resolved through the profile API (no Dagster: registering a player,
a dynamic partition of the instance, is :mod:`halo_pipeline.instance`'s)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import yaml

from halo_pipeline.api.client import HaloApiClient, run_api
from halo_pipeline.ids import InvalidInput, check_gamertag, looks_like_xuid, parse_xuid
from halo_pipeline.storage.landing import PROFILE, RawLanding
from halo_pipeline.storage.legacy import LEGACY, LegacyLanding

#: Opens an API client: ``HaloApiResource.client`` (``async with open_client() as api``).
OpenClient = Callable[[], AbstractAsyncContextManager[HaloApiClient]]


@dataclass(frozen=True)
class Player:
    """A player: xuid and, when known, gamertag."""

    xuid: int
    gamertag: str | None


def resolve(open_client: OpenClient, value: str) -> tuple[Player, bytes | None]:
    """The player named by ``value`` (xuid, ``xuid(…)`` or gamertag) and the profile body to land.

    Raises:
        InvalidInput: malformed xuid or gamertag, or a gamertag the profile API does not know.
    """
    if looks_like_xuid(value):
        xuid = parse_xuid(value)

        async def by_xuid() -> list[dict]:
            async with open_client() as api:
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
        async with open_client() as api:
            return await api.user_by_gamertag(gamertag)

    try:
        user = run_api(by_gamertag())
    except aiohttp.ClientResponseError as exc:
        if exc.status in (400, 404):
            raise InvalidInput(f"unknown gamertag {gamertag!r}: the profile API has no such player") from None
        raise
    return Player(parse_xuid(user["xuid"]), user.get("gamertag")), orjson.dumps(user)


def gamertag_of(landing: RawLanding, xuid: int | str) -> str | None:
    """The gamertag of ``xuid``'s landed profile, else the one a LevelUp import recorded, else ``None``."""
    body = landing.get(PROFILE, str(xuid))
    if body:
        return orjson.loads(body).get("gamertag")
    return LegacyLanding(landing.root / LEGACY).gamertag(xuid)


def read_declared_players(path: Path) -> list[str]:
    """Entries of a players file: a YAML list of xuids/gamertags, or ``{players: [...]}`` whose items may be
    ``{xuid: …}`` / ``{gamertag: …}``.

    Raises:
        InvalidInput: unreadable YAML or an unexpected shape (one line naming the file).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read the players file: {str(exc).splitlines()[0]}") from None
    items = data.get("players") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput(f"{path}: expected a list of players (xuid or gamertag), or players: [...]")
    out = []
    for i, item in enumerate(items):
        value = item.get("xuid") or item.get("gamertag") if isinstance(item, dict) else item
        if value is None or isinstance(value, (list, dict)):
            raise InvalidInput(f"{path}: players[{i}]: expected an xuid or a gamertag")
        out.append(str(value))
    return out
