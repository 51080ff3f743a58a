"""People: player profiles, declared friends, and who played with whom (pure functions: no Dagster, no I/O).

Words:

* **profile** — what the API says of a player on a given UTC day: their gamertag (profile ``/users``), their
  customization (economy ``/hi/players/xuid(…)/customization``: service tag, emblem, backdrop, player title) and
  their career rank (economy ``/hi/players/xuid(…)/rewardtracks/careerranks/careerrank1``), named through the
  career reward track (gamecms-hacs ``RewardTracks/CareerRanks/careerRank1.json``: title, tier, XP per rank).
* **friend** — a player an owner declared (``players.yaml`` or ``halo-pipeline friends add``), with an optional
  nickname. A friend need not be registered (synced).
* **known player** of an owner — a declared friend of the owner, or any registered player.
* **teammate** — another human of one of the owner's matches with whom the owner shared a ``TeamId`` in any of
  their ``PlayerTeamStats`` entries (a player who changed teams has several entries); a human of the match who
  never shared a team with the owner is an **opponent**. Bots are neither.

Every figure of :func:`teammates` is additive over months (the catalog's ``mv_top_teammates`` sums them);
the ratios follow the project's definitions: ``combined_kd = (owner kills + teammate kills) /
max(owner deaths + teammate deaths, 1)`` over the matches on the same team, ``win_rate = wins / matches``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import polars as pl

from halo_pipeline.transforms._common import UTC_US, rows_frame, unwrap_player_id

# --------------------------------------------------------------------------------------------------- schemas

#: Columns added to ``match_facts`` (after the columns of ``MATCH_FACTS_SCHEMA``), derived from the same parse of
#: each stats body: ``known_teammates`` (humans of the owner's team who are known players of the owner),
#: ``with_friends`` (a declared friend of the owner played the match, either team), ``friends_xuids`` (which).
MATCH_PEOPLE_SCHEMA: dict[str, pl.DataType] = {
    "known_teammates": pl.Int16,
    "with_friends": pl.Boolean,
    "friends_xuids": pl.List(pl.Int64),
}

#: Columns added to ``sessions`` (and ``session_stats``): the session's largest ``known_teammates`` of one
#: match, whether any match had friends, and every friend met in the session.
SESSION_PEOPLE_SCHEMA: dict[str, pl.DataType] = dict(MATCH_PEOPLE_SCHEMA)

#: Declared friends of one owner (asset ``friends``, one file per owner).
FRIENDS_SCHEMA: dict[str, pl.DataType] = {
    "xuid": pl.Int64,  # the owner
    "friend_xuid": pl.Int64,
    "gamertag": pl.Utf8,  # the friend's gamertag when declared / resolved (players.gamertag is the latest)
    "nickname": pl.Utf8,  # null when none was given
    "source": pl.Utf8,  # players.yaml | cli
    "registered": pl.Boolean,  # the friend is a registered (synced) player too
    "added_at": UTC_US,  # when `friends add` declared it; null for players.yaml entries
}

#: One profile snapshot of a player: what the API said of them on ``profile_date`` (UTC day).
PLAYER_PROFILES_SCHEMA: dict[str, pl.DataType] = {
    "xuid": pl.Int64,
    "profile_date": pl.Date,
    "gamertag": pl.Utf8,
    "service_tag": pl.Utf8,
    "emblem_path": pl.Utf8,
    "emblem_configuration_id": pl.Int64,
    "backdrop_path": pl.Utf8,
    "nameplate_path": pl.Utf8,
    "player_title_path": pl.Utf8,
    "career_rank": pl.Int16,  # the last rank reached on the career track (1 … 272)
    "career_rank_title": pl.Utf8,  # e.g. "Gold Captain 2", from the career reward track
    "career_rank_tier": pl.Utf8,  # the tier type: Bronze … Onyx, Hero
    "career_rank_xp": pl.Int32,  # XP earned toward the next rank
    "career_rank_xp_required": pl.Int32,  # XP the next rank takes (null at the top rank)
    "career_rank_max": pl.Boolean,  # the top rank is reached
}

#: The ``players`` table: one row per xuid seen (registered owners, declared friends, every human participant).
PLAYERS_SCHEMA: dict[str, pl.DataType] = {
    "xuid": pl.Int64,
    "gamertag": pl.Utf8,
    "is_registered": pl.Boolean,
    "is_friend": pl.Boolean,  # a declared friend of at least one owner
    **{k: v for k, v in PLAYER_PROFILES_SCHEMA.items() if k not in ("xuid", "gamertag")},
    "first_seen": UTC_US,  # start of the first match of the warehouse the player played (null: none)
    "last_seen": UTC_US,
    "matches_seen": pl.Int32,  # distinct matches of the warehouse the player played
}

#: Per owner × month × other human: who the owner played with and against (asset ``teammates``).
TEAMMATES_SCHEMA: dict[str, pl.DataType] = {
    "xuid": pl.Int64,  # the owner
    "month_start": pl.Utf8,
    "teammate_xuid": pl.Int64,
    "matches_together": pl.Int32,  # same team + opposed
    "matches_same_team": pl.Int32,
    "matches_opposed": pl.Int32,
    "wins_together": pl.Int32,  # same team, the owner's Outcome 2 / 3 / 1
    "losses_together": pl.Int32,
    "ties_together": pl.Int32,
    "wins_against": pl.Int32,  # opposed, the owner's Outcome 2 / 3
    "losses_against": pl.Int32,
    "owner_kills": pl.Int32,  # on the same team
    "owner_deaths": pl.Int32,
    "owner_assists": pl.Int32,
    "teammate_kills": pl.Int32,
    "teammate_deaths": pl.Int32,
    "teammate_assists": pl.Int32,
    "time_played_together_seconds": pl.Float64,  # the owner's time played in the same-team matches
    "first_match_at": UTC_US,  # any match together
    "last_match_at": UTC_US,
    "combined_kd": pl.Float32,
    "win_rate_together": pl.Float32,
}

#: The additive columns of :data:`TEAMMATES_SCHEMA` (summed over months by ``mv_top_teammates``).
TEAMMATE_SUMS = tuple(c for c, t in TEAMMATES_SCHEMA.items()
                      if t in (pl.Int32, pl.Float64) and c != "teammate_xuid")

# --------------------------------------------------------------------------------------------------- profiles


def career_track_ranks(track: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    """``{rank: {"title", "tier", "xp_required"}}`` of a career reward track body (``Ranks[]``: ``Rank``,
    ``RankTitle``, ``RankSubTitle``, ``RankTier`` — translatable strings ``{"value": …}`` — ``TierType``,
    ``XpRequiredForRank``). ``title`` reads ``"<sub title> <title> <tier>"`` (``"Gold Captain 2"``)."""
    out: dict[int, dict[str, Any]] = {}
    for entry in (track or {}).get("Ranks") or ():
        rank = entry.get("Rank")
        if not isinstance(rank, int):
            continue
        words = [(entry.get(k) or {}).get("value") or "" for k in ("RankSubTitle", "RankTitle", "RankTier")]
        out[rank] = {"title": " ".join(w for w in words if w) or None, "tier": entry.get("TierType") or None,
                     "xp_required": entry.get("XpRequiredForRank")}
    return out


def profile_row(xuid: int, day: date, user: Mapping[str, Any] | None, customization: Mapping[str, Any] | None,
                career: Mapping[str, Any] | None, ranks: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One :data:`PLAYER_PROFILES_SCHEMA` row from the bodies of one day (``None`` when a body is missing: its
    fields are null). ``ranks`` is :func:`career_track_ranks` of the career reward track.

    Read: ``user.gamertag``; ``Appearance.ServiceTag``, ``.Emblem.EmblemPath``, ``.Emblem.ConfigurationId``,
    ``.BackdropImagePath``, ``.PlayerTitlePath`` (and ``.NameplatePath`` when a body has one: the API's does
    not, Waypoint derives the nameplate from the emblem); ``CurrentProgress.Rank``, ``.PartialProgress``,
    ``.HasReachedMaxRank``.
    """
    appearance = (customization or {}).get("Appearance") or {}
    emblem = appearance.get("Emblem") or {}
    progress = (career or {}).get("CurrentProgress") if career is not None else None
    rank = progress.get("Rank") if isinstance(progress, dict) else None
    reached_max = bool(progress.get("HasReachedMaxRank")) if isinstance(progress, dict) else None
    named = ranks.get(rank, {}) if rank is not None else {}
    following = ranks.get(rank + 1, {}) if rank is not None and not reached_max else {}
    return {
        "xuid": xuid,
        "profile_date": day,
        "gamertag": (user or {}).get("gamertag"),
        "service_tag": appearance.get("ServiceTag") or None,
        "emblem_path": emblem.get("EmblemPath") or None,
        "emblem_configuration_id": emblem.get("ConfigurationId"),
        "backdrop_path": appearance.get("BackdropImagePath") or None,
        "nameplate_path": appearance.get("NameplatePath") or None,
        "player_title_path": appearance.get("PlayerTitlePath") or None,
        "career_rank": rank,
        "career_rank_title": named.get("title"),
        "career_rank_tier": named.get("tier"),
        "career_rank_xp": progress.get("PartialProgress") if isinstance(progress, dict) else None,
        "career_rank_xp_required": following.get("xp_required"),
        "career_rank_max": reached_max,
    }


