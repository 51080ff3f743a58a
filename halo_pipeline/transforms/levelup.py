"""LevelUp's rows (the legacy source) → the warehouse's frames, and where they disagree with the API's.

A **legacy document** is what ``halo-pipeline import levelup`` lands per (owner, match) under ``raw/levelup/``:
LevelUp's own rows of that match, untouched, grouped by LevelUp table::

    {"source": "levelup", "layout": "player_store" | "shared_matches", "match_id": "…",
     "owner": {"xuid": 2535…, "gamertag": "…"},
     "tables": {"match_stats": [row], "match_registry": [row], "match_participants": [rows],
                "medals_earned": [rows], "personal_score_awards": [rows], "highlight_events": [rows],
                "player_match_stats": [rows]}}

(tables LevelUp did not have are absent). Pure functions here: no Dagster, no I/O.

How LevelUp's columns map (read from a store written by LevelUp's own engine, ``../shared/legacy``, and checked
against the API's bodies of the same matches):

* ``match_stats.time_played_seconds`` is the MATCH duration truncated to whole seconds (1111 for a
  ``Duration`` of 1111.2 s whose owner played 1096 s), so it is our ``duration_seconds``; LevelUp's
  ``end_time`` is ``start_time + that`` (not the API's ``EndTime``). Timestamps are naive UTC.
* ``match_participants.score`` is the API's ``PersonalScore`` (235 where ``Score`` is 2), so it is our
  ``personal_score``; our ``score`` (the mode score) is unknown (null).
* ``accuracy`` and ``kda`` are the API's 2-decimal truncations (61.08 for 61.0859…); kept as stored.
  ``kd_ratio`` = kills / max(deaths, 1) is computed (LevelUp has none). An accuracy with no shot fired is
  null (our convention).
* ``medals_earned`` (player store) holds the owner's medals only; in ``shared_matches`` it has an ``xuid``.
* ``personal_score_awards`` names awards in LevelUp's language, not by NameId: the name is resolved through
  spnkr's English names and the French names below (:data:`FRENCH_AWARD_NAMES`); a name used by several
  NameIds (``Zone Captured``: 50, 75, 100 points) by its points per award. An unknown name keeps a null
  name_id (its count and points are kept).
* Known LevelUp defect: it read only a player's FIRST ``PlayerTeamStats`` entry, so a player who changed teams
  has wrong figures there (shots, accuracy…). :func:`disagreements` finds them against a landed API body.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
from spnkr.models.refdata import PersonalScoreNameId

from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms._common import rows_frame
from halo_pipeline.transforms.film import ALIASES_SCHEMA, HIGHLIGHT_EVENTS_SCHEMA
from halo_pipeline.transforms.skill import PLAYER_MATCH_SKILL_SCHEMA

LEVELUP = "levelup"
API = "api"
#: The column every table that can hold legacy rows has: ``api`` (derived from raw landing) or ``levelup``.
SOURCE_SCHEMA: dict[str, pl.DataType] = {"source": pl.Utf8}

#: The tables legacy documents fill, with their schemas (the transforms' + ``source``).
LEGACY_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "match_facts": tm.MATCH_FACTS_SCHEMA | SOURCE_SCHEMA,
    "match_participants": tm.MATCH_PARTICIPANTS_SCHEMA | SOURCE_SCHEMA,
    "medals": tm.MEDALS_SCHEMA | SOURCE_SCHEMA,
    "personal_scores": tm.PERSONAL_SCORES_SCHEMA | SOURCE_SCHEMA,
    "player_match_skill": PLAYER_MATCH_SKILL_SCHEMA | SOURCE_SCHEMA,
    "highlight_events": HIGHLIGHT_EVENTS_SCHEMA | SOURCE_SCHEMA,
}

#: One row per LevelUp figure that differs from the API's for the same match (match_id, the player's xuid, the
#: table and column compared, the medal / award name_id when the figure is one's count, both values).
DISAGREEMENTS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "table_name": pl.Utf8,
    "column_name": pl.Utf8,
    "name_id": pl.Int64,
    "levelup_value": pl.Float64,
    "api_value": pl.Float64,
}

#: LevelUp's French award names → NameIds: each checked against the API's ``PersonalScores`` (same count and
#: points) of the same match, for the matches of the LevelUp store in ``../shared/legacy``.
FRENCH_AWARD_NAMES: dict[str, tuple[int, ...]] = {
    "Joueur tué": (PersonalScoreNameId.KILLED_PLAYER,),
    "Joueur éliminé": (PersonalScoreNameId.ELIMINATED_PLAYER,),
    "Assistance kill": (PersonalScoreNameId.KILL_ASSIST,),
    "Assistance capteur": (PersonalScoreNameId.SENSOR_ASSIST,),
    "Balle prise": (PersonalScoreNameId.BALL_TAKEN,),
    "Contrôle balle": (PersonalScoreNameId.BALL_CONTROL,),
    "Porteur arrêté": (PersonalScoreNameId.CARRIER_STOPPED,),
    "Porteur tué": (PersonalScoreNameId.CARRIER_KILLED,),
    "Drapeau volé": (PersonalScoreNameId.FLAG_STOLEN,),
    "Drapeau ramené": (PersonalScoreNameId.FLAG_RETURNED,),
    "Zone capturée": (PersonalScoreNameId.ZONE_CAPTURED_50, PersonalScoreNameId.ZONE_CAPTURED_75,
                      PersonalScoreNameId.ZONE_CAPTURED_100),
    "Zone sécurisée": (PersonalScoreNameId.ZONE_SECURED,),
    "Personnalisé": (PersonalScoreNameId.CUSTOM,),
    "Auto-destruction": (PersonalScoreNameId.SELF_DESTRUCTION,),
}
#: Points per award of the NameIds that share a name (spnkr's comments; the rest are resolved by name alone).
_POINTS = {PersonalScoreNameId.ZONE_CAPTURED_50: 50, PersonalScoreNameId.ZONE_CAPTURED_75: 75,
           PersonalScoreNameId.ZONE_CAPTURED_100: 100}


def _award_names() -> dict[str, tuple[int, ...]]:
    names: dict[str, list[int]] = {}
    for award in PersonalScoreNameId:
        names.setdefault(award.display_name.casefold(), []).append(int(award))
    for name, ids in FRENCH_AWARD_NAMES.items():
        names.setdefault(name.casefold(), []).extend(int(i) for i in ids)
    return {name: tuple(dict.fromkeys(ids)) for name, ids in names.items()}


_AWARD_NAMES = _award_names()


def award_name_id(name: str | None, count: int | None, points: int | None) -> int | None:
    """The ``PersonalScores`` NameId of a LevelUp award name (English or French), ``None`` when unknown or
    ambiguous; a name shared by several NameIds is told apart by ``points / count``."""
    ids = _AWARD_NAMES.get((name or "").strip().casefold(), ())
    if len(ids) > 1 and count:
        ids = tuple(i for i in ids if _POINTS.get(i) == (points or 0) / count)
    return ids[0] if len(ids) == 1 else None


# --------------------------------------------------------------------------------------------------- helpers


def _first(rows: Sequence[dict] | None) -> dict:
    return rows[0] if rows else {}


def _xuid(value: Any) -> int | None:
    text = str(value or "").strip()
    if text.lower().startswith("xuid(") and text.endswith(")"):
        text = text[5:-1]
    return int(text) if text.isdigit() else None


def _time(value: Any) -> datetime | None:
    """A LevelUp timestamp (naive UTC, stored as ISO text in the document) as an aware UTC datetime."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pick(*rows: dict, column: str) -> Any:
    """The first non-null ``column`` of ``rows``."""
    for row in rows:
        value = row.get(column)
        if value is not None:
            return value
    return None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _round(value: Any) -> int | None:
    return None if value is None else round(float(value))


