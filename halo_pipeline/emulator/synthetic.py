"""Synthetic Halo Infinite players, built entirely in code from a seed (no recordings needed).

:class:`SyntheticWorld` generates registered players who share matches over several months, in several
playlists and modes, with the wire format of the real API: every body parses with spnkr's models. Numbers are
plausible rather than realistic, and internally consistent: ``KDA`` is Halo's ``kills + assists/3 − deaths``
truncated to 2 decimals and ``Accuracy`` is ``hit/fired*100`` truncated to 2 decimals (both as the recorded
responses do), team stats are the sums of their players' ``PlayerTeamStats`` entries, a team's kills are the
other team's deaths (minus suicides), personal scores add up to ``PersonalScore``.

Deterministic: the same seed and the same sequence of :meth:`SyntheticWorld.add_matches` calls give the same
bodies. Asset ids (maps, playlists, variants, map-mode pairs) are UUIDv5 of the seed and the asset's name.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import orjson
from spnkr.models.refdata import (
    AssetKind,
    BotDifficulty,
    GameVariantCategory,
    LifecycleMode,
    MedalNameId,
    Outcome,
    PersonalScoreNameId,
    PlayerType,
    PlaylistExperience,
    SkillResultCode,
)

from halo_pipeline.emulator import profiles
from halo_pipeline.emulator.film_encoder import Filler, SyntheticFilm, synthetic_film
from halo_pipeline.emulator.wire import (
    EMULATOR_NAMESPACE,
    HIGHLIGHT_CHUNK_NAME,
    HistoryItem,
    duration_ms,
    film_asset_id,
    film_manifest,
    format_duration,
    format_time,
    history_item,
    user_body,
    wrap_player,
)

XUID_PREFIX = 2533274000000000
_CLEARANCE_ID = "0b91d9c9-819e-4ac2-97bd-e537a4b05b5a"
_TIERS = ("Bronze", "Silver", "Gold", "Platinum", "Diamond", "Onyx")
_MEDAL = {m.display_name: m for m in MedalNameId}
_WORDS_A = ("Crimson", "Silent", "Rapid", "Frozen", "Lucky", "Iron",
            "Neon", "Rogue", "Solar", "Shadow", "Atomic", "Wild")
_WORDS_B = ("Falcon", "Grunt", "Wolf", "Jackal", "Hornet", "Titan",
            "Pixel", "Viper", "Comet", "Badger", "Ghost", "Otter")


# --------------------------------------------------------------------------------------------------------
# Catalogue: modes, playlists, maps
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mode:
    name: str
    category: GameVariantCategory
    stats_key: str | None  # mode-specific Stats block
    kills_per_player: float  # mean kills of an average player in a 4v4 match
    minutes: tuple[float, float]


MODES: dict[str, _Mode] = {
    m.name: m
    for m in (
        _Mode("Slayer", GameVariantCategory.MULTIPLAYER_SLAYER, None, 13.0, (8, 12)),
        _Mode("CTF", GameVariantCategory.MULTIPLAYER_CTF, "CaptureTheFlagStats", 11.0, (10, 15)),
        _Mode("Oddball", GameVariantCategory.MULTIPLAYER_ODDBALL, "OddballStats", 10.0, (8, 14)),
        _Mode("Strongholds", GameVariantCategory.MULTIPLAYER_STRONGHOLDS, "ZonesStats", 11.0, (9, 13)),
        _Mode("King of the Hill", GameVariantCategory.MULTIPLAYER_KING_OF_THE_HILL, "ZonesStats", 11.0, (9, 13)),
    )
}


@dataclass(frozen=True)
class _PlaylistSpec:
    name: str
    prefix: str  # game variant name prefix, "Ranked:Slayer"
    ranked: bool
    experience: PlaylistExperience
    team_size: int
    modes: tuple[str, ...]
    maps: tuple[str, ...]
    weight: float


_ARENA_MAPS = ("Live Fire", "Recharge", "Streets", "Aquarius", "Bazaar", "Empyrean", "Solitude", "Catalyst")
_BTB_MAPS = ("Fragmentation", "Highpower", "Deadlock")
PLAYLISTS: tuple[_PlaylistSpec, ...] = (
    _PlaylistSpec("Ranked Arena", "Ranked", True, PlaylistExperience.ARENA, 4, tuple(MODES), _ARENA_MAPS, 0.40),
    _PlaylistSpec("Quick Play", "Arena", False, PlaylistExperience.ARENA, 4, tuple(MODES), _ARENA_MAPS, 0.35),
    _PlaylistSpec("Big Team Battle", "BTB", False, PlaylistExperience.BTB, 8, ("Slayer", "CTF", "Strongholds"),
                  _BTB_MAPS, 0.15),
)
_CUSTOM_SHARE = 0.10  # the remaining share of matches are custom games (LifecycleMode 1), often with bots


@dataclass(frozen=True)
class SyntheticPlayer:
    """A registered synthetic player: 16-digit xuid (``2533274…``) and gamertag (≤ 15 characters)."""

    xuid: int
    gamertag: str


@dataclass
class _Human:
    xuid: int
    gamertag: str
    skill: float
    csr: dict[str, int] = field(default_factory=dict)  # ranked playlist name -> current CSR


@dataclass(frozen=True)
class _AssetRef:
    kind: AssetKind
    asset_id: str
    version_id: str
    name: str

    def ref(self) -> dict[str, Any]:
        return {"AssetKind": self.kind.value, "AssetId": self.asset_id, "VersionId": self.version_id}


@dataclass
class _SkillLine:
    team_id: int
    kills: int
    deaths: int
    expected_kills: float
    expected_deaths: float
    csr: tuple[int, int] | None  # pre/post CSR (ranked playlists only)


@dataclass
class _Match:
    match_id: str
    start: datetime
    body: dict[str, Any]
    raw: bytes
    team_mmrs: dict[int, float] | None  # None: no skill (custom games)
    skill: dict[int, _SkillLine]


def _uuid(seed: int, *parts: object) -> str:
    return str(uuid.uuid5(EMULATOR_NAMESPACE, "/".join(str(p) for p in (seed, *parts))))


def _kda(kills: int, assists: int, deaths: int) -> float:
    """Halo's KDA, truncated toward zero to 2 decimals (as every recorded body has it)."""
    value = (Fraction(kills) + Fraction(assists, 3) - deaths) * 100
    return int(value) / 100  # int() truncates toward zero


