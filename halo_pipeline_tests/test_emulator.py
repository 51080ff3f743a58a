"""The emulator over real HTTP: spnkr's client, redirected by the project's middleware, against an in-process
:class:`Emulator` serving ../shared recordings and a synthetic world. No mocks."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from spnkr import HaloInfiniteClient
from spnkr.film import read_highlight_events
from spnkr.film.highlight_events import check
from spnkr.models.discovery_ugc import Map, MapModePair, Playlist, UgcGameVariant
from spnkr.models.refdata import LifecycleMode, MedalNameId, PersonalScoreNameId
from spnkr.models.stats import MatchStats

from halo_pipeline.api.redirect import redirect_middleware
from halo_pipeline.emulator import Emulator, RecordingStore, SyntheticWorld
from halo_pipeline.emulator.wire import parse_time
from halo_pipeline_tests.conftest import OWNER_XUID, stats_files

ODDBALL_MATCH = "63391382-6b88-43f9-9ff4-6313404c419c"
FILM_MATCH = "01ee3491-1ca1-4822-b23e-63e836104f32"


def run(coro):
    return asyncio.run(coro)


async def with_client(url: str, fn, token: str | None = "x"):
    """Call ``fn(client)`` with a spnkr client whose requests go to ``url``."""
    async with aiohttp.ClientSession(middlewares=(redirect_middleware(url),)) as session:
        client = HaloInfiniteClient(session, spartan_token=token or "", clearance_token="y", requests_per_second=1000)
        if token is None:
            session.headers.pop("x-343-authorization-spartan", None)
        return await fn(client)


@pytest.fixture(scope="module")
def recorded(halo_api_dir: Path):
    with Emulator(recordings=halo_api_dir) as emu:
        yield emu


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(42, players=3, months=6, matches_per_month=30)


@pytest.fixture(scope="module")
def synthetic(world: SyntheticWorld):
    with Emulator(synthetic=world) as emu:
        yield emu


# ---- recordings -----------------------------------------------------------------------------------------
def test_recorded_history_pages_and_filters(recorded: Emulator):
    async def go(client):
        full = await (await client.stats.get_match_history(OWNER_XUID, 0, 25)).parse()
        pages = [await (await client.stats.get_match_history(f"xuid({OWNER_XUID})", s, 3)).parse() for s in (0, 3, 6)]
        customs = await (await client.stats.get_match_history(OWNER_XUID, 0, 25, "custom")).parse()
        matchmade = await (await client.stats.get_match_history(OWNER_XUID, 0, 25, "matchmaking")).parse()
        return full, pages, customs, matchmade

    full, pages, customs, matchmade = run(with_client(recorded.url, go))
    assert full.result_count == 8
    starts = [r.match_info.start_time for r in full.results]
    assert starts == sorted(starts, reverse=True)
    assert Counter(s.strftime("%Y-%m") for s in starts) == {"2025-01": 5, "2024-09": 2, "2024-08": 1}
    assert [p.result_count for p in pages] == [3, 3, 2]
    assert [r.match_id for p in pages for r in p.results] == [r.match_id for r in full.results]
    assert customs.result_count == 3
    assert all(r.match_info.lifecycle_mode is LifecycleMode.CUSTOM for r in customs.results)
    assert matchmade.result_count == 5


def test_recorded_history_entry_matches_recorded_history_shape(recorded: Emulator, halo_api_dir: Path):
    recorded_page = json.loads((halo_api_dir / "responses" / "get_match_history.json").read_bytes())
    recorded_by_id = {r["MatchId"]: r for r in recorded_page["Results"]}

    async def go(client):
        return await (await client.stats.get_match_history(OWNER_XUID, 0, 25)).json()

    page = run(with_client(recorded.url, go))
    assert set(page) == {"Start", "Count", "ResultCount", "Results", "Links"}
    overlap = [r for r in page["Results"] if r["MatchId"] in recorded_by_id]
    assert len(overlap) == 4
    for entry in overlap:
        assert entry == recorded_by_id[entry["MatchId"]]


def test_recorded_stats_are_served_verbatim(recorded: Emulator, halo_api_dir: Path):
    files = stats_files(halo_api_dir)

    async def go(client):
        out = []
        for f in files:
            match_id = json.loads(f.read_bytes())["MatchId"]
            resp = await client.stats.get_match_stats(match_id)
            out.append((f, await resp.json(), await resp.parse()))
        return out

    for f, body, parsed in run(with_client(recorded.url, go)):
        assert body == json.loads(f.read_bytes())
        assert isinstance(parsed, MatchStats)


def test_unknown_match_is_404(recorded: Emulator):
    unknown = "00000000-0000-4000-8000-000000000000"

    async def go(client):
        statuses = []
        for call in (lambda: client.stats.get_match_stats(unknown),
                     lambda: client.skill.get_match_skill(ODDBALL_MATCH, [OWNER_XUID]),
                     lambda: client.discovery_ugc.get_film_by_match_id(unknown),
                     lambda: client.profile.get_user_by_gamertag("Nobody Here")):
            with pytest.raises(aiohttp.ClientResponseError) as err:
                await call()
            statuses.append(err.value.status)
        return statuses

    assert run(with_client(recorded.url, go)) == [404, 404, 404, 404]


def test_film_highlight_events_from_recordings(recorded: Emulator, halo_api_dir: Path):
    async def go(client):
        events = await read_highlight_events(client, ODDBALL_MATCH)
        stats = await (await client.stats.get_match_stats(ODDBALL_MATCH)).parse()
        small = await read_highlight_events(client, FILM_MATCH)
        small_stats = await (await client.stats.get_match_stats(FILM_MATCH)).parse()
        return events, stats, small, small_stats

    events, stats, small, small_stats = run(with_client(recorded.url, go))
    assert len(events) == 640
    assert not check(events, stats)
    assert len(small) == 6
    assert not check(small, small_stats)


def test_recorded_medals_and_ugc_parse(recorded: Emulator, halo_api_dir: Path):
    samples = {name: json.loads((halo_api_dir / "responses" / name).read_bytes())
               for name in ("get_map.json", "get_map_mode_pair.json", "get_playlist.json", "get_ugc_game_variant.json")}

    async def go(client):
        medals = await (await client.gamecms_hacs.get_medal_metadata()).parse()
        ugc = client.discovery_ugc
        m = samples["get_map.json"]
        p = samples["get_playlist.json"]
        mmp = samples["get_map_mode_pair.json"]
        v = samples["get_ugc_game_variant.json"]
        parsed = [
            await (await ugc.get_map(m["AssetId"], m["VersionId"])).parse(),
            await (await ugc.get_playlist(p["AssetId"], p["VersionId"])).parse(),
            await (await ugc.get_map_mode_pair(mmp["AssetId"], mmp["VersionId"])).parse(),
            await (await ugc.get_ugc_game_variant(v["AssetId"], v["VersionId"])).parse(),
        ]
        with pytest.raises(aiohttp.ClientResponseError) as err:
            await ugc.get_map(p["AssetId"], p["VersionId"])
        return medals, parsed, err.value.status

    medals, parsed, status = run(with_client(recorded.url, go))
    assert len(medals.medals) == 151
    assert [type(x) for x in parsed] == [Map, Playlist, MapModePair, UgcGameVariant]
    assert status == 404


def test_recordings_skill_and_users_conventions(tmp_path: Path, halo_api_dir: Path):
    """A directory the pipeline records itself: skill/<match_id>.json and users.json are served."""
    stats = json.loads((halo_api_dir / "responses" / "get_match_stats.json").read_bytes())
    skill = json.loads((halo_api_dir / "responses" / "get_match_skill.json").read_bytes())
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "m.json").write_text(json.dumps(stats))
    (tmp_path / "skill").mkdir()
    (tmp_path / "skill" / f"{stats['MatchId']}.json").write_text(json.dumps(skill))
    (tmp_path / "users.json").write_text(json.dumps([{"xuid": OWNER_XUID, "gamertag": "Recorded Owner"}]))
    store = RecordingStore.from_directory(tmp_path)

    async def go(client):
        parsed = await (await client.skill.get_match_skill(stats["MatchId"], [OWNER_XUID])).parse()
        user = await (await client.profile.get_user_by_gamertag("recorded owner")).parse()
        users = await (await client.profile.get_users_by_id([OWNER_XUID])).parse()
        history = await (await client.stats.get_match_history("Recorded Owner")).parse()
        return parsed, user, users, history

    with Emulator(recordings=store) as emu:
        parsed, user, users, history = run(with_client(emu.url, go))
    assert parsed.value[0].result.team_mmr == skill["Value"][0]["Result"]["TeamMmr"]
    assert user.xuid == OWNER_XUID and users[0].gamertag == "Recorded Owner"
    assert history.result_count == 1


# ---- synthetic world -------------------------------------------------------------------------------------
def test_synthetic_world_is_deterministic():
    a, b = SyntheticWorld(7, months=2, matches_per_month=10), SyntheticWorld(7, months=2, matches_per_month=10)
    assert a.players == b.players
    assert a.match_ids() == b.match_ids()
    assert all(a.match_stats_body(m) == b.match_stats_body(m) for m in a.match_ids())
    assert SyntheticWorld(8, months=2, matches_per_month=10).players != a.players


def test_synthetic_players_and_shape(world: SyntheticWorld):
    assert len(world.players) == 3
    for p in world.players:
        assert len(str(p.xuid)) == 16 and str(p.xuid).startswith("2533274")
        assert len(p.gamertag) <= 15
    bodies = [json.loads(world.match_stats_body(m)) for m in world.match_ids()]
    assert len(bodies) == 180
    months = Counter(b["MatchInfo"]["StartTime"][:7] for b in bodies)
    assert months == {f"2025-0{m}": 30 for m in range(1, 7)}
    registered = {f"xuid({p.xuid})" for p in world.players}
    shared = [b for b in bodies if len(registered & {p["PlayerId"] for p in b["Players"]}) >= 2]
    assert shared, "registered players share matches"
    assert {b["MatchInfo"]["LifecycleMode"] for b in bodies} == {1, 3}
    assert len({b["MatchInfo"]["GameVariantCategory"] for b in bodies}) >= 4
    assert len({b["MatchInfo"]["Playlist"]["AssetId"] for b in bodies if b["MatchInfo"]["Playlist"]}) == 3
    assert any(p["PlayerType"] == 2 and p["PlayerId"].startswith("bid(") for b in bodies for p in b["Players"])
    assert any(len(p["PlayerTeamStats"]) == 2 for b in bodies for p in b["Players"])
    assert any(len(b["Players"]) == 8 for b in bodies)


def test_synthetic_stats_are_consistent(world: SyntheticWorld):
    for match_id in world.match_ids():
        body = json.loads(world.match_stats_body(match_id))
        MatchStats(**body)
        team_totals: Counter = Counter()
        for player in body["Players"]:
            for entry in player["PlayerTeamStats"]:
                core = entry["Stats"]["CoreStats"]
                k, d, a = core["Kills"], core["Deaths"], core["Assists"]
                assert core["KDA"] == int((k + a / 3 - d) * 100 + (1e-9 if k + a / 3 - d >= 0 else -1e-9)) / 100
                if core["ShotsFired"]:
                    assert core["Accuracy"] == core["ShotsHit"] * 10000 // core["ShotsFired"] / 100
                assert core["PersonalScore"] == sum(s["TotalPersonalScoreAwarded"] for s in core["PersonalScores"])
                assert all(MedalNameId(m["NameId"]) for m in core["Medals"])
                assert all(PersonalScoreNameId(s["NameId"]) for s in core["PersonalScores"])
                team_totals[(entry["TeamId"], "kills")] += k
                team_totals[(entry["TeamId"], "deaths")] += d
        for team in body["Teams"]:
            core = team["Stats"]["CoreStats"]
            assert core["Kills"] == team_totals[(team["TeamId"], "kills")]
            assert core["Deaths"] == team_totals[(team["TeamId"], "deaths")]


def test_synthetic_bodies_parse_over_http(synthetic: Emulator, world: SyntheticWorld):
    xuid = world.players[0].xuid

    async def go(client):
        history = await (await client.stats.get_match_history(xuid, 0, 25)).parse()
        skills, customs = [], 0
        for r in history.results:
            stats = await (await client.stats.get_match_stats(r.match_id)).parse()
            humans = stats.xuids
            try:
                skills.append((r, await (await client.skill.get_match_skill(r.match_id, humans)).parse()))
            except aiohttp.ClientResponseError as exc:
                assert exc.status == 404 and r.match_info.lifecycle_mode is LifecycleMode.CUSTOM
                customs += 1
        # Films: matchmade matches have one (spnkr's own film download and reader), custom games 404.
        made = next(r for r in history.results if r.match_info.lifecycle_mode is LifecycleMode.MATCHMADE)
        film = (made.match_id, await read_highlight_events(client, made.match_id),
                await (await client.stats.get_match_stats(made.match_id)).parse())
        custom_id = next(m for m in world.match_ids() if json.loads(world.match_stats_body(m))["MatchInfo"][
            "LifecycleMode"] == LifecycleMode.CUSTOM.value)
        with pytest.raises(aiohttp.ClientResponseError) as err:
            await client.discovery_ugc.get_film_by_match_id(custom_id)
        medals = await (await client.gamecms_hacs.get_medal_metadata()).parse()
        ugc = client.discovery_ugc
        getters = {"maps": ugc.get_map, "playlists": ugc.get_playlist, "mapModePairs": ugc.get_map_mode_pair,
                   "ugcGameVariants": ugc.get_ugc_game_variant}
        assets = [await (await getters[kind](a, v)).parse() for kind, a, v in world.asset_refs()]
        users = await (await client.profile.get_users_by_id([p.xuid for p in world.players])).parse()
        by_gt = await (await client.profile.get_user_by_gamertag(world.players[1].gamertag)).parse()
        by_id = await (await client.profile.get_user_by_id(world.players[2].xuid)).parse()
        by_gt_history = await (await client.stats.get_match_history(world.players[0].gamertag, 0, 5)).parse()
        return history, skills, film, err.value.status, medals, assets, users, by_gt, by_id, by_gt_history

    history, skills, film, film_status, medals, assets, users, by_gt, by_id, by_gt_history = run(
        with_client(synthetic.url, go))
    assert history.result_count == 25
    assert skills and all(len(s.value) >= 1 for _, s in skills)
    ranked = [s for r, s in skills if s.value[0].result.rank_recap.pre_match_csr.value >= 0]
    assert ranked, "ranked matches carry CSR"
    match_id, events, stats = film
    assert events == world.film(str(match_id)).events and events
    assert check(events, stats) == []
    assert film_status == 404  # a custom game: no film
    assert {m.name_id for m in medals.medals} == set(MedalNameId)
    assert {type(a).__name__ for a in assets} == {"Map", "Playlist", "MapModePair", "UgcGameVariant"}
    assert [u.gamertag for u in users] == [p.gamertag for p in world.players]
    assert by_gt.xuid == world.players[1].xuid and by_id.gamertag == world.players[2].gamertag
    assert [r.match_id for r in by_gt_history.results] == [r.match_id for r in history.results[:5]]


def test_synthetic_history_paging(synthetic: Emulator, world: SyntheticWorld):
    xuid = world.players[1].xuid

    async def go(client):
        ids, start = [], 0
        while True:
            page = await (await client.stats.get_match_history(xuid, start, 25)).parse()
            ids += [str(r.match_id) for r in page.results]
            if page.result_count < 25:
                return ids
            start += 25

    ids = run(with_client(synthetic.url, go))
    assert ids == world.match_ids(xuid)
    assert len(ids) == len(set(ids)) > 25


def test_add_matches_show_up_newest_first(world: SyntheticWorld):
    local = SyntheticWorld(42, months=1, matches_per_month=5)
    a, b = local.players[0].xuid, local.players[1].xuid

    async def newest(client, xuid, n):
        page = await (await client.stats.get_match_history(xuid, 0, n)).parse()
        return [str(r.match_id) for r in page.results]

    with Emulator(synthetic=local) as emu:
        before = run(with_client(emu.url, lambda c: newest(c, a, 25)))
        new = local.add_matches([a, b], n=2)
        after_a = run(with_client(emu.url, lambda c: newest(c, a, 3)))
        after_b = run(with_client(emu.url, lambda c: newest(c, b, 2)))
        when = datetime(2030, 1, 1, tzinfo=UTC)
        later = local.add_matches([a], when=when)
        after_when = run(with_client(emu.url, lambda c: newest(c, a, 1)))
    assert after_a[:2] == new[::-1] and after_a[2] == before[0]
    assert after_b == new[::-1]
    assert after_when == later
    assert parse_time(json.loads(local.match_stats_body(later[0]))["MatchInfo"]["StartTime"]) == when


# ---- server behaviour -------------------------------------------------------------------------------------
def test_requests_without_token_are_401(synthetic: Emulator, world: SyntheticWorld):
    async def go(client):
        with pytest.raises(aiohttp.ClientResponseError) as err:
            await client.stats.get_match_history(world.players[0].xuid)
        return err.value.status

    before = synthetic.counts()["unauthorized"]
    assert run(with_client(synthetic.url, go, token=None)) == 401
    assert synthetic.counts()["unauthorized"] == before + 1


def test_rate_limit_answers_429_with_retry_after(world: SyntheticWorld):
    match_id = world.match_ids()[0]

    async def go(client):
        async def one():
            try:
                await client.stats.get_match_stats(match_id)
                return 200, None
            except aiohttp.ClientResponseError as exc:
                return exc.status, exc.headers.get("Retry-After") if exc.headers else None

        results = await asyncio.gather(*(one() for _ in range(6)))
        other_service = await (await client.gamecms_hacs.get_medal_metadata()).parse()
        return results, other_service

    with Emulator(synthetic=world, rate_limit=2) as emu:
        results, _ = run(with_client(emu.url, go))
        counts = emu.counts()
        async def stats_endpoint():
            async with aiohttp.ClientSession() as s, s.get(f"{emu.url}/_emulator/stats") as r:
                return await r.json()
        served = run(stats_endpoint())
        async def reset_endpoint():
            async with aiohttp.ClientSession() as s, s.post(f"{emu.url}/_emulator/reset") as r:
                return await r.json()
        after_reset = run(reset_endpoint())
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 2, 429: 4}
    assert all(int(retry) >= 1 for status, retry in results if status == 429)
    assert counts["rate_limited"] == 4
    assert counts["requests"] == {"match_stats": 2, "medal_metadata": 1}
    assert counts["by_service"] == {"halostats": 2, "gamecms-hacs": 1}
    assert served == counts
    assert after_reset["requests"] == {} and after_reset["rate_limited"] == 0


def test_latency_applies(world: SyntheticWorld):
    async def go(client):
        t0 = time.perf_counter()
        await client.gamecms_hacs.get_medal_metadata()
        return time.perf_counter() - t0

    with Emulator(synthetic=world, latency_ms=200) as emu:
        elapsed = run(with_client(emu.url, go))
    assert elapsed >= 0.2


def test_recordings_and_synthetic_together(halo_api_dir: Path, world: SyntheticWorld):
    async def go(client):
        owner = await (await client.stats.get_match_history(OWNER_XUID)).parse()
        demo = await (await client.stats.get_match_history(world.players[0].xuid, 0, 1)).parse()
        medals = await (await client.gamecms_hacs.get_medal_metadata()).parse()
        return owner, demo, medals

    with Emulator(recordings=halo_api_dir, synthetic=world) as emu:
        owner, demo, medals = run(with_client(emu.url, go))
        assert emu.world is world
    assert owner.result_count == 8
    assert demo.result_count == 1
    assert {m.name_id for m in medals.medals} == set(MedalNameId)


def test_emulator_requires_a_source_and_binds_loopback():
    with pytest.raises(ValueError):
        Emulator()
    emu = Emulator(synthetic=SyntheticWorld(1, players=1, months=1, matches_per_month=1))
    assert emu.host == "127.0.0.1"