def _accuracy(stored: Any, fired: Any, hit: Any) -> float | None:
    if not fired:
        return None  # no shot fired: null (LevelUp wrote 0)
    return float(stored) if stored is not None else hit / fired * 100 if hit is not None else None


def _kda(stored: Any, kills: Any, deaths: Any, assists: Any) -> float | None:
    if stored is not None:
        return float(stored)
    if kills is None or deaths is None:
        return None
    return kills + (assists or 0) / 3 - deaths


def owner_of(doc: dict) -> int:
    """The owner's xuid of a legacy document."""
    return int(doc["owner"]["xuid"])


def start_time(doc: dict) -> datetime | None:
    """The match's start (UTC) of a legacy document."""
    tables = doc.get("tables") or {}
    return _time(_pick(_first(tables.get("match_stats")), _first(tables.get("match_registry")), column="start_time"))


# --------------------------------------------------------------------------------------------------- frames


def _medal_rows(doc: dict) -> list[tuple[int | None, int, int]]:
    """``(xuid, name_id, count)`` of the document's medals (the owner's when LevelUp kept no xuid)."""
    owner = owner_of(doc)
    out = []
    for row in (doc.get("tables") or {}).get("medals_earned") or ():
        name_id = row.get("medal_name_id")
        if name_id is None:
            continue
        xuid = _xuid(row["xuid"]) if row.get("xuid") is not None else owner
        out.append((xuid, int(name_id), int(row.get("count") or 0)))
    return out