def profiles_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """:func:`profile_row` rows as :data:`PLAYER_PROFILES_SCHEMA`, sorted by ``(xuid, profile_date)``."""
    return rows_frame(list(rows), PLAYER_PROFILES_SCHEMA).sort("xuid", "profile_date")


def latest_profiles(profiles: pl.DataFrame) -> pl.DataFrame:
    """The newest :data:`PLAYER_PROFILES_SCHEMA` row of each xuid."""
    return profiles.sort("xuid", "profile_date").unique("xuid", keep="last", maintain_order=True)


# --------------------------------------------------------------------------------------------------- matches


def _team_ids(player: Mapping[str, Any]) -> frozenset:
    ids = frozenset(e.get("TeamId") for e in player.get("PlayerTeamStats") or () if e)
    return ids - {None} or frozenset([player.get("LastTeamId")]) - {None}


def match_people(bodies: Sequence[Mapping[str, Any]], owner: int, friends: Iterable[int] = (),
                 known: Iterable[int] = ()) -> pl.DataFrame:
    """``match_id`` + :data:`MATCH_PEOPLE_SCHEMA` of each body the owner played (first body of a match id wins).

    ``known_teammates``: humans other than the owner sharing a ``TeamId`` with the owner (over every
    ``PlayerTeamStats`` entry of both) whose xuid is in ``known``; ``friends_xuids``: the humans of the match
    (either team) in ``friends``, sorted; ``with_friends``: that list is not empty.
    """
    friends, known = frozenset(friends), frozenset(known)
    owner_id = f"xuid({int(owner)})"
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for body in bodies:
        match_id = body.get("MatchId") if isinstance(body, dict) else None
        if match_id is None or match_id in seen:
            continue
        seen.add(match_id)
        players = body.get("Players") or ()
        me = next((p for p in players if p.get("PlayerId") == owner_id), None)
        if me is None:
            continue
        mine = _team_ids(me)
        others = [(x, p) for p in players if p is not me and (x := unwrap_player_id(p.get("PlayerId"))) is not None]
        present = sorted({x for x, _ in others if x in friends})
        rows.append({"match_id": match_id,
                     "known_teammates": sum(1 for x, p in others if x in known and mine & _team_ids(p)),
                     "with_friends": bool(present), "friends_xuids": present})
    return rows_frame(rows, {"match_id": pl.Utf8, **MATCH_PEOPLE_SCHEMA})


