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
from halo_pipeline.ids import InvalidInput, check_gamertag, check_nickname, looks_like_xuid, parse_xuid
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


def _load_players_file(path: Path) -> list:
    """The player items of a players file (see :func:`read_declared_players`).

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
    return items


def _entry_value(item, where: str) -> str:
    """The xuid or gamertag of a players-file entry (a scalar, or a mapping with ``xuid`` or ``gamertag``),
    checked.

    Raises:
        InvalidInput: no value, or a malformed xuid / gamertag (``where`` names the entry).
    """
    value = (item.get("xuid") or item.get("gamertag")) if isinstance(item, dict) else item
    if value is None or isinstance(value, (list, dict, bool)):
        raise InvalidInput(f"{where}: expected an xuid or a gamertag")
    text = str(value)
    try:
        parse_xuid(text) if looks_like_xuid(text) else check_gamertag(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return text


@dataclass(frozen=True)
class DeclaredFriend:
    """A friend declared in a players file: the owner's and the friend's xuid or gamertag as written, the
    nickname (checked, or ``None``), whether to register the friend too, and where it is declared."""

    owner: str
    friend: str
    nickname: str | None
    register: bool
    where: str


def read_declared_friends(path: Path) -> list[DeclaredFriend]:
    """The friends declared in a players file: each player entry may hold ``friends: [...]``, whose items are an
    xuid / gamertag or ``{xuid | gamertag, nickname, register}`` (``register: true``: also sync the friend).

    Raises:
        InvalidInput: the file or an entry is malformed: a bad xuid or gamertag, a nickname with control
            characters or too long, a friend equal to its owner (one line naming the file and the entry).
    """
    out = []
    for i, item in enumerate(_load_players_file(path)):
        friends = item.get("friends") if isinstance(item, dict) else None
        if friends is None:
            continue
        where = f"{path}: players[{i}]"
        owner = _entry_value(item, where)
        if not isinstance(friends, list):
            raise InvalidInput(f"{where}.friends: expected a list of friends")
        for j, friend in enumerate(friends):
            at = f"{where}.friends[{j}]"
            value = _entry_value(friend, at)
            extra = friend if isinstance(friend, dict) else {}
            nickname = extra.get("nickname")
            try:
                nickname = None if nickname is None else check_nickname(str(nickname))
            except InvalidInput as exc:
                raise InvalidInput(f"{at}: {exc}") from None
            if value.strip().lower() == owner.strip().lower():
                raise InvalidInput(f"{at}: {value} is the owner: a player cannot be their own friend")
            out.append(DeclaredFriend(owner, value, nickname, bool(extra.get("register")), at))
    return out


def read_declared_players(path: Path) -> list[str]:
    """Entries of a players file: a YAML list of xuids/gamertags, or ``{players: [...]}`` whose items may be
    ``{xuid: …}`` / ``{gamertag: …}`` — with the friends declared ``register: true``
    (:func:`read_declared_friends`).

    Raises:
        InvalidInput: unreadable YAML or an unexpected shape (one line naming the file).
    """
    items = _load_players_file(path)
    out = []
    for i, item in enumerate(items):
        value = item.get("xuid") or item.get("gamertag") if isinstance(item, dict) else item
        if value is None or isinstance(value, (list, dict)):
            raise InvalidInput(f"{path}: players[{i}]: expected an xuid or a gamertag")
        out.append(str(value))
    if any(isinstance(item, dict) and item.get("friends") for item in items):
        out += [f.friend for f in read_declared_friends(path) if f.register and f.friend not in out]
    return out