def _accuracy(hit: int, fired: int) -> float:
    """``hit/fired*100`` truncated to 2 decimals (0 when nothing was fired)."""
    return (hit * 10000 // fired) / 100 if fired else 0.0


def _csr_container(value: int | None) -> dict[str, Any]:
    """A ``CsrContainer``; ``None`` gives the unranked one (Value -1, empty tier)."""
    if value is None:
        return {"Value": -1, "MeasurementMatchesRemaining": 0, "Tier": "", "TierStart": 0, "SubTier": 0,
                "NextTier": "", "NextTierStart": 0, "NextSubTier": 0, "InitialMeasurementMatches": 0}
    if value >= 1500:
        tier, start, sub, next_tier, next_start, next_sub = "Onyx", 1500, 0, "Onyx", 1500, 0
    else:
        index, sub = value // 300, (value % 300) // 50
        tier, start = _TIERS[index], index * 300 + sub * 50
        next_start = start + 50
        next_tier, next_sub = (tier, sub + 1) if sub < 5 else (_TIERS[index + 1], 0)
    return {"Value": value, "MeasurementMatchesRemaining": 0, "Tier": tier, "TierStart": start, "SubTier": sub,
            "NextTier": next_tier, "NextTierStart": next_start, "NextSubTier": next_sub,
            "InitialMeasurementMatches": 5}


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    scale = sum(weights)
    raw = [total * w / scale for w in weights]
    parts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[: total - sum(parts)]:
        parts[i] += 1
    return parts


# --------------------------------------------------------------------------------------------------------
# Per-player counters → wire Stats blocks
# --------------------------------------------------------------------------------------------------------
_MODE_TIME_FIELDS = {"TimeAsFlagCarrier", "TimeAsSkullCarrier", "LongestTimeAsSkullCarrier", "StrongholdOccupationTime"}
_MODE_MAX_FIELDS = {"LongestTimeAsSkullCarrier"}


@dataclass
class _Line:
    """What one player did on one team (one ``PlayerTeamStats`` entry), before formatting."""

    counts: Counter = field(default_factory=Counter)
    max_spree: int = 0
    medals: Counter = field(default_factory=Counter)  # MedalNameId -> count
    scores: Counter = field(default_factory=Counter)  # PersonalScoreNameId -> count
    mode: Counter = field(default_factory=Counter)  # wire field name -> int (times in ms)

    def split(self, share: float) -> tuple[_Line, _Line]:
        """Two lines whose sums are this one (``share`` of each count goes to the first)."""
        first, second = _Line(), _Line()
        for source, a, b in ((self.counts, first.counts, second.counts), (self.medals, first.medals, second.medals),
                             (self.scores, first.scores, second.scores), (self.mode, first.mode, second.mode)):
            for key, value in source.items():
                a[key] = round(value * share)
                b[key] = value - a[key]
        for part in (first, second):
            part.max_spree = min(self.max_spree, part.counts["kills"])
            part.counts["spawns"] = part.counts["deaths"] + 1
        for key in _MODE_MAX_FIELDS & self.mode.keys():
            first.mode[key] = min(self.mode[key], first.mode.get("TimeAsSkullCarrier", self.mode[key]))
            second.mode[key] = min(self.mode[key], second.mode.get("TimeAsSkullCarrier", self.mode[key]))
        return first, second


_SCORE_VALUES = {
    PersonalScoreNameId.KILLED_PLAYER: 100, PersonalScoreNameId.KILL_ASSIST: 50,
    PersonalScoreNameId.MARK_ASSIST: 10, PersonalScoreNameId.SELF_DESTRUCTION: -100,
    PersonalScoreNameId.FLAG_CAPTURED: 300, PersonalScoreNameId.FLAG_TAKEN: 10,
    PersonalScoreNameId.FLAG_RETURNED: 25, PersonalScoreNameId.RUNNER_STOPPED: 25,
    PersonalScoreNameId.BALL_TAKEN: 10, PersonalScoreNameId.CARRIER_STOPPED: 25,
    PersonalScoreNameId.BALL_CONTROL: 50, PersonalScoreNameId.ZONE_CAPTURED_100: 100,
    PersonalScoreNameId.ZONE_SECURED: 25, PersonalScoreNameId.HILL_CONTROL: 25,
    PersonalScoreNameId.HILL_SCORED: 100,
}


def _core_stats(lines: list[_Line], rounds: tuple[int, int, int], score: int | None = None) -> dict[str, Any]:
    """``CoreStats`` of the sum of ``lines`` (one player-team entry, or a whole team)."""
    c: Counter = Counter()
    medals: Counter = Counter()
    scores: Counter = Counter()
    for line in lines:
        c.update(line.counts)
        medals.update(line.medals)
        scores.update(line.scores)
    personal = [
        {"NameId": int(k), "Count": n, "TotalPersonalScoreAwarded": n * _SCORE_VALUES[k]}
        for k, n in scores.items() if n
    ]
    spawns = max(c["spawns"], 1)
    return {
        "Score": c["score"] if score is None else score,
        "PersonalScore": sum(p["TotalPersonalScoreAwarded"] for p in personal),
        "RoundsWon": rounds[0], "RoundsLost": rounds[1], "RoundsTied": rounds[2],
        "Kills": c["kills"], "Deaths": c["deaths"], "Assists": c["assists"],
        "KDA": _kda(c["kills"], c["assists"], c["deaths"]),
        "Suicides": c["suicides"], "Betrayals": c["betrayals"],
        "AverageLifeDuration": format_duration(round(c["alive_ms"] / spawns / 100) / 10),
        "GrenadeKills": c["grenade_kills"], "HeadshotKills": c["headshot_kills"], "MeleeKills": c["melee_kills"],
        "PowerWeaponKills": c["power_weapon_kills"], "ShotsFired": c["shots_fired"], "ShotsHit": c["shots_hit"],
        "Accuracy": _accuracy(c["shots_hit"], c["shots_fired"]),
        "DamageDealt": c["damage_dealt"], "DamageTaken": c["damage_taken"],
        "CalloutAssists": c["callout_assists"], "VehicleDestroys": c["vehicle_destroys"],
        "DriverAssists": c["driver_assists"], "Hijacks": c["hijacks"], "EmpAssists": c["emp_assists"],
        "MaxKillingSpree": max((line.max_spree for line in lines), default=0),
        "Medals": [{"NameId": int(k), "Count": n, "TotalPersonalScoreAwarded": 0} for k, n in medals.items() if n],
        "PersonalScores": personal,
        "DeprecatedDamageDealt": float(c["damage_dealt"]), "DeprecatedDamageTaken": float(c["damage_taken"]),
        "Spawns": c["spawns"], "ObjectivesCompleted": c["objectives_completed"],
    }


def _mode_stats(lines: list[_Line]) -> dict[str, Any]:
    total: Counter = Counter()
    for line in lines:
        for key, value in line.mode.items():
            total[key] = max(total[key], value) if key in _MODE_MAX_FIELDS else total[key] + value
    return {k: format_duration(v / 1000) if k in _MODE_TIME_FIELDS else v for k, v in total.items()}


def _stats(lines: list[_Line], mode: _Mode, rounds: tuple[int, int, int], score: int | None = None) -> dict[str, Any]:
    core = _core_stats(lines, rounds, score)
    out: dict[str, Any] = {"CoreStats": core}
    if mode.stats_key:
        out[mode.stats_key] = _mode_stats(lines)
    out["PvpStats"] = {"Kills": core["Kills"], "Deaths": core["Deaths"], "Assists": core["Assists"], "KDA": core["KDA"]}
    return out


# --------------------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------------------
class SyntheticWorld:
    """Deterministic synthetic players and their matches.

    Args:
        seed: everything (xuids, gamertags, asset ids, matches) follows from it.
        players: registered players, 1–99: gamertags ``Demo Spartan 1`` … (≤ 15 characters), xuids
            ``2533274`` followed by 9 seeded digits.
        months: calendar months of history, ending with the month of ``end``.
        matches_per_month: matches generated per month across the whole world; each holds 1–3 registered
            players (parties share matches), so a player plays roughly ``matches_per_month × 1.4 / players``.
        end: last day of generated history (UTC).

    Matches: 4v4 (Big Team Battle 8v8), ranked and unranked matchmade (LifecycleMode 3) and custom games
    (LifecycleMode 1, often with bots ``bid(…)``), unregistered humans filling the teams, occasional team
    changes (two ``PlayerTeamStats`` entries) and quitters (Outcome 4). Skill exists for matchmade matches
    (custom games answer 404, as they have no MMR); CSR pre/post for ranked ones.

    Films: every matchmade match has a theater film whose highlight-events chunk spnkr's reader decodes to
    events consistent with the stats (:mod:`halo_pipeline.emulator.film_encoder`: a kill/death/medal event
    per kill/death/medal of each human, a few mode events; film major versions 30–41). Custom games have
    none (manifest 404). A film is built when first asked for (~10–20 ms) and the last
    :data:`FILM_CACHE_SIZE` are kept; it depends only on the seed and the match, never on the order of calls.

    Thread-safe: the emulator's server thread reads while a test calls :meth:`add_matches`.
    """

    #: Films kept built (a manifest request is followed by the chunk request: both hit the cache).
    FILM_CACHE_SIZE = 32

    def __init__(self, seed: int, players: int = 3, months: int = 6, matches_per_month: int = 30,
                 end: date = date(2025, 6, 30)) -> None:
        if not 1 <= players <= 99:
            raise ValueError(f"players must be between 1 and 99, got {players}")
        if months < 1 or matches_per_month < 0:
            raise ValueError("months must be >= 1 and matches_per_month >= 0")
        self.seed = seed
        self.end = end
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._bot_counter = 0
        self._humans: dict[int, _Human] = {}
        self._films: OrderedDict[str, SyntheticFilm | None] = OrderedDict()
        self._filler: Filler | None = None  # built on the first film (~20 ms)
        self.players: list[SyntheticPlayer] = []
        for i in range(players):
            human = self._new_human(f"Demo Spartan {i + 1}", skill=self._rng.gauss(0.6, 0.5))
            self.players.append(SyntheticPlayer(human.xuid, human.gamertag))
        self._strangers = [self._new_human(self._stranger_tag(), self._rng.gauss(0, 0.8)) for _ in range(60)]
        self._build_catalogue()
        self._matches: dict[str, _Match] = {}
        self._history: dict[int, list[HistoryItem]] = {p.xuid: [] for p in self.players}
        self._busy_until: dict[int, datetime] = {}
        self._generate_history(months, matches_per_month)

    # ---- construction -----------------------------------------------------------------------------------
    def _new_human(self, gamertag: str, skill: float) -> _Human:
        while True:
            xuid = XUID_PREFIX + self._rng.randrange(10**8, 10**9)
            if xuid not in self._humans:
                break
        human = _Human(xuid, gamertag, skill)
        self._humans[xuid] = human
        return human

    def _stranger_tag(self) -> str:
        taken = {h.gamertag.lower() for h in self._humans.values()}
        while True:
            tag = f"{self._rng.choice(_WORDS_A)}{self._rng.choice(_WORDS_B)}{self._rng.randrange(1, 999)}"
            if len(tag) <= 15 and tag.lower() not in taken:
                return tag

    def _asset(self, kind: AssetKind, name: str) -> _AssetRef:
        # Content ids (maps, playlists, modes) are the same in every world, like the real game's: reference
        # files (static/reference) can name them whatever the seed.
        return _AssetRef(kind, _uuid(0, kind.name, name), _uuid(0, kind.name, name, "v1"), name)

    def _build_catalogue(self) -> None:
        maps = sorted(set(_ARENA_MAPS) | set(_BTB_MAPS))
        self._maps = {m: self._asset(AssetKind.MAP, m) for m in maps}
        self._levels = {m: _uuid(0, "level", m) for m in maps}
        self._engine = {m: self._asset(AssetKind.ENGINE_GAME_VARIANT, f"{m}-Engine") for m in MODES}
        self._variants: dict[tuple[str, str], _AssetRef] = {}
        self._pairs: dict[tuple[str, str, str], _AssetRef] = {}
        self._playlists: dict[str, _AssetRef] = {}
        for spec in PLAYLISTS:
            self._playlists[spec.name] = self._asset(AssetKind.PLAYLIST, spec.name)
            for mode in spec.modes:
                variant = self._variants.setdefault(
                    (spec.prefix, mode), self._asset(AssetKind.UGC_GAME_VARIANT, f"{spec.prefix}:{mode}"))
                for map_name in spec.maps:
                    self._pairs[(spec.name, mode, map_name)] = self._asset(
                        AssetKind.MAP_MODE_PAIR, f"{variant.name} on {map_name}")
        for mode in MODES:  # custom games use the arena variants
            self._variants.setdefault(("Arena", mode), self._asset(AssetKind.UGC_GAME_VARIANT, f"Arena:{mode}"))
        self._assets_by_id: dict[tuple[str, str, str], tuple[str, Any]] = {}
        for ref in self._maps.values():
            self._assets_by_id[("maps", ref.asset_id, ref.version_id)] = ("map", ref)
        for (_prefix, mode), ref in self._variants.items():
            self._assets_by_id[("ugcGameVariants", ref.asset_id, ref.version_id)] = ("variant", (ref, mode))
        for (playlist, mode, map_name), ref in self._pairs.items():
            self._assets_by_id[("mapModePairs", ref.asset_id, ref.version_id)] = (
                "pair", (ref, playlist, mode, map_name))
        for spec in PLAYLISTS:
            ref = self._playlists[spec.name]
            self._assets_by_id[("playlists", ref.asset_id, ref.version_id)] = ("playlist", (ref, spec))

    def _generate_history(self, months: int, matches_per_month: int) -> None:
        first = date(self.end.year, self.end.month, 1)
        for _ in range(months - 1):
            first = (first - timedelta(days=1)).replace(day=1)
        month = first
        while month <= self.end:
            next_month = (month + timedelta(days=32)).replace(day=1)
            last_day = min(next_month - timedelta(days=1), self.end)
            days = (last_day - month).days + 1
            made = 0
            evenings = sorted(self._rng.sample(range(days), k=min(days, max(1, matches_per_month // 3 + 1))))
            sessions = [datetime.combine(month + timedelta(days=d), time(18), tzinfo=UTC)
                        + timedelta(minutes=self._rng.randrange(0, 240)) for d in evenings]
            for i, session_start in enumerate(sessions):
                remaining = matches_per_month - made
                if remaining <= 0:
                    break
                size = remaining if i == len(sessions) - 1 else min(remaining, self._rng.randint(2, 5))
                party = self._pick_party()
                moment = session_start
                for _ in range(size):
                    match = self._play(party, moment, custom=self._rng.random() < _CUSTOM_SHARE)
                    moment = datetime.fromisoformat(match.body["MatchInfo"]["EndTime"].replace("Z", "+00:00"))
                    moment += timedelta(seconds=self._rng.randint(40, 150))
                    made += 1
            month = next_month

    def _pick_party(self) -> list[int]:
        xuids = [p.xuid for p in self.players]
        roll = self._rng.random()
        size = 3 if roll < 0.15 else 2 if roll < 0.40 else 1
        return self._rng.sample(xuids, k=min(size, len(xuids)))

    # ---- one match ----------------------------------------------------------------------------------------
    def _play(self, party: list[int], start: datetime, custom: bool, spec: _PlaylistSpec | None = None) -> _Match:
        rng = self._rng
        if custom:
            spec = None
            mode = MODES[rng.choice(("Slayer", "CTF", "Oddball", "Strongholds", "King of the Hill"))]
            map_name, team_size = rng.choice(_ARENA_MAPS), 4
        else:
            spec = spec or rng.choices(PLAYLISTS, weights=[p.weight for p in PLAYLISTS])[0]
            mode = MODES[rng.choice(spec.modes)]
            map_name, team_size = rng.choice(spec.maps), spec.team_size
        minutes = rng.uniform(*mode.minutes)
        duration_s = round(minutes * 60, 3)
        match_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))

        # Teams: the party together, then unregistered humans (and bots in custom games).
        party_team = rng.randrange(2)
        roster: list[tuple[str, int | None, int, float]] = []  # (player id, xuid or None, team, skill)
        for xuid in party:
            roster.append((wrap_player(xuid), xuid, party_team, self._humans[xuid].skill))
        strangers = iter(rng.sample([h for h in self._strangers if h.xuid not in party], k=2 * team_size))
        bots = rng.randint(2, 2 * team_size - len(party)) if custom and rng.random() < 0.6 else 0
        slots = [party_team] * (team_size - len(party)) + [1 - party_team] * team_size
        rng.shuffle(slots)
        difficulty_of: dict[str, BotDifficulty] = {}
        for i, team in enumerate(slots):
            if i < bots:
                self._bot_counter += 1
                bot_id = f"bid({self._bot_counter}.0)"
                difficulty_of[bot_id] = rng.choice((BotDifficulty.MARINE, BotDifficulty.ODST, BotDifficulty.SPARTAN))
                roster.append((bot_id, None, team, -1.2 + 0.4 * difficulty_of[bot_id].value))
            else:
                human = next(strangers)
                roster.append((wrap_player(human.xuid), human.xuid, team, human.skill))

        # Presence: a few quit early.
        present = {pid: 1.0 for pid, *_ in roster}
        for pid, xuid, _, _ in roster:
            if xuid is not None and rng.random() < (0.02 if xuid in party else 0.05):
                present[pid] = rng.uniform(0.2, 0.8)

        # Kills, then deaths so that each team's deaths are the other team's kills (+ suicides).
        scale = 1.0 if team_size == 4 else 1.15
        expected_kills = {pid: max(0.5, mode.kills_per_player * scale * (1 + 0.25 * s) * present[pid])
                          for pid, _, _, s in roster}
        lines: dict[str, _Line] = {pid: _Line() for pid, *_ in roster}
        team_of = {pid: team for pid, _, team, _ in roster}
        for pid, line in lines.items():
            line.counts["kills"] = max(0, round(rng.gauss(expected_kills[pid], 3.5)))
        expected_deaths: dict[str, float] = {}
        for team in (0, 1):
            members = [pid for pid, *_ in roster if team_of[pid] == team]
            enemy_kills = sum(lines[p].counts["kills"] for p in lines if team_of[p] != team)
            skill_of = {pid: s for pid, _, _, s in roster}
            weights = [max(0.2, (1 - 0.2 * skill_of[p]) * present[p] * rng.uniform(0.7, 1.3)) for p in members]
            for pid, deaths, w in zip(members, _allocate(enemy_kills, weights), weights, strict=False):
                lines[pid].counts["deaths"] = deaths
                expected_deaths[pid] = enemy_kills * w / sum(weights)

        for pid, line in lines.items():
            self._fill_line(line, duration_s * present[pid], mode)

        # Objective and outcome.
        team_kills = {t: sum(lines[p].counts["kills"] for p in lines if team_of[p] == t) for t in (0, 1)}
        strength = {t: sum(s for _, _, tm, s in roster if tm == t) + rng.gauss(0, 1.0) for t in (0, 1)}
        team_score, rounds = self._objective(mode, lines, team_of, team_kills, strength)
        if team_score[0] == team_score[1] and rounds[0] == rounds[1]:
            outcome = {0: Outcome.TIE, 1: Outcome.TIE}
        else:
            winner = 0 if (rounds[0], team_score[0]) > (rounds[1], team_score[1]) else 1
            outcome = {winner: Outcome.WIN, 1 - winner: Outcome.LOSS}
        team_rank = {t: 1 if outcome[t] in (Outcome.WIN, Outcome.TIE) else 2 for t in (0, 1)}
        team_rounds = {t: self._rounds(mode, outcome[t], rounds[t], rounds[1 - t]) for t in (0, 1)}

        # Team changes: one player moves mid-match now and then.
        segments: dict[str, list[tuple[int, _Line]]] = {pid: [(team_of[pid], lines[pid])] for pid in lines}
        if rng.random() < (0.15 if custom else 0.04):
            mover = rng.choice([pid for pid, x, _, _ in roster if x is not None])
            first, second = lines[mover].split(rng.uniform(0.3, 0.7))
            segments[mover] = [(1 - team_of[mover], first), (team_of[mover], second)]

        # Player bodies.
        start_ms = start.replace(microsecond=start.microsecond // 1000 * 1000)
        players = []
        for pid, xuid, team, _ in roster:
            left = present[pid] < 1.0
            player_outcome = Outcome.DID_NOT_FINISH if left else outcome[team]
            played = duration_s * present[pid]
            joined = start_ms + timedelta(seconds=rng.uniform(5, 30))
            players.append({
                "PlayerId": pid,
                "PlayerType": (PlayerType.HUMAN if xuid is not None else PlayerType.BOT).value,
                "BotAttributes": None if xuid is not None else {"Difficulty": difficulty_of[pid].value},
                "LastTeamId": segments[pid][-1][0],
                "Outcome": player_outcome.value,
                "Rank": 0,
                "ParticipationInfo": {
                    "FirstJoinedTime": format_time(joined),
                    "LastLeaveTime": format_time(joined + timedelta(seconds=played)) if left else None,
                    "PresentAtBeginning": True,
                    "JoinedInProgress": False,
                    "LeftInProgress": left,
                    "PresentAtCompletion": not left,
                    "TimePlayed": format_duration(played),
                    "ConfirmedParticipation": None,
                },
                "PlayerTeamStats": [
                    {"TeamId": seg_team, "Stats": _stats([line], mode, team_rounds[seg_team])}
                    for seg_team, line in segments[pid]
                ],
            })
        by_score = sorted(players, key=lambda p: -sum(s["Stats"]["CoreStats"]["PersonalScore"]
                                                      for s in p["PlayerTeamStats"]))
        for rank, player in enumerate(by_score, start=1):
            player["Rank"] = rank

        teams = []
        for t in (0, 1):
            team_lines = [line for segs in segments.values() for seg_team, line in segs if seg_team == t]
            teams.append({"TeamId": t, "Outcome": outcome[t].value, "Rank": team_rank[t],
                          "Stats": _stats(team_lines, mode, team_rounds[t], team_score[t])})

        info = self._match_info(start_ms, duration_s, mode, map_name, spec, custom)
        body = {"MatchId": match_id, "MatchInfo": info, "Teams": teams, "Players": players}

        skill_lines: dict[int, _SkillLine] = {}
        team_mmrs: dict[int, float] | None = None
        if not custom:
            team_mmrs = {t: round(1400 + 120 * strength[t] / team_size + rng.gauss(0, 25), 6) for t in (0, 1)}
            for pid, xuid, team, _skill in roster:
                if xuid is None:
                    continue
                totals = Counter()
                for _, line in segments[pid]:
                    totals.update(line.counts)
                csr = None
                if spec is not None and spec.ranked:
                    human = self._humans[xuid]
                    pre = human.csr.setdefault(spec.name, max(0, round(1150 + 250 * human.skill + rng.gauss(0, 80))))
                    delta = {Outcome.WIN: rng.randint(8, 18), Outcome.LOSS: -rng.randint(8, 18),
                             Outcome.TIE: 0}.get(outcome[team], -20)
                    if present[pid] < 1.0:
                        delta = -20
                    human.csr[spec.name] = post = max(0, pre + delta)
                    csr = (pre, post)
                skill_lines[xuid] = _SkillLine(team, totals["kills"], totals["deaths"],
                                               expected_kills[pid], expected_deaths[pid], csr)
        match = _Match(match_id, start_ms, body, orjson.dumps(body), team_mmrs, skill_lines)
        self._matches[match_id] = match
        for xuid in party:
            item = history_item(body, wrap_player(xuid))
            if item is not None:
                self._history[xuid].append(item)
        return match

    def _fill_line(self, line: _Line, seconds: float, mode: _Mode) -> None:
        rng, c = self._rng, line.counts
        kills, deaths = c["kills"], c["deaths"]
        if rng.random() < 0.05 and seconds > 60:
            c["suicides"] = 1
            c["deaths"] = deaths = deaths + 1
            line.scores[PersonalScoreNameId.SELF_DESTRUCTION] = 1
        c["assists"] = max(0, round(kills * 0.45 + rng.gauss(1.5, 1.5)))
        c["callout_assists"] = rng.randint(0, 6)
        c["headshot_kills"] = round(kills * rng.uniform(0.4, 0.8))
        rest = kills - c["headshot_kills"]
        c["melee_kills"] = rng.randint(0, min(3, rest))
        rest -= c["melee_kills"]
        c["grenade_kills"] = rng.randint(0, min(2, rest))
        c["power_weapon_kills"] = rng.randint(0, min(3, kills))
        c["shots_fired"] = max(1, round(seconds * rng.uniform(0.35, 0.7)))
        c["shots_hit"] = round(c["shots_fired"] * rng.uniform(0.3, 0.6))
        c["damage_dealt"] = kills * rng.randint(230, 300) + c["assists"] * rng.randint(40, 90)
        c["damage_taken"] = deaths * rng.randint(240, 300) + rng.randint(0, 600)
        c["spawns"] = deaths + 1
        c["alive_ms"] = max(0, round((seconds - 5 * deaths) * 1000))
        line.max_spree = 0 if kills == 0 else min(kills, rng.randint(1, max(1, kills // 3 + 2)))
        line.scores[PersonalScoreNameId.KILLED_PLAYER] = kills
        line.scores[PersonalScoreNameId.KILL_ASSIST] = c["assists"]
        line.scores[PersonalScoreNameId.MARK_ASSIST] = c["callout_assists"]
        if mode.name == "Slayer":
            c["score"] = kills
        medals = line.medals
        medals[_MEDAL["Double Kill"]] = doubles = rng.randint(0, kills // 4)
        medals[_MEDAL["Triple Kill"]] = rng.randint(0, doubles // 3)
        medals[_MEDAL["Killing Spree"]] = 1 if line.max_spree >= 5 else 0
        medals[_MEDAL["Killing Frenzy"]] = 1 if line.max_spree >= 10 else 0
        medals[_MEDAL["Perfect"]] = rng.randint(0, c["headshot_kills"] // 3)
        medals[_MEDAL["Back Smack"]] = rng.randint(0, c["melee_kills"])
        medals[_MEDAL["Grenadier"]] = rng.randint(0, c["grenade_kills"])
        medals[_MEDAL["Reversal"]] = rng.randint(0, 1) if kills > 5 else 0
        medals[_MEDAL["Guardian Angel"]] = rng.randint(0, 1) if c["assists"] > 3 else 0
        medals[_MEDAL["Wingman"]] = rng.randint(0, 1) if c["assists"] > 5 else 0

    def _objective(self, mode: _Mode, lines: dict[str, _Line], team_of: dict[str, int],
                   team_kills: dict[int, int], strength: dict[int, float]) -> tuple[dict[int, int], dict[int, int]]:
        """Fill mode counters; return (team score, team rounds won) by team id."""
        rng = self._rng
        favourite = 0 if strength[0] >= strength[1] else 1
        members = {t: [p for p in lines if team_of[p] == t] for t in (0, 1)}
        rounds = {0: 0, 1: 0}
        if mode.name == "Slayer":
            return team_kills, rounds
        if mode.name == "CTF":
            score = {favourite: 3, 1 - favourite: rng.randint(0, 2)}
            for t in (0, 1):
                caps = _allocate(score[t], [rng.uniform(0.2, 1) for _ in members[t]])
                for pid, cap in zip(members[t], caps, strict=False):
                    line, grabs = lines[pid], cap + rng.randint(0, 3)
                    line.mode.update({
                        "FlagCaptureAssists": rng.randint(0, score[t] - cap), "FlagCaptures": cap,
                        "FlagCarriersKilled": rng.randint(0, 3), "FlagGrabs": grabs,
                        "FlagReturnersKilled": rng.randint(0, 2), "FlagReturns": rng.randint(0, 3),
                        "FlagSecures": rng.randint(0, 3), "FlagSteals": rng.randint(0, grabs),
                        "KillsAsFlagCarrier": rng.randint(0, 1), "KillsAsFlagReturner": rng.randint(0, 1),
                        "TimeAsFlagCarrier": grabs * rng.randint(3000, 20000),
                    })
                    line.counts["score"] = cap
                    line.counts["objectives_completed"] = cap
                    line.scores.update({PersonalScoreNameId.FLAG_CAPTURED: cap, PersonalScoreNameId.FLAG_TAKEN: grabs,
                                        PersonalScoreNameId.FLAG_RETURNED: line.mode["FlagReturns"],
                                        PersonalScoreNameId.RUNNER_STOPPED: line.mode["FlagCarriersKilled"]})
                    line.medals[_MEDAL["Flag Joust"]] = rng.randint(0, 1) if cap else 0
            return score, rounds
        if mode.name == "Oddball":
            loser_rounds = rng.randint(0, 1)
            rounds = {favourite: 2, 1 - favourite: loser_rounds}
            ticks = {favourite: 200 + (rng.randint(0, 99) if loser_rounds else rng.randint(0, 60)),
                     1 - favourite: 100 * loser_rounds + rng.randint(0, 99)}
            for t in (0, 1):
                shares = _allocate(ticks[t], [rng.uniform(0.1, 1) for _ in members[t]])
                for pid, tick in zip(members[t], shares, strict=False):
                    line = lines[pid]
                    carried = tick * 1000 + rng.randint(0, 9000)
                    grabs = rng.randint(1, 4) if tick else rng.randint(0, 1)
                    line.mode.update({
                        "KillsAsSkullCarrier": rng.randint(0, 1),
                        "LongestTimeAsSkullCarrier": min(carried, rng.randint(5000, 40000)),
                        "SkullCarriersKilled": rng.randint(0, 4), "SkullGrabs": grabs,
                        "TimeAsSkullCarrier": carried, "SkullScoringTicks": tick,
                    })
                    line.counts["score"] = tick
                    line.scores.update({PersonalScoreNameId.BALL_TAKEN: grabs,
                                        PersonalScoreNameId.CARRIER_STOPPED: line.mode["SkullCarriersKilled"],
                                        PersonalScoreNameId.BALL_CONTROL: tick // 20})
            return ticks, rounds
        # Strongholds and King of the Hill: zone stats; players score 0, the team scores (as recorded).
        target = 250 if mode.name == "Strongholds" else 4
        score = {favourite: target, 1 - favourite: rng.randint(target * 2 // 5, target - 1)}
        captured, secured = ((PersonalScoreNameId.ZONE_CAPTURED_100, PersonalScoreNameId.ZONE_SECURED)
                             if mode.name == "Strongholds"
                             else (PersonalScoreNameId.HILL_SCORED, PersonalScoreNameId.HILL_CONTROL))
        for t in (0, 1):
            for pid in members[t]:
                line = lines[pid]
                kills = line.counts["kills"]
                offensive = rng.randint(0, kills)
                line.mode.update({
                    "StrongholdCaptures": rng.randint(0, 8),
                    "StrongholdDefensiveKills": rng.randint(0, kills - offensive),
                    "StrongholdOffensiveKills": offensive, "StrongholdSecures": rng.randint(0, 4),
                    "StrongholdOccupationTime": rng.randint(20000, 200000), "StrongholdScoringTicks": 0,
                })
                line.counts["objectives_completed"] = line.mode["StrongholdCaptures"]
                line.scores.update({captured: line.mode["StrongholdCaptures"],
                                    secured: line.mode["StrongholdSecures"]})
                line.medals[_MEDAL["Zone Guardian"] if mode.name == "Strongholds" else _MEDAL["Hill Guardian"]] = (
                    rng.randint(0, 1))
        return score, rounds

    @staticmethod
    def _rounds(mode: _Mode, outcome: Outcome, won: int, lost: int) -> tuple[int, int, int]:
        if mode.name == "Oddball":
            return won, lost, 0
        return {Outcome.WIN: (1, 0, 0), Outcome.LOSS: (0, 1, 0)}.get(outcome, (0, 0, 1))

    def _match_info(self, start: datetime, duration_s: float, mode: _Mode, map_name: str,
                    spec: _PlaylistSpec | None, custom: bool) -> dict[str, Any]:
        rng = self._rng
        prefix = spec.prefix if spec else "Arena"
        season = f"Csr/Seasons/CsrSeason{start.year - 2016}-{1 + (start.month - 1) // 4}.json"
        return {
            "StartTime": format_time(start),
            "EndTime": format_time(start + timedelta(seconds=duration_s + rng.uniform(20, 40))),
            "Duration": format_duration(duration_s),
            "LifecycleMode": (LifecycleMode.CUSTOM if custom else LifecycleMode.MATCHMADE).value,
            "GameVariantCategory": mode.category.value,
            "LevelId": self._levels[map_name],
            "MapVariant": self._maps[map_name].ref(),
            "UgcGameVariant": self._variants[(prefix, mode.name)].ref(),
            "ClearanceId": _CLEARANCE_ID,
            "Playlist": self._playlists[spec.name].ref() if spec else None,
            "PlaylistExperience": spec.experience.value if spec else None,
            "PlaylistMapModePair": self._pairs[(spec.name, mode.name, map_name)].ref() if spec else None,
            "SeasonId": season if spec else None,
            "PlayableDuration": format_duration(duration_s - rng.uniform(0, 15)),
            "TeamsEnabled": True,
            "TeamScoringEnabled": True,
            "GameplayInteraction": 1,
        }

    # ---- public API ------------------------------------------------------------------------------------
    def add_matches(self, xuids: list[int], n: int = 1, when: datetime | None = None) -> list[str]:
        """Let registered players play ``n`` new matchmade matches together, back to back.

        Args:
            xuids: registered synthetic players (a party: all of them are in every new match).
            n: number of matches.
            when: start of the first match (UTC; naive means UTC). Default: a few minutes after the newest
                match of the world, so the new matches are newest-first in every history.

        Returns:
            The new match ids, in play order (oldest first).

        Raises:
            ValueError: an xuid is not a registered synthetic player, or ``n`` < 1.
        """
        known = {p.xuid for p in self.players}
        unknown = [x for x in xuids if x not in known]
        if unknown or not xuids:
            raise ValueError(f"not registered synthetic players: {unknown or 'none given'}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            if when is None:
                newest = max((m.start for m in self._matches.values()), default=datetime.now(UTC))
                when = newest + timedelta(minutes=30)
            elif when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            out = []
            moment = when
            for _ in range(n):
                match = self._play(list(dict.fromkeys(xuids)), moment, custom=False)
                out.append(match.match_id)
                moment = match.start + timedelta(seconds=self._rng.randint(700, 1100))
            return out

    def match_ids(self, xuid: int | None = None) -> list[str]:
        """Match ids, newest first: all of the world's, or those of one registered player."""
        with self._lock:
            if xuid is None:
                matches = sorted(self._matches.values(), key=lambda m: m.start, reverse=True)
                return [m.match_id for m in matches]
            items = sorted(self._history.get(xuid, []), key=lambda i: i.start_time, reverse=True)
            return [i.match_id for i in items]

    def asset_refs(self) -> list[tuple[str, str, str]]:
        """Every synthetic UGC asset as ``(path kind, asset id, version id)`` (kind: maps, mapModePairs,
        playlists, ugcGameVariants)."""
        return sorted(self._assets_by_id)

    # ---- ApiSource ---------------------------------------------------------------------------------------
    def match_stats_body(self, match_id: str) -> bytes | None:
        """The match-stats body, or ``None`` for an id the world does not hold."""
        with self._lock:
            match = self._matches.get(match_id.lower())
            return match.raw if match else None

    def history_items(self, xuid: int) -> list[HistoryItem]:
        """History entries of a registered player (unregistered humans have none here)."""
        with self._lock:
            return list(self._history.get(xuid, []))

    def resolve_gamertag(self, gamertag: str) -> int | None:
        """The xuid of a synthetic human's gamertag (registered or not; case-insensitive)."""
        wanted = gamertag.strip().lower()
        return next((h.xuid for h in self._humans.values() if h.gamertag.lower() == wanted), None)

    def match_skill(self, match_id: str, xuids: list[int]) -> dict[str, Any] | None:
        """Skill body for the requested humans of a matchmade match; ``None`` for unknown matches and
        custom games. Requested players not in the match are left out."""
        with self._lock:
            match = self._matches.get(match_id.lower())
            if match is None or match.team_mmrs is None:
                return None
            values = []
            for xuid in dict.fromkeys(xuids):
                line = match.skill.get(xuid)
                if line is None:
                    continue
                pre, post = line.csr if line.csr else (None, None)
                values.append({
                    "Id": wrap_player(xuid),
                    "ResultCode": SkillResultCode.SUCCESS.value,
                    "Result": {
                        "TeamMmr": match.team_mmrs[line.team_id],
                        "RankRecap": {"PreMatchCsr": _csr_container(pre), "PostMatchCsr": _csr_container(post)},
                        "StatPerformances": {
                            "Kills": {"Count": line.kills, "Expected": line.expected_kills,
                                      "StdDev": max(1.0, line.expected_kills ** 0.5 * 1.2)},
                            "Deaths": {"Count": line.deaths, "Expected": line.expected_deaths,
                                       "StdDev": max(1.0, line.expected_deaths ** 0.5 * 1.2)},
                        },
                        "TeamId": line.team_id,
                        "TeamMmrs": {str(t): v for t, v in match.team_mmrs.items()},
                        "RankedRewards": None,
                        "Counterfactuals": {
                            "SelfCounterfactuals": {"Kills": line.expected_kills, "Deaths": line.expected_deaths},
                            "TierCounterfactuals": {
                                tier: {"Kills": round(line.expected_kills * (0.25 + 0.18 * i), 6),
                                       "Deaths": round(line.expected_deaths * (1.35 - 0.08 * i), 6)}
                                for i, tier in enumerate(_TIERS)
                            },
                        },
                    },
                })
            return {"Value": values}

    def medal_metadata(self) -> dict[str, Any]:
        """Medal metadata for every ``MedalNameId`` spnkr knows (names from spnkr; type and difficulty are
        synthetic guesses, descriptions are placeholders)."""
        multikill = ("Double Kill", "Triple Kill", "Overkill", "Killtacular", "Killtrocity", "Killamanjaro",
                     "Killtastrophe", "Killpocalypse", "Killionaire")
        spree = ("Killing Spree", "Killing Frenzy", "Running Riot", "Rampage", "Nightmare", "Boogeyman",
                 "Grim Reaper", "Demon", "Perfection", "Immortal")
        mode_words = ("Flag", "Ball", "Zone", "Hill", "Stockpile", "Goal", "Stopped", "Throne", "Treasure")
        medals = []
        for index, medal in enumerate(sorted(MedalNameId, key=lambda m: m.display_name)):
            name = medal.display_name
            if name in multikill:
                kind, difficulty = 2, min(3, multikill.index(name) // 2)
            elif name in spree:
                kind, difficulty = 0, min(3, spree.index(name) // 2)
            elif any(word in name for word in mode_words):
                kind, difficulty = 1, 0
            else:
                kind, difficulty = 4, 0
            medals.append({
                "name": {"value": name, "translations": {}},
                "description": {"value": f"Synthetic medal: {name}", "translations": {}},
                "spriteIndex": index, "sortingWeight": 100 + 10 * difficulty,
                "difficultyIndex": difficulty, "typeIndex": kind, "personalScore": 0, "nameId": medal.value,
            })
        return {
            "difficulties": ["normal", "heroic", "legendary", "mythic"],
            "types": ["spree", "mode", "multikill", "proficiency", "skill", "style"],
            "sprites": {
                "small": {"path": "medals/images/medal_sheet_sm.png", "columns": 16, "size": 72},
                "medium": {"path": "medals/images/medal_sheet_med.png", "columns": 16, "size": 128},
                "extra-large": {"path": "medals/images/medal_sheet_xl.png", "columns": 16, "size": 256},
            },
            "medals": medals,
        }

    def ugc_body(self, kind: str, asset_id: str, version_id: str) -> bytes | None:
        """A UGC body (map, map-mode pair, playlist, game variant) for a synthetic asset version."""
        found = self._assets_by_id.get((kind, asset_id.lower(), version_id.lower()))
        if found is None:
            return None
        what, ref = found
        if what == "map":
            body = self._map_body(ref)
        elif what == "variant":
            body = self._variant_body(*ref)
        elif what == "pair":
            body = self._pair_body(*ref)
        else:
            body = self._playlist_body(*ref)
        return orjson.dumps(body)

    def film(self, match_id: str) -> SyntheticFilm | None:
        """The theater film of a matchmade match (film major version, highlight-events chunk, and the events
        spnkr's reader decodes from it); ``None`` for custom games and ids the world does not hold."""
        key = match_id.lower()
        with self._lock:
            if key in self._films:
                self._films.move_to_end(key)
                return self._films[key]
            match = self._matches.get(key)
            if match is None:
                return None
            if self._filler is None:
                self._filler = Filler(self.seed)
            gamertags = {h.xuid: h.gamertag for h in self._humans.values()}
            film = synthetic_film(match.body, gamertags, self.seed, self._filler)
            self._films[key] = film
            if len(self._films) > self.FILM_CACHE_SIZE:
                self._films.popitem(last=False)
            return film

    def film_manifest(self, match_id: str) -> dict[str, Any] | None:
        """The film manifest (shape of ``get_film_by_match_id.json``) of a matchmade match, listing its
        highlight-events chunk; ``None`` (the API's 404) for custom games and unknown ids."""
        film = self.film(match_id)
        if film is None:
            return None
        with self._lock:
            match = self._matches[match_id.lower()]
        return film_manifest(match.match_id, len(film.chunk), film.film_major_version,
                             duration_ms(match.body["MatchInfo"]))

    def film_chunk(self, asset_id: str, match_id: str, name: str) -> bytes | None:
        """The highlight-events chunk at the path the manifest names, else ``None``."""
        if name != HIGHLIGHT_CHUNK_NAME or asset_id.lower() != film_asset_id(match_id):
            return None
        film = self.film(match_id)
        return film.chunk if film is not None else None

    def user(self, xuid: int) -> dict[str, Any] | None:
        """The profile of a synthetic human (registered or not)."""
        human = self._humans.get(xuid)
        return user_body(human.xuid, human.gamertag) if human else None

    def customization(self, xuid: int) -> dict[str, Any] | None:
        """The customization of a synthetic human (:func:`~halo_pipeline.emulator.profiles.customization_body`)."""
        return profiles.customization_body(self.seed, xuid) if xuid in self._humans else None

    def career_rank(self, xuid: int) -> dict[str, Any] | None:
        """The career rank of a synthetic human (:func:`~halo_pipeline.emulator.profiles.career_rank_body`)."""
        return profiles.career_rank_body(self.seed, xuid) if xuid in self._humans else None

    def career_track(self) -> dict[str, Any]:
        """The career reward track (:func:`~halo_pipeline.emulator.profiles.career_track_body`)."""
        return profiles.career_track_body()

    # ---- UGC bodies ----------------------------------------------------------------------------------------
    def _asset_common(self, ref: _AssetRef, folder: str, description: str, files: list[str]) -> dict[str, Any]:
        path = f"/ugcstorage/{folder}/{ref.asset_id}/{ref.version_id}/"
        digest = uuid.UUID(ref.asset_id).int
        return {
            "AssetId": ref.asset_id,
            "VersionId": ref.version_id,
            "PublicName": ref.name,
            "Description": description,
            "Files": {
                "Prefix": f"https://blobs-infiniteugc.svc.halowaypoint.com{path}",
                "FileRelativePaths": files,
                "PrefixEndpoint": {
                    "AuthorityId": "iUgcFiles", "Path": path, "QueryString": None, "RetryPolicyId": "linearretry",
                    "TopicName": "", "AcknowledgementTypeId": 0, "AuthenticationLifetimeExtensionSupported": False,
                    "ClearanceAware": False,
                },
            },
            "Contributors": [],
            "AssetHome": 1,
            "AssetStats": {
                "PlaysRecent": digest % 200_000, "PlaysAllTime": digest % 5_000_000, "Favorites": digest % 1000,
                "Likes": 0, "Bookmarks": 0, "ParentAssetCount": digest % 60, "AverageRating": 0.0,
                "NumberOfRatings": 0,
            },
            "InspectionResult": 50,
            "CloneBehavior": 0,
            "Order": 0,
        }

    _IMAGES = ("images/hero.png", "images/screenshot1.png", "images/thumbnail.png")

    def _map_body(self, ref: _AssetRef) -> dict[str, Any]:
        return {
            "CustomData": {"NumOfObjectsOnMap": 400 + uuid.UUID(ref.asset_id).int % 1500,
                           "TagLevelId": uuid.UUID(self._levels[ref.name]).int % 2**31 - 2**30,
                           "IsBaked": True, "HasNodeGraph": False},
            "Tags": ["343i"],
            "PrefabLinks": [],
            **self._asset_common(ref, "map", f"Synthetic map {ref.name}.", self._IMAGES),
        }

    def _variant_body(self, ref: _AssetRef, mode: str) -> dict[str, Any]:
        engine = self._engine[mode]
        return {
            "CustomData": {"KeyValues": {}},
            "Tags": ["343i", ref.name.split(":")[0], mode],
            "EngineGameVariantLink": self._asset_common(engine, "enginegamevariant", "", []),
            **self._asset_common(ref, "ugcgamevariant", f"Synthetic {mode} variant.", self._IMAGES),
        }

    def _pair_body(self, ref: _AssetRef, playlist: str, mode: str, map_name: str) -> dict[str, Any]:
        prefix = next(p.prefix for p in PLAYLISTS if p.name == playlist)
        variant = self._variants[(prefix, mode)]
        return {
            "CustomData": {},
            "Tags": [],
            "MapLink": self._asset_common(self._maps[map_name], "map", f"Synthetic map {map_name}.", self._IMAGES),
            "UgcGameVariantLink": self._asset_common(variant, "ugcgamevariant", f"Synthetic {mode} variant.",
                                                     self._IMAGES),
            **self._asset_common(ref, "mapmodepair", "", []),
        }

    def _playlist_body(self, ref: _AssetRef, spec: _PlaylistSpec) -> dict[str, Any]:
        pairs = [(self._pairs[(spec.name, mode, m)], 100.0) for mode in spec.modes for m in spec.maps]
        return {
            "CustomData": {
                "PlaylistEntries": [{"MapModePairAssetId": p.asset_id, "Metadata": {"Weight": w}} for p, w in pairs],
                "Strategy": 0, "MinTeams": 2, "MinTeamSize": spec.team_size, "MaxTeams": 2,
                "MaxTeamSize": spec.team_size, "MaxTeamImbalance": 0, "MaxSplitscreenPlayersAllowed": 4,
                "AllowFriendJoinInProgress": False, "AllowMatchmakingJoinInProgress": not spec.ranked,
                "AllowBotJoinInProgress": False, "ExitExperienceDurationSec": 30,
                "FireteamLeaderKickAllowed": False, "DisableMidgameChat": False, "AllowedDeviceInputs": [0],
                "BotDifficulty": 0, "MinFireteamSize": 1, "MaxFireteamSize": spec.team_size,
            },
            "Tags": [],
            "RotationEntries": [{"Metadata": {"Weight": w}, **self._asset_common(p, "mapmodepair", "", [])}
                                for p, w in pairs],
            **self._asset_common(ref, "playlist", f"Synthetic {spec.name} playlist.", self._IMAGES),
        }