def match_people_of_participants(participants: pl.DataFrame, owner: int, friends: Iterable[int] = (),
                                 known: Iterable[int] = ()) -> pl.DataFrame:
    """:func:`match_people` from ``match_participants`` rows instead of bodies (matches known only from rows,
    e.g. imported from LevelUp): the same columns and rules, a shared team read from ``team_ids`` (``team_id``
    when null). Matches where the owner has no row are left out."""
    teams = pl.coalesce(pl.col("team_ids"), pl.concat_list(pl.col("team_id")))
    humans = participants.filter(pl.col("xuid").is_not_null()).with_columns(teams=teams)
    mine = humans.filter(pl.col("xuid") == owner).group_by("match_id").agg(
        owner_teams=pl.col("teams").list.explode(keep_nulls=False, empty_as_null=False).unique())
    others = humans.filter(pl.col("xuid") != owner).join(mine, on="match_id", how="inner")
    shared = pl.col("teams").list.set_intersection(pl.col("owner_teams")).list.len() > 0
    found = others.group_by("match_id").agg(
        known_teammates=(pl.col("xuid").is_in(list(frozenset(known))) & shared).sum().cast(pl.Int16),
        friends_xuids=pl.col("xuid").filter(pl.col("xuid").is_in(list(frozenset(friends)))).unique().sort())
    people = mine.select("match_id").join(found, on="match_id", how="left").with_columns(
        known_teammates=pl.col("known_teammates").fill_null(0),
        friends_xuids=pl.col("friends_xuids").fill_null([]))
    return people.with_columns(with_friends=pl.col("friends_xuids").list.len() > 0).select(
        "match_id", *MATCH_PEOPLE_SCHEMA).cast(MATCH_PEOPLE_SCHEMA)


