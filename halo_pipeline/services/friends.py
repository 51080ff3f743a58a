"""Declared friends: who each owner plays with, by name (no Dagster).

Two places declare friends, both read by the ``friends`` asset (:func:`collect_friends`):

* the players file (``$HALO_PLAYERS_FILE``, default ``players.yaml``): ``friends: [...]`` under a player entry
  (:func:`halo_pipeline.services.players.read_declared_friends`) — configuration as code;
* ``halo-pipeline friends add|remove`` — the **friends store**, ``<data_dir>/friends.json``
  (:class:`FriendsStore`). It lives beside the warehouse and raw landing (not in the Dagster instance) because
  it is user data, like them: it moves with the data dir (local or ``s3://``), is kept by backups of the data
  dir, and needs no Dagster to read. Written whole and atomically (temp file + rename, one PUT on object
  storage); concurrent ``friends`` commands on a local data dir take turns on a lock file beside it.

A friend declared in both places is the players file's (its nickname wins). A friend need not be registered;
``friends add --register`` also registers it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
from filelock import FileLock

from halo_pipeline.ids import InvalidInput, check_gamertag, check_nickname, looks_like_xuid, parse_xuid
from halo_pipeline.services.players import OpenClient, Player, read_declared_friends, resolve
from halo_pipeline.storage.files import is_remote, remove_tree, write_bytes_atomic, write_parquet_atomic
from halo_pipeline.storage.landing import PROFILE
from halo_pipeline.storage.warehouse import PARQUET_NAME, Warehouse
from halo_pipeline.transforms.people import FRIENDS_SCHEMA

FRIENDS = "friends"
STORE_NAME = "friends.json"
STORE_FORMAT = 1
PLAYERS_FILE_ENV, DEFAULT_PLAYERS_FILE = "HALO_PLAYERS_FILE", "players.yaml"
YAML, CLI = "players.yaml", "cli"


def players_file(explicit: str = "") -> Path:
    """The players file in force: ``explicit``, else ``$HALO_PLAYERS_FILE``, else ``players.yaml`` (read at call
    time)."""
    return Path(explicit or os.environ.get(PLAYERS_FILE_ENV) or DEFAULT_PLAYERS_FILE)


@dataclass(frozen=True)
class Friend:
    """A friend of an owner: xuids, the friend's gamertag when known, the nickname (or ``None``), where it is
    declared (``players.yaml`` | ``cli``) and when ``friends add`` declared it (UTC; ``None`` for the file)."""

    owner: int
    xuid: int
    gamertag: str | None
    nickname: str | None
    source: str
    added_at: datetime | None = None

    @property
    def name(self) -> str:
        """``nickname (gamertag)``, else the gamertag, else the xuid."""
        if self.nickname and self.gamertag:
            return f"{self.nickname} ({self.gamertag})"
        return self.nickname or self.gamertag or str(self.xuid)


# --------------------------------------------------------------------------------------------------- the store


class FriendsStore:
    """The friends declared with ``halo-pipeline friends``: ``<data_dir>/friends.json``, ``{"format": 1,
    "friends": [{"owner", "xuid", "gamertag", "nickname", "added_at"}]}`` (xuids as integers, ``added_at`` ISO
    8601 UTC)."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / STORE_NAME

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if is_remote(self.path):  # object storage has no lock: the last writer wins, each write is whole
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path.with_name(f".{STORE_NAME}.lock")), timeout=30)
        with lock.acquire(poll_interval=0.005):  # a write takes ~1 ms: poll often
            yield

    def read(self) -> list[Friend]:
        """Every friend of the store, in declaration order (none when the file does not exist).

        Raises:
            InvalidInput: the file is not a friends store (one line naming it).
        """
        try:
            data = orjson.loads(self.path.read_bytes())
            return [Friend(int(e["owner"]), int(e["xuid"]), e.get("gamertag"), e.get("nickname"), CLI,
                           datetime.fromisoformat(e["added_at"]) if e.get("added_at") else None)
                    for e in data["friends"]]
        except FileNotFoundError:
            return []
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{self.path}: not a friends store ({type(exc).__name__}: {exc})") from None

    def _write(self, friends: list[Friend]) -> None:
        entries = [{k: v for k, v in asdict(f).items() if k != "source"} | {
            "added_at": f.added_at.isoformat() if f.added_at else None} for f in friends]
        write_bytes_atomic(self.path, orjson.dumps({"format": STORE_FORMAT, "friends": entries},
                                                   option=orjson.OPT_INDENT_2))

    def add(self, friend: Friend) -> tuple[Friend, bool]:
        """Declare ``friend`` (its ``added_at`` is now); an existing friend of the owner gets the new nickname.
        Returns the stored friend and whether it is new.

        Raises:
            InvalidInput: the friend is the owner, or is already declared with the same nickname (nothing
                written).
        """
        if friend.xuid == friend.owner:
            raise InvalidInput(f"{friend.xuid} is the owner: a player cannot be their own friend")
        with self._locked():
            friends = self.read()
            for i, known in enumerate(friends):
                if (known.owner, known.xuid) == (friend.owner, friend.xuid):
                    if friend.nickname is None or friend.nickname == known.nickname:
                        raise InvalidInput(f"{known.name} is already a friend of {friend.owner}")
                    friends[i] = replace(known, nickname=friend.nickname, gamertag=friend.gamertag or known.gamertag)
                    self._write(friends)
                    return friends[i], False
            stored = replace(friend, source=CLI, added_at=datetime.now(UTC))
            self._write([*friends, stored])
            return stored, True

    def remove(self, owner: int, value: str) -> Friend:
        """Forget the friend of ``owner`` named by ``value`` (xuid, gamertag or nickname, case-insensitive).

        Raises:
            InvalidInput: no such friend in the store (nothing written).
        """
        with self._locked():
            friends = self.read()
            found = match_friend([f for f in friends if f.owner == owner], value)
            if found is None:
                raise InvalidInput(f"{value!r} is not a friend of {owner} declared with `halo-pipeline friends add`")
            self._write([f for f in friends if f is not found])
            return found