def _facts_row(doc: dict, medal_counts: dict[int | None, int]) -> dict:
    tables = doc.get("tables") or {}
    owner = owner_of(doc)
    stats, registry = _first(tables.get("match_stats")), _first(tables.get("match_registry"))
    me = next((r for r in tables.get("match_participants") or () if _xuid(r.get("xuid")) == owner), {})

    def get(column: str, *more: str) -> Any:
        for name in (column, *more):
            value = _pick(stats, me, registry, column=name)
            if value is not None:
                return value
        return None

    kills, deaths, assists = get("kills"), get("deaths"), get("assists")
    fired, hit = get("shots_fired"), get("shots_hit")
    personal = _pick(stats, column="personal_score")
    if personal is None:
        personal = _pick(me, column="personal_score") if me.get("personal_score") is not None else me.get("score")
    duration = _pick(stats, column="time_played_seconds")  # LevelUp's name for the match duration
    return {
        "match_id": doc["match_id"],
        "xuid": owner,
        "start_time": _time(get("start_time")),
        "end_time": _time(get("end_time")),
        "duration_seconds": _num(duration if duration is not None else registry.get("duration_seconds")),
        "playable_duration_seconds": _num(registry.get("playable_duration_seconds")),
        "map_id": get("map_id"),
        "game_variant_id": get("game_variant_id"),
        "playlist_id": get("playlist_id"),
        "map_mode_pair_id": get("pair_id", "map_mode_pair_id"),
        "season_id": get("season_id"),
        "team_id": get("team_id"),
        "outcome": get("outcome"),
        "rank": get("rank"),
        "kills": kills,
        "deaths": deaths,
        "assists": assists,
        "kda": _kda(get("kda"), kills, deaths, assists),
        "kd_ratio": kills / max(deaths, 1) if kills is not None and deaths is not None else None,
        "accuracy": _accuracy(get("accuracy"), fired, hit),
        "shots_fired": fired,
        "shots_hit": hit,
        "score": _pick(stats, column="score"),
        "personal_score": personal,
        "damage_dealt": _round(get("damage_dealt")),
        "damage_taken": _round(get("damage_taken")),
        "headshot_kills": get("headshot_kills"),
        "melee_kills": get("melee_kills"),
        "grenade_kills": get("grenade_kills"),
        "power_weapon_kills": get("power_weapon_kills"),
        "max_killing_spree": get("max_killing_spree"),
        "medal_count": medal_counts.get(owner) if "medals_earned" in tables else None,
        "left_in_progress": get("left_early"),
        "source": LEVELUP,
    }