def with_match_people(facts: pl.DataFrame, people: pl.DataFrame) -> pl.DataFrame:
    """``facts`` (``match_facts`` rows, order kept) with the :data:`MATCH_PEOPLE_SCHEMA` columns of
    :func:`match_people` (no friend: ``with_friends`` false, ``friends_xuids`` empty)."""
    out = facts.drop(list(MATCH_PEOPLE_SCHEMA), strict=False).join(people, on="match_id", how="left",
                                                                      maintain_order="left")
    return out.with_columns(known_teammates=pl.col("known_teammates").fill_null(0),
                            with_friends=pl.col("with_friends").fill_null(False),
                            friends_xuids=pl.col("friends_xuids").fill_null([]))


def session_people_aggs() -> list[pl.Expr]:
    """Aggregations of :data:`SESSION_PEOPLE_SCHEMA` over a session's ``match_facts`` rows (a row derived before
    these columns existed counts as no friend, no known teammate)."""
    return [
        pl.col("known_teammates").fill_null(0).max().alias("known_teammates"),
        pl.col("with_friends").fill_null(False).any().alias("with_friends"),
        pl.col("friends_xuids").explode().drop_nulls().unique().sort().alias("friends_xuids"),
    ]


def ensure_people_columns(facts: pl.DataFrame) -> pl.DataFrame:
    """``facts`` with the :data:`MATCH_PEOPLE_SCHEMA` columns (null) when it lacks them (partitions derived
    before they existed)."""
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in MATCH_PEOPLE_SCHEMA.items() if c not in facts.columns]
    return facts.with_columns(missing) if missing else facts


# --------------------------------------------------------------------------------------------------- teammates


def teammates(participants: pl.DataFrame, facts: pl.DataFrame, owner: int, month: str) -> pl.DataFrame:
    """Who the owner played with and against in one month (:data:`TEAMMATES_SCHEMA`, one row per other human,
    sorted by ``matches_same_team`` descending then xuid).

    ``participants``: the partition's ``match_participants`` rows (match_id, xuid, team_ids, outcome, kills,
    deaths, assists, time_played_seconds); ``facts``: its ``match_facts`` (match_id, start_time). Same team =
    the two ``team_ids`` lists (every ``PlayerTeamStats`` entry) share a TeamId; a match counts once per pair.
    """
    humans = participants.filter(pl.col("xuid").is_not_null()).unique(["match_id", "xuid"], keep="first")
    cols = ["match_id", "team_ids", "outcome", "kills", "deaths", "assists", "time_played_seconds"]
    me = humans.filter(pl.col("xuid") == owner).select(
        pl.col(c).alias(f"o_{c}") if c != "match_id" else pl.col(c) for c in cols)
    others = humans.filter(pl.col("xuid") != owner).select("match_id", "xuid", "team_ids", "kills", "deaths",
                                                           "assists")
    pairs = others.join(me, on="match_id", how="inner").join(
        facts.select("match_id", "start_time").unique("match_id"), on="match_id", how="left")
    if pairs.is_empty():
        return pl.DataFrame(schema=TEAMMATES_SCHEMA)
    same = pl.col("team_ids").list.set_intersection(pl.col("o_team_ids")).list.len() > 0
    pairs = pairs.with_columns(_same=same.fill_null(False))
    on_team, opposed = pl.col("_same"), ~pl.col("_same")

    def count(cond: pl.Expr) -> pl.Expr:
        return cond.cast(pl.Int32).sum()

    def total(column: str) -> pl.Expr:
        return pl.when(on_team).then(pl.col(column)).otherwise(0).cast(pl.Int64).sum()

    out = pairs.group_by("xuid").agg(
        matches_together=pl.len(),
        matches_same_team=count(on_team),
        matches_opposed=count(opposed),
        wins_together=count(on_team & (pl.col("o_outcome") == 2)),
        losses_together=count(on_team & (pl.col("o_outcome") == 3)),
        ties_together=count(on_team & (pl.col("o_outcome") == 1)),
        wins_against=count(opposed & (pl.col("o_outcome") == 2)),
        losses_against=count(opposed & (pl.col("o_outcome") == 3)),
        owner_kills=total("o_kills"), owner_deaths=total("o_deaths"), owner_assists=total("o_assists"),
        teammate_kills=total("kills"), teammate_deaths=total("deaths"), teammate_assists=total("assists"),
        time_played_together_seconds=pl.when(on_team).then(pl.col("o_time_played_seconds")).otherwise(0)
        .cast(pl.Float64).sum(),
        first_match_at=pl.col("start_time").min(),
        last_match_at=pl.col("start_time").max(),
    )
    out = with_teammate_ratios(out.rename({"xuid": "teammate_xuid"})).with_columns(
        xuid=pl.lit(owner, pl.Int64), month_start=pl.lit(str(month)))
    return out.select([pl.col(c).cast(t) for c, t in TEAMMATES_SCHEMA.items()]).sort(
        ["matches_same_team", "teammate_xuid"], descending=[True, False])


