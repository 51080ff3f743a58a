"""Expected figures computed directly from the raw JSON, independently of the transforms under test."""

from __future__ import annotations

from datetime import datetime

COUNTS = {"kills": "Kills", "deaths": "Deaths", "assists": "Assists", "shots_fired": "ShotsFired",
          "shots_hit": "ShotsHit"}


def player_totals(player: dict) -> dict:
    """kills, deaths, assists, shots_fired, shots_hit summed over all PlayerTeamStats entries; outcome;
    medals {name_id: count}."""
    totals = {col: 0 for col in COUNTS}
    medals: dict[int, int] = {}
    for entry in player["PlayerTeamStats"]:
        core = entry["Stats"]["CoreStats"]
        for col, field in COUNTS.items():
            totals[col] += core[field]
        for medal in core.get("Medals") or []:
            medals[medal["NameId"]] = medals.get(medal["NameId"], 0) + medal["Count"]
    return totals | {"outcome": player["Outcome"], "medals": medals}


def owner_rows(bodies, owner: int) -> dict[str, dict]:
    """``{match_id: totals | start_time}`` of the owner in every body where they played."""
    out = {}
    for body in bodies:
        for player in body["Players"]:
            if player["PlayerId"] == f"xuid({owner})":
                start = datetime.fromisoformat(body["MatchInfo"]["StartTime"])
                out[body["MatchId"]] = player_totals(player) | {"start_time": start}
    return out