def match_friend(friends: Iterable[Friend], value: str) -> Friend | None:
    """The friend named by ``value``: its xuid, gamertag or nickname (case-insensitive), else ``None``."""
    text = value.strip()
    xuid = parse_xuid(text) if looks_like_xuid(text) else None
    wanted = text.lower()
    return next((f for f in friends if f.xuid == xuid or wanted in {(f.gamertag or "").lower(),
                                                                    (f.nickname or "").lower()}), None)


# --------------------------------------------------------------------------------------------------- resolving


def find_player(players: Iterable[Player], value: str) -> Player | None:
    """The player of ``players`` named by ``value`` (xuid or gamertag, case-insensitive), else ``None``.

    Raises:
        InvalidInput: a malformed xuid or gamertag.
    """
    text = value.strip()
    if looks_like_xuid(text):
        xuid = parse_xuid(text)
        return next((p for p in players if p.xuid == xuid), None)
    wanted = check_gamertag(text).lower()
    return next((p for p in players if p.gamertag and p.gamertag.lower() == wanted), None)


def resolve_owner(registered: list[Player], value: str) -> Player:
    """The registered player named by ``value`` (xuid or gamertag): friends are declared for synced players.

    Raises:
        InvalidInput: malformed, or not a registered player.
    """
    found = find_player(registered, value)
    if found is None:
        raise InvalidInput(f"player {value.strip()!r} is not registered: run `halo-pipeline players add` first")
    return found


def resolve_player(open_client: OpenClient, wh: Warehouse, value: str, known: Iterable[Player] = ()) -> Player:
    """The player named by ``value``: from ``known`` players when there (zero API calls); an unknown xuid as is
    (its gamertag comes with the daily profiles); an unknown gamertag through the profile API (its user object is
    landed, as ``players add`` does).

    Raises:
        InvalidInput: malformed xuid or gamertag, or a gamertag the profile API does not know.
    """
    found = find_player(known, value)
    if found is not None and (found.gamertag is not None or looks_like_xuid(value.strip())):
        return found
    if looks_like_xuid(value.strip()):
        return Player(parse_xuid(value), None)
    player, profile = resolve(open_client, value)
    if profile is not None:
        wh.landing.put(PROFILE, str(player.xuid), profile)
    return player


