"""The people sections of the player report: the owner's profile (service tag, emblem, career rank), the top
teammates (friends by nickname) and the sessions played with friends. HTML fragments, from the warehouse."""

from __future__ import annotations

import html

import polars as pl

from halo_pipeline.services.friends import read_friends
from halo_pipeline.services.people import latest_profile, read_players
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import schema
from halo_pipeline.transforms import people as tp

#: Teammates listed by the report.
TOP_TEAMMATES = 10


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def profile_html(profile: dict | None) -> str:
    """One paragraph: service tag, career rank (title, rank, XP toward the next), emblem, backdrop, profile day."""
    if profile is None:
        return "<p class='profile'>No profile fetched yet (the next sync fetches it).</p>"
    parts = []
    if profile["service_tag"]:
        parts.append(f"service tag <b>{html.escape(profile['service_tag'])}</b>")
    if profile["career_rank"] is not None:
        rank = f"career rank <b>{html.escape(profile['career_rank_title'] or str(profile['career_rank']))}</b> " \
               f"(rank {profile['career_rank']}"
        if profile["career_rank_max"]:
            rank += ", the top rank)"
        elif profile["career_rank_xp_required"]:
            rank += f", {profile['career_rank_xp']:,} / {profile['career_rank_xp_required']:,} XP to the next)"
        else:
            rank += ")"
        parts.append(rank)
    for label, column in (("emblem", "emblem_path"), ("nameplate", "nameplate_path"), ("backdrop", "backdrop_path")):
        if profile[column]:
            parts.append(f"{label} <code>{html.escape(profile[column])}</code>")
    parts.append(f"profile of {profile['profile_date']:%Y-%m-%d} (UTC)")
    return "<p class='profile'>" + " · ".join(parts) + "</p>"


def names_of(wh: Warehouse, owner: int) -> pl.DataFrame:
    """``xuid, gamertag`` of the players the owner met: the ``players`` table, else the owner's ``xuid_aliases``."""
    aliases = wh.player_table("xuid_aliases", owner, {"xuid": pl.Int64, "gamertag": pl.Utf8})
    known = read_players(wh).select("xuid", "gamertag").drop_nulls("gamertag")
    return pl.concat([known, aliases.select("xuid", "gamertag").drop_nulls()], how="vertical_relaxed").unique(
        "xuid", keep="first", maintain_order=True)


def teammates_html(top: pl.DataFrame, limit: int = TOP_TEAMMATES) -> str:
    """The ``limit`` first rows of :func:`~halo_pipeline.transforms.people.top_teammates`."""
    if top.is_empty():
        return "<h2>Top teammates</h2><p>No teammate yet.</p>"
    rows = [[r["teammate_rank"], r["name"] + (" ★" if r["is_friend"] else ""), r["matches_same_team"],
             f"{r['wins_together']}–{r['losses_together']}", _ratio(r["win_rate_together"] and
                                                                     r["win_rate_together"] * 100, 0) + " %",
             _ratio(r["combined_kd"]), r["matches_opposed"]] for r in top.head(limit).iter_rows(named=True)]
    return ("<h2>Top teammates</h2><p>★ declared friend (by nickname). Same team = a shared team in the match.</p>"
            + _table(["#", "teammate", "matches together", "W–L", "win rate", "combined K/D", "matches against"],
                     rows))


def friend_sessions_html(sessions: pl.DataFrame, facts: pl.DataFrame, friend_names: dict[int, str]) -> str:
    """The sessions with friends (date, matches, W–L, K/D, who), and the owner's win rate and K/D with and
    without friends (from ``match_facts.with_friends``)."""
    sessions = tp.ensure_people_columns(sessions)
    facts = tp.ensure_people_columns(facts)
    with_friends = sessions.filter(pl.col("with_friends").fill_null(False)).sort("start_time", descending=True)
    lines = [f"<h2>Sessions with friends</h2><p>{with_friends.height} of {sessions.height} sessions had a "
             "declared friend in at least one match."]
    for label, part in (("with friends", facts.filter(pl.col("with_friends").fill_null(False))),
                        ("without", facts.filter(~pl.col("with_friends").fill_null(False)))):
        if part.height:
            wins = int((part["outcome"] == 2).sum())
            kd = int(part["kills"].cast(pl.Int64).sum()) / max(int(part["deaths"].cast(pl.Int64).sum()), 1)
            lines.append(f" Matches {label}: {part.height}, win rate {wins / part.height * 100:.0f} %, K/D {kd:.2f}.")
    lines.append("</p>")
    if with_friends.height:
        rows = [[f"{r['start_time']:%Y-%m-%d %H:%M}", r["match_count"], f"{r['wins']}–{r['losses']}",
                 _ratio(r["kd_ratio"]), ", ".join(friend_names.get(x, str(x)) for x in r["friends_xuids"] or [])]
                for r in with_friends.iter_rows(named=True)]
        lines.append(_table(["session start (UTC)", "matches", "W–L", "K/D", "friends"], rows))
    return "".join(lines)


def people_sections(wh: Warehouse, owner: int) -> tuple[str, list[str]]:
    """``(profile paragraph, [top teammates, sessions with friends])`` of ``owner``'s report."""
    friends = read_friends(wh, owner)
    names = names_of(wh, owner)
    teammates = wh.player_table("teammates", owner, schema("teammates"))
    top = tp.top_teammates(teammates, friends, names)
    named = friends.join(names.rename({"gamertag": "_known"}), left_on="friend_xuid", right_on="xuid", how="left")
    friend_names = dict(zip(named["friend_xuid"].to_list(), named.select(tp.display_name(
        pl.col("nickname"), pl.coalesce("_known", "gamertag"), pl.col("friend_xuid")))
        .to_series().to_list(), strict=True))
    sessions = wh.player_table("session_stats", owner, schema("session_stats"))
    facts = wh.player_table("match_facts", owner, schema("match_facts"))
    return profile_html(latest_profile(wh, owner)), [teammates_html(top),
                                                     friend_sessions_html(sessions, facts, friend_names)]
