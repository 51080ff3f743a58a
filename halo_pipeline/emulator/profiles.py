"""Player profiles the emulator serves: customization and career rank (economy), the career reward track
(gamecms-hacs), shaped like the API's and parsed by spnkr's models (``PlayerCustomization``,
``PlayerCareerRank``, ``CareerRewardTrack``).

Synthetic players get deterministic profiles: each follows from the world's seed and the xuid only, never from
the order of requests. No recording of these endpoints exists in ``../shared/halo_api``; a recordings directory
may hold the pipeline's own (``customization/<xuid>.json``, ``career_rank/<xuid>.json``, a career track body).
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

#: Tier types of the career track, lowest first (each: 15 titles × grades 1–3), then the top rank.
TIER_TYPES = ("Bronze", "Silver", "Gold", "Platinum", "Diamond", "Onyx")
TITLES = ("Cadet", "Private", "Lance Corporal", "Corporal", "Sergeant", "Staff Sergeant", "Gunnery Sergeant",
          "Master Sergeant", "Lieutenant", "Captain", "Major", "Lieutenant Colonel", "Colonel", "Brigadier",
          "General")
#: Ranks of the career track: Recruit, 6 tier types × 15 titles × 3 grades, Hero.
TOP_RANK = 2 + len(TIER_TYPES) * len(TITLES) * 3
CAREER_TRACK_PATH = "RewardTracks/CareerRanks/careerRank1.json"

_EMBLEMS = ("Wrath", "Chevron", "Bulwark", "Mark of Shame", "Reach Bird", "Cobra", "Spartan Helmet", "Halo Ring",
            "Ember", "Lightning", "Grinning Skull", "Wolf")
_BACKDROPS = ("Zeta Halo", "Reach Sunset", "Banished Camp", "Forge Grid", "Sky", "Foundry", "Installation 07")
_TITLES = ("Spartan", "Veteran", "Hero of Reach", "Tactician", "Survivor", "Legend")
_DATE = {"ISO8601Date": "2025-01-15T18:04:11.321Z"}


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def _service_tag(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(4))


def customization_body(seed: int, xuid: int) -> dict[str, Any]:
    """A player's public customization (economy ``/hi/players/xuid(…)/customization``): one equipped armor core
    and theme, the Spartan body, the appearance (service tag, emblem and its configuration, backdrop, player
    title), no weapon, AI or vehicle core."""
    rng = random.Random(f"customization/{seed}/{xuid}")
    emblem = rng.choice(_EMBLEMS)
    emblem_path = f"Inventory/Spartan/Emblems/104-001-{_slug(emblem)}-{rng.getrandbits(32):08x}.json"
    configuration = rng.randrange(-2**31, 2**31)
    theme = {
        "FirstModifiedDateUtc": _DATE, "LastModifiedDateUtc": _DATE, "IsEquipped": True, "IsDefault": False,
        "ThemePath": "Inventory/Armor/Themes/007-001-olympus-theme.json",
        "CoatingPath": f"Inventory/Armor/Coatings/007-000-coating-{rng.randrange(100):03d}.json",
        **{f"{part}Path": f"Inventory/Armor/{part}s/007-001-olympus-{_slug(part)}.json"
           for part in ("Glove", "Helmet", "HelmetAttachment", "ChestAttachment", "KneePad", "LeftShoulderPad",
                        "RightShoulderPad", "ArmorFx", "MythicFx", "Visor", "HipAttachment", "WristAttachment")},
        "Emblems": [{"Path": emblem_path, "LocationId": 1, "ConfigurationId": configuration}],
        "ArmorFxPaths": None,
    }
    return {
        "ArmorCores": {"ArmorCores": [{"CorePath": "Inventory/Armor/Cores/007-001-olympus-c13d0b38.json",
                                       "IsEquipped": True, "Themes": [theme], "CoreId": "Olympus",
                                       "CoreType": "ArmorCore"}]},
        "SpartanBody": {"LastModifiedDateUtc": _DATE, "LeftArm": "Inventory/Spartan/Prosthetics/none.json",
                        "RightArm": "Inventory/Spartan/Prosthetics/none.json",
                        "LeftLeg": "Inventory/Spartan/Prosthetics/none.json",
                        "RightLeg": "Inventory/Spartan/Prosthetics/none.json",
                        "BodyType": rng.choice(("Small", "Large")),
                        "VoicePath": f"Inventory/Spartan/Voices/{rng.randrange(1, 9):03d}.json"},
        "Appearance": {
            "LastModifiedDateUtc": _DATE,
            "ActionPosePath": "Inventory/Spartan/ActionPoses/stance-default.json",
            "BackdropImagePath": f"Inventory/Spartan/BackdropImages/{_slug(rng.choice(_BACKDROPS))}.json",
            "Emblem": {"EmblemPath": emblem_path, "ConfigurationId": configuration},
            "ServiceTag": _service_tag(rng),
            "IntroEmotePath": None,
            "PlayerTitlePath": f"Inventory/Spartan/PlayerTitles/{_slug(rng.choice(_TITLES))}.json",
        },
        "WeaponCores": {"WeaponCores": []},
        "AiCores": {"AiCores": []},
        "VehicleCores": {"VehicleCores": []},
    }


def career_rank_body(seed: int, xuid: int) -> dict[str, Any]:
    """A player's career rank (economy ``/hi/players/xuid(…)/rewardtracks/careerranks/careerrank1``): the last rank
    reached (1 … :data:`TOP_RANK`) and the XP earned toward the next."""
    rng = random.Random(f"career/{seed}/{xuid}")
    rank = min(TOP_RANK, max(1, round(rng.triangular(1, TOP_RANK, 140))))
    top = rank == TOP_RANK
    partial = 0 if top else rng.randrange(0, xp_required(rank + 1))
    return {"RewardTrackPath": CAREER_TRACK_PATH, "TrackType": "CareerRank",
            "CurrentProgress": {"Rank": rank, "PartialProgress": partial, "IsOwned": False,
                                "HasReachedMaxRank": top},
            "PreviousProgress": None, "IsOwned": False, "BaseXp": None, "BoostXp": None}


def xp_required(rank: int) -> int:
    """XP a rank of the synthetic career track takes (it grows with the tier type)."""
    return 0 if rank <= 1 else 500 + 250 * ((rank - 2) // (len(TITLES) * 3)) + 10 * ((rank - 2) % 45)


def _text(value: str) -> dict[str, Any]:
    return {"status": "Current", "value": value, "translations": {}}


def _rank_names(rank: int) -> tuple[str, str, str, str, int]:
    """``(title, sub title, tier, tier type, grade)`` of a rank of the synthetic track."""
    if rank == 1:
        return "Recruit", "", "", "Bronze", 1
    if rank == TOP_RANK:
        return "Hero", "", "", "Hero", 1
    index = rank - 2
    tier_type = TIER_TYPES[index // (len(TITLES) * 3)]
    title = TITLES[(index // 3) % len(TITLES)]
    grade = index % 3 + 1
    return title, tier_type, str(grade), tier_type, grade


@cache
def career_track_body() -> dict[str, Any]:
    """The career reward track (gamecms-hacs ``/hi/Progression/file/RewardTracks/CareerRanks/careerRank1.json``):
    :data:`TOP_RANK` ranks with titles, tier types, grades, icons and the XP each takes. Do not mutate."""
    ranks = []
    for rank in range(1, TOP_RANK + 1):
        title, sub_title, tier, tier_type, grade = _rank_names(rank)
        icon = f"career_rank/ProgressWidget/{rank}_{_slug(title)}.png"
        ranks.append({
            "Rank": rank, "FreeRewards": {"InventoryRewards": [], "CurrencyRewards": []},
            "PaidRewards": {"InventoryRewards": [], "CurrencyRewards": []}, "XpRequiredForRank": xp_required(rank),
            "RankTitle": _text(title), "RankSubTitle": _text(sub_title), "RankTier": _text(tier),
            "RankIcon": icon, "RankLargeIcon": icon.replace("ProgressWidget", "CelebrationMoment"),
            "RankAdornmentIcon": f"career_rank/NameplateAdornment/{rank}_{_slug(title)}.png",
            "TierType": tier_type, "RankGrade": grade,
        })
    return {"TrackId": "careerRank1", "Ranks": ranks, "Name": _text("Career Rank"),
            "Description": _text("Your career in Halo Infinite multiplayer."), "OperationNumber": 0,
            "DateRange": _text(""), "IsRitual": False, "SummaryImagePath": "career_rank/summary.png",
            "WeekNumber": None, "XpPerRank": 0}