def known_players(wh: Warehouse, registered: Iterable[Player], store: Iterable[Friend]) -> list[Player]:
    """Players whose gamertag is already known: the registered ones, the store's friends and every friend of
    the last ``friends`` table (so a players file naming them by gamertag costs no API call)."""
    out = [p for p in registered if p.gamertag]
    out += [Player(f.xuid, f.gamertag) for f in store if f.gamertag]
    table = read_friends(wh)
    out += [Player(x, g) for x, g in table.select("friend_xuid", "gamertag").iter_rows() if g]
    return out


def collect_friends(wh: Warehouse, registered: list[Player], open_client: OpenClient, path: Path) -> list[Friend]:
    """Every declared friend: the players file's (``path``; none when it does not exist) then the store's, one
    per owner × friend (the file wins). Gamertags are resolved from known players first, else through the
    profile API (an xuid is never looked up: the daily profiles name it).

    Raises:
        InvalidInput: a malformed players file or store, an unknown gamertag, a friend equal to its owner (one
            line naming the entry; nothing is written by the caller).
    """
    store = FriendsStore(wh.data_dir).read()
    known = known_players(wh, registered, store)
    out: dict[tuple[int, int], Friend] = {}
    for declared in read_declared_friends(path) if path.is_file() else ():
        try:
            owner = resolve_player(open_client, wh, declared.owner, known)
            friend = resolve_player(open_client, wh, declared.friend, known)
        except InvalidInput as exc:
            raise InvalidInput(f"{declared.where}: {exc}") from None
        if friend.xuid == owner.xuid:
            raise InvalidInput(f"{declared.where}: {declared.friend} is the owner: a player cannot be their own friend")
        known += [owner, friend]
        out.setdefault((owner.xuid, friend.xuid),
                       Friend(owner.xuid, friend.xuid, friend.gamertag, declared.nickname, YAML))
    for friend in store:
        out.setdefault((friend.owner, friend.xuid), friend)
    return list(out.values())


# --------------------------------------------------------------------------------------------------- the table


def friends_path(wh: Warehouse, owner: int) -> Path:
    """``warehouse/friends/player=<owner>/data.parquet``."""
    return wh.root / FRIENDS / f"player={owner}" / PARQUET_NAME


def friends_frame(friends: Iterable[Friend], registered: Iterable[int]) -> pl.DataFrame:
    """:data:`~halo_pipeline.transforms.people.FRIENDS_SCHEMA` rows of ``friends``, sorted by owner then friend."""
    registered = set(registered)
    rows = [{"xuid": f.owner, "friend_xuid": f.xuid, "gamertag": f.gamertag, "nickname": f.nickname,
             "source": f.source, "registered": f.xuid in registered, "added_at": f.added_at} for f in friends]
    return pl.DataFrame(rows, schema=FRIENDS_SCHEMA).sort("xuid", "friend_xuid")


def write_friends(wh: Warehouse, table: pl.DataFrame) -> dict[int, int]:
    """Replace the ``friends`` table: one file per owner with friends (atomic), the folders of owners left with
    none removed. Returns ``{owner: friends}``."""
    counts = {}
    for (owner,), rows in table.partition_by("xuid", as_dict=True, maintain_order=True).items():
        write_parquet_atomic(rows, friends_path(wh, owner))
        counts[owner] = rows.height
    base = wh.root / FRIENDS
    for folder in base.glob("player=*") if base.exists() else ():
        if int(folder.name.split("=", 1)[1]) not in counts:
            remove_tree(folder)
    return counts


def read_friends(wh: Warehouse, owner: int | None = None) -> pl.DataFrame:
    """The ``friends`` table (of one owner when given); empty with its columns when none is written."""
    return wh.read_table(FRIENDS, owner, schema=FRIENDS_SCHEMA)