def with_teammate_ratios(df: pl.DataFrame) -> pl.DataFrame:
    """``combined_kd`` and ``win_rate_together`` from the additive columns (the formulas of ``mv_top_teammates``):
    (owner_kills + teammate_kills) / max(owner_deaths + teammate_deaths, 1); wins_together / matches_same_team
    (null without a same-team match)."""
    return df.with_columns(
        combined_kd=(pl.col("owner_kills") + pl.col("teammate_kills"))
        / pl.max_horizontal(pl.col("owner_deaths") + pl.col("teammate_deaths"), 1),
        win_rate_together=pl.when(pl.col("matches_same_team") > 0).then(
            pl.col("wins_together") / pl.col("matches_same_team")),
    )


def display_name(nickname: pl.Expr, gamertag: pl.Expr, xuid: pl.Expr) -> pl.Expr:
    """How a person is shown: ``"<nickname> (<gamertag>)"``, else the gamertag, else the xuid."""
    return (pl.when(nickname.is_not_null() & gamertag.is_not_null())
            .then(pl.format("{} ({})", nickname, gamertag))
            .otherwise(pl.coalesce(nickname, gamertag, xuid.cast(pl.Utf8))))


def top_teammates(teammates_rows: pl.DataFrame, friends: pl.DataFrame, players: pl.DataFrame) -> pl.DataFrame:
    """One owner's teammates over all months, best first — the same figures as the catalog's
    ``mv_top_teammates``: the sums of :data:`TEAMMATE_SUMS`, first/last match together, the ratios
    (:func:`with_teammate_ratios`), ``gamertag`` (``players``), ``nickname`` and ``is_friend`` (``friends``),
    ``name`` (:func:`display_name`) and ``teammate_rank`` (1 = most matches on the same team, then most wins,
    then xuid). Only players met on the owner's team at least once."""
    sums = teammates_rows.group_by("xuid", "teammate_xuid").agg(
        months=pl.len(), **{c: pl.col(c).sum() for c in TEAMMATE_SUMS},
        first_match_at=pl.col("first_match_at").min(), last_match_at=pl.col("last_match_at").max(),
    ).filter(pl.col("matches_same_team") > 0)
    named = friends.select("xuid", teammate_xuid="friend_xuid", nickname="nickname", is_friend=pl.lit(True)).unique(
        ["xuid", "teammate_xuid"])
    out = with_teammate_ratios(sums).join(named, on=["xuid", "teammate_xuid"], how="left").join(
        players.select(teammate_xuid="xuid", gamertag="gamertag").unique("teammate_xuid"), on="teammate_xuid",
        how="left")
    out = out.with_columns(
        is_friend=pl.col("is_friend").fill_null(False),
        name=display_name(pl.col("nickname"), pl.col("gamertag"), pl.col("teammate_xuid")),
    ).sort(["xuid", "matches_same_team", "wins_together", "teammate_xuid"], descending=[False, True, True, False])
    return out.with_columns(teammate_rank=pl.int_range(1, pl.len() + 1).over("xuid").cast(pl.Int32))