def _participant_row(doc: dict, row: dict, medal_counts: dict[int | None, int]) -> dict:
    xuid = _xuid(row.get("xuid"))
    kills, deaths, assists = row.get("kills"), row.get("deaths"), row.get("assists")
    fired, hit = row.get("shots_fired"), row.get("shots_hit")
    keyed_medals = any(r.get("xuid") is not None for r in (doc.get("tables") or {}).get("medals_earned") or ())
    return {
        "match_id": doc["match_id"],
        "player_id": f"xuid({xuid})" if xuid is not None else str(row.get("xuid")),
        "xuid": xuid,
        "is_human": xuid is not None,
        "player_type": 1 if xuid is not None else None,
        "team_id": row.get("team_id"),
        "outcome": row.get("outcome"),
        "rank": row.get("rank"),
        "kills": kills,
        "deaths": deaths,
        "assists": assists,
        "kda": _kda(row.get("kda"), kills, deaths, assists),
        "kd_ratio": kills / max(deaths, 1) if kills is not None and deaths is not None else None,
        "accuracy": _accuracy(row.get("accuracy"), fired, hit),
        "shots_fired": fired,
        "shots_hit": hit,
        "personal_score": row["personal_score"] if row.get("personal_score") is not None else row.get("score"),
        "damage_dealt": _round(row.get("damage_dealt")),
        "damage_taken": _round(row.get("damage_taken")),
        "headshot_kills": row.get("headshot_kills"),
        "max_killing_spree": row.get("max_killing_spree"),
        "medal_count": medal_counts.get(xuid) if keyed_medals or xuid == owner_of(doc) else None,
        "source": LEVELUP,
    }


def _event_row(doc: dict, row: dict) -> dict:
    extra = orjson.loads(row["raw_json"]) if row.get("raw_json") else {}
    event_type = row.get("event_type")
    is_medal = extra.get("is_medal")
    return {
        "match_id": doc["match_id"],
        "xuid": _xuid(_pick(row, extra, column="xuid") or row.get("killer_xuid")),
        "gamertag": _pick(row, extra, column="gamertag") or row.get("killer_gamertag"),
        "event_type": event_type,
        "time_ms": _pick(row, extra, column="time_ms"),
        "medal_value": extra.get("medal_value"),
        "medal_name": extra.get("medal_name"),
        "type_hint": _pick(row, extra, column="type_hint"),
        "is_medal": is_medal if is_medal is not None else (event_type == "medal" if event_type else None),
        "source": LEVELUP,
    }


def _skill_rows(doc: dict) -> list[dict]:
    tables = doc.get("tables") or {}
    rows = list(tables.get("player_match_stats") or ())
    if not rows:  # the shared layout keeps skill on the participants; the player store on match_stats
        rows = [r for r in tables.get("match_participants") or () if r.get("team_mmr") is not None]
    if not rows and _first(tables.get("match_stats")).get("team_mmr") is not None:
        rows = [{**_first(tables.get("match_stats")), "xuid": owner_of(doc)}]
    figures = {_xuid(r.get("xuid")): r for r in tables.get("match_participants") or ()}
    out = []
    for row in rows:
        xuid = _xuid(row.get("xuid"))
        mine = figures.get(xuid, {})
        out.append({
            "match_id": doc["match_id"], "xuid": xuid, "team_id": _pick(row, mine, column="team_id"),
            "team_mmr": row.get("team_mmr"), "enemy_team_mmr": row.get("enemy_mmr"),
            "kills": mine.get("kills"), "kills_expected": row.get("kills_expected"),
            "kills_stddev": row.get("kills_stddev"), "deaths": mine.get("deaths"),
            "deaths_expected": row.get("deaths_expected"), "deaths_stddev": row.get("deaths_stddev"),
            "source": LEVELUP,
        })
    return out