def friend_xuids(wh: Warehouse, owner: int) -> frozenset[int]:
    """The xuids of ``owner``'s declared friends (from the ``friends`` table)."""
    return frozenset(read_friends(wh, owner)["friend_xuid"].to_list())


# --------------------------------------------------------------------------------------------------- the CLI


def add_friend(wh: Warehouse, registered: list[Player], open_client: OpenClient, owner_value: str,
               friend_value: str, nickname: str | None = None) -> tuple[Friend, bool]:
    """``halo-pipeline friends add``: declare ``friend_value`` (xuid or gamertag, resolved through the profile
    API unless already known) a friend of the registered player ``owner_value``, in the store. Returns the
    stored friend and whether it is new (else its nickname changed). Everything is checked before anything is
    written.

    Raises:
        InvalidInput: the owner is not registered, a malformed or unknown xuid / gamertag, the friend is the
            owner, a nickname with control characters or too long, or the friend already declared so.
    """
    owner = resolve_owner(registered, owner_value)
    nickname = check_nickname(nickname) if nickname is not None else None
    known = find_player(known_players(wh, registered, FriendsStore(wh.data_dir).read()), friend_value)
    if known is not None and known.gamertag is not None:
        player, profile = known, None
    else:
        player, profile = resolve(open_client, friend_value)
    if player.xuid == owner.xuid:
        raise InvalidInput(f"{friend_value.strip()!r} is the owner: a player cannot be their own friend")
    stored, new = FriendsStore(wh.data_dir).add(Friend(owner.xuid, player.xuid, player.gamertag, nickname, CLI))
    if profile is not None:
        wh.landing.put(PROFILE, str(player.xuid), profile)
    return stored, new


def remove_friend(wh: Warehouse, registered: list[Player], owner_value: str, friend_value: str,
                  path: Path) -> Friend:
    """``halo-pipeline friends remove``: forget a friend declared with ``friends add`` (named by xuid, gamertag or
    nickname). The owner may be unregistered by now (named by xuid).

    Raises:
        InvalidInput: malformed values, no such friend — or it is declared in the players file ``path`` (remove
            it there).
    """
    owner = find_player(registered, owner_value)
    if owner is None:
        if not looks_like_xuid(owner_value.strip()):
            raise InvalidInput(f"player {owner_value.strip()!r} is not registered: name the owner by xuid")
        owner = Player(parse_xuid(owner_value), None)
    store = FriendsStore(wh.data_dir)
    if match_friend([f for f in store.read() if f.owner == owner.xuid], friend_value) is None:
        owner_names, wanted = {str(owner.xuid), (owner.gamertag or "").lower()}, friend_value.strip().lower()
        for declared in read_declared_friends(path) if path.is_file() else ():
            if declared.owner.strip().lower() in owner_names and wanted in {declared.friend.strip().lower(),
                                                                            (declared.nickname or "").lower()}:
                raise InvalidInput(f"{friend_value.strip()!r} is declared in {path} ({declared.where}): remove it "
                                   "there")
        raise InvalidInput(f"{friend_value.strip()!r} is not a friend of {owner.xuid} declared with "
                           "`halo-pipeline friends add`")
    return store.remove(owner.xuid, friend_value)


def list_friends(wh: Warehouse, registered: list[Player], path: Path) -> list[Friend]:
    """Every declared friend, the players file's first (gamertags resolved from known players only: an unknown
    one is listed with xuid 0 until the ``friends`` asset resolves it), then the store's. Zero API calls."""
    store = FriendsStore(wh.data_dir).read()
    known = known_players(wh, registered, store)
    out: dict[tuple, Friend] = {}
    for declared in read_declared_friends(path) if path.is_file() else ():
        owner, friend = (find_player(known, v) or (Player(parse_xuid(v), None) if looks_like_xuid(v) else
                                                   Player(0, v.strip())) for v in (declared.owner, declared.friend))
        key = (owner.xuid, friend.xuid or declared.friend.strip().lower())
        out.setdefault(key, Friend(owner.xuid, friend.xuid, friend.gamertag, declared.nickname, YAML))
    for friend in store:
        out.setdefault((friend.owner, friend.xuid), friend)
    return list(out.values())