def legacy_frames(docs: Iterable[dict], tables: Iterable[str] | None = None) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` (:data:`LEGACY_SCHEMAS`, ``source`` = ``levelup``) of legacy documents, for ``tables``
    (default: all). match_facts rows are sorted by ``(start_time, match_id)``; the other tables keep the
    documents' order, highlight events LevelUp's (its ``id``, the film's order)."""
    wanted = list(tables) if tables is not None else list(LEGACY_SCHEMAS)
    rows: dict[str, list[dict]] = {name: [] for name in wanted}
    for doc in docs:
        medals = _medal_rows(doc)
        counts: dict[int | None, int] = {}
        for xuid, _, count in medals:
            counts[xuid] = counts.get(xuid, 0) + count
        t = doc.get("tables") or {}
        if "match_facts" in rows:
            rows["match_facts"].append(_facts_row(doc, counts))
        if "match_participants" in rows:
            rows["match_participants"] += [_participant_row(doc, r, counts) for r in t.get("match_participants") or ()]
        if "medals" in rows:
            rows["medals"] += [{"match_id": doc["match_id"], "player_id": f"xuid({x})" if x is not None else None,
                                "xuid": x, "name_id": n, "count": c, "source": LEVELUP} for x, n, c in medals]
        if "personal_scores" in rows:
            for award in t.get("personal_score_awards") or ():
                xuid = _xuid(award.get("xuid")) or owner_of(doc)
                rows["personal_scores"].append({
                    "match_id": doc["match_id"], "player_id": f"xuid({xuid})", "xuid": xuid,
                    "name_id": award_name_id(award.get("award_name"), award.get("award_count"),
                                             award.get("award_score")),
                    "count": award.get("award_count"), "total_personal_score": award.get("award_score"),
                    "source": LEVELUP})
        if "highlight_events" in rows:
            events = sorted(t.get("highlight_events") or (), key=lambda r: (r.get("id") is None, r.get("id") or 0))
            rows["highlight_events"] += [_event_row(doc, r) for r in events]
        if "player_match_skill" in rows:
            rows["player_match_skill"] += _skill_rows(doc)
    out = {name: rows_frame(rows[name], LEGACY_SCHEMAS[name]) for name in wanted}
    if "match_facts" in out:
        out["match_facts"] = out["match_facts"].sort("start_time", "match_id", nulls_last=True)
    return out


def legacy_aliases(docs: Iterable[dict]) -> pl.DataFrame:
    """``(xuid, gamertag)`` LevelUp knew: each document's owner and its participants with a gamertag (the
    :data:`halo_pipeline.transforms.film.ALIASES_SCHEMA` shape, distinct, sorted)."""
    rows = []
    for doc in docs:
        rows.append({"xuid": owner_of(doc), "gamertag": doc["owner"].get("gamertag")})
        rows += [{"xuid": _xuid(r.get("xuid")), "gamertag": r.get("gamertag")}
                 for r in (doc.get("tables") or {}).get("match_participants") or ()]
    df = rows_frame(rows, ALIASES_SCHEMA)
    return df.filter(pl.col("xuid").is_not_null() & (pl.col("gamertag").fill_null("") != "")).unique().sort(
        "xuid", "gamertag")


def unresolved_awards(doc: dict) -> list[str]:
    """Award names of a document whose NameId is unknown (kept with a null name_id)."""
    return [a.get("award_name") for a in (doc.get("tables") or {}).get("personal_score_awards") or ()
            if award_name_id(a.get("award_name"), a.get("award_count"), a.get("award_score")) is None]


# --------------------------------------------------------------------------------------------------- disagreements

#: Columns compared per table, with the tolerance under which two values agree (LevelUp keeps accuracy and
#: KDA truncated to 2 decimals, the duration in whole seconds, damage as floats).
_COMPARED: dict[str, dict[str, float]] = {
    "match_facts": {"start_time": 0.001, "team_id": 0, "outcome": 0, "kills": 0, "deaths": 0, "assists": 0,
                    "shots_fired": 0, "shots_hit": 0, "accuracy": 0.011, "kda": 0.011, "headshot_kills": 0,
                    "max_killing_spree": 0, "melee_kills": 0, "grenade_kills": 0, "power_weapon_kills": 0,
                    "personal_score": 0, "damage_dealt": 1, "damage_taken": 1, "duration_seconds": 1},
    "match_participants": {"team_id": 0, "outcome": 0, "rank": 0, "kills": 0, "deaths": 0, "assists": 0,
                           "shots_fired": 0, "shots_hit": 0, "accuracy": 0.011, "personal_score": 0,
                           "damage_dealt": 1, "damage_taken": 1, "headshot_kills": 0, "max_killing_spree": 0},
}


def _value(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return None if value is None else float(value)


def disagreements(doc: dict, api_body: dict) -> pl.DataFrame:
    """Where the LevelUp figures of a document differ from the API's stats body of the same match
    (:data:`DISAGREEMENTS_SCHEMA`): the owner's facts, every participant LevelUp kept, the medal counts and the
    resolved personal-score awards of the players LevelUp kept them for. A figure LevelUp did not keep (null)
    is not compared; a medal or award on one side only counts as 0 on the other."""
    legacy = legacy_frames([doc], ["match_facts", "match_participants", "medals", "personal_scores"])
    owner = owner_of(doc)
    api = {"match_facts": tm.match_facts([api_body], owner), "match_participants": tm.match_participants([api_body]),
           "medals": tm.medals([api_body]), "personal_scores": tm.personal_scores([api_body])}
    match_id = doc["match_id"]
    out: list[dict] = []

    def differ(table: str, xuid: int | None, column: str, name_id: int | None, ours: Any, theirs: Any,
               tolerance: float = 0) -> None:
        a, b = _value(ours), _value(theirs)
        if a is None or (b is not None and abs(a - b) <= tolerance):
            return
        out.append({"match_id": match_id, "xuid": xuid, "table_name": table, "column_name": column,
                    "name_id": name_id, "levelup_value": a, "api_value": b})

    for table in ("match_facts", "match_participants"):
        theirs = {r["xuid"]: r for r in api[table].iter_rows(named=True)}
        for row in legacy[table].iter_rows(named=True):
            other = theirs.get(row["xuid"], {})
            for column, tolerance in _COMPARED[table].items():
                differ(table, row["xuid"], column, None, row[column], other.get(column), tolerance)
    for table, value_columns in (("medals", ("count",)), ("personal_scores", ("count", "total_personal_score"))):
        ours_df = legacy[table].filter(pl.col("name_id").is_not_null())
        players = set(ours_df["xuid"].to_list()) | ({owner} if table == "medals" and "medals_earned"
                                                     in (doc.get("tables") or {}) else set())
        theirs_df = api[table].filter(pl.col("xuid").is_in(list(players)))
        ours = {(r["xuid"], r["name_id"]): r for r in ours_df.iter_rows(named=True)}
        theirs = {(r["xuid"], r["name_id"]): r for r in theirs_df.iter_rows(named=True)}
        keys = set(ours) | set(theirs)
        if table == "personal_scores" and unresolved_awards(doc):  # an unnamed award: compare the named ones
            keys = set(ours)
        for key in sorted(keys, key=lambda k: (k[0] or 0, k[1] or 0)):
            for column in value_columns:
                differ(table, key[0], column, key[1], (ours.get(key) or {}).get(column, 0),
                       (theirs.get(key) or {}).get(column, 0))
    return rows_frame(out, DISAGREEMENTS_SCHEMA)
