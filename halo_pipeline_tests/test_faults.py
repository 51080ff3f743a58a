"""The emulator's fault injection (``halo_pipeline/emulator/faults.py``), fault by fault over real HTTP, and
what the pipeline does with each: incomplete bodies are never landed, an unknown enum value is landed and
derived, an unreadable film chunk does not fail its partition."""

from __future__ import annotations

import asyncio
import time
import zlib

import aiohttp
import dagster as dg
import orjson
import polars as pl
import pydantic
import pytest
from spnkr.models.stats import MatchStats

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.emulator.faults import FaultInjector, parse_faults
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.ids import InvalidInput
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.landing import STATS
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline_tests.conftest import OWNER_XUID
from halo_pipeline_tests.support import SYNC_ASSETS, asset

ODDBALL = "63391382-6b88-43f9-9ff4-6313404c419c"
AUTH = {"x-343-authorization-spartan": "token-a"}


def _get(url: str, paths: list[str], headers: dict | None = None, timeout: float = 10) -> list[tuple[int, dict, bytes]]:
    """GET ``paths`` one after the other: (status, headers, body) each."""

    async def go():
        out = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for path in paths:
                async with session.get(url + path, headers=headers if headers is not None else AUTH) as r:
                    out.append((r.status, dict(r.headers), await r.read()))
        return out

    return asyncio.run(go())


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(seed=11, players=1, months=1, matches_per_month=12)


def stats_path(match_id: str) -> str:
    return f"/halostats/hi/matches/{match_id}/stats"


# --- the spec ---------------------------------------------------------------------------------------------
def test_spec_grammar():
    plan = parse_faults("429:burst=5,every=40;401:after=30;5xx:rate=0.05,codes=502+503;hang:rate=0.01;"
                        "truncate:rate=0.02;malformed:rate=0.02,on=match_stats;enum:rate=0.05;film_bad:rate=0.1;"
                        "expired:rate=0.02;seed=1")
    assert plan.seed == 1 and set(plan.faults) == {"429", "401", "5xx", "hang", "truncate", "malformed", "enum",
                                                    "film_bad", "expired"}
    assert plan.get("5xx").codes == (502, 503) and plan.get("malformed").on == {"match_stats"}
    assert plan.get("truncate").on == {"match_stats", "match_skill"}  # defaults
    assert parse_faults(None).faults == {} and parse_faults("").faults == {}


@pytest.mark.parametrize("spec, words", [
    ("teapot:rate=1", "unknown fault 'teapot'"),
    ("5xx:rate=2", "rate"),
    ("5xx:rate=abc", "rate"),
    ("5xx:codes=404", "codes"),
    ("hang:rate", "expected name=value"),
    ("429:burst=0", "burst"),
    ("truncate:on=nowhere", "unknown route"),
    ("5xx:speed=3", "speed"),
    ("5xx:rate=0.1;5xx:rate=0.2", "given twice"),
    ("seed=x", "seed must be an integer"),
])
def test_bad_spec_is_one_line(spec, words):
    with pytest.raises(InvalidInput) as info:
        parse_faults(spec)
    message = str(info.value)
    assert words in message and "\n" not in message and spec.split(";")[-1] in message


def test_rate_faults_are_deterministic_by_seed_and_transient():
    def fates(seed: int) -> list[tuple]:
        injector = FaultInjector(f"5xx:rate=0.3;seed={seed}")
        return [injector.before("match_stats", f"/m/{i % 50}", None) for i in range(400)]

    assert fates(1) == fates(1)
    assert fates(1) != fates(2)
    hits = [f for f in fates(1) if f is not None]
    assert 60 < len(hits) < 180  # ≈ 30 % of 400
    # A retried path is a new draw: no path fails on all of its 8 occurrences at rate 0.3 (0.3^8 ≈ 7e-5 each).
    injector = FaultInjector("5xx:rate=0.3;seed=1")
    for path in (f"/m/{i}" for i in range(50)):
        assert any(injector.before("match_stats", path, None) is None for _ in range(8))


# --- each fault over HTTP ---------------------------------------------------------------------------------
def test_429_bursts_with_retry_after(world):
    mid = world.match_ids()[0]
    with Emulator(synthetic=world, faults="429:burst=2,every=3,retry_after=2") as emu:
        answers = _get(emu.url, [stats_path(mid)] * 7)
        counts = emu.counts()
    assert [a[0] for a in answers] == [200, 200, 429, 429, 200, 429, 429]
    assert all(a[1]["Retry-After"] == "2" for a in answers if a[0] == 429)
    assert counts["faults"]["429"] == 4 and counts["rate_limited"] == 4


def test_401_after_n_requests_until_a_new_token(world):
    mid = world.match_ids()[0]
    with Emulator(synthetic=world, faults="401:after=2") as emu:
        first = _get(emu.url, [stats_path(mid)] * 4)
        refreshed = _get(emu.url, [stats_path(mid)] * 2, headers={"x-343-authorization-spartan": "token-b"})
        old_again = _get(emu.url, [stats_path(mid)])
    assert [a[0] for a in first] == [200, 200, 401, 401]
    assert [a[0] for a in refreshed] == [200, 200] and old_again[0][0] == 401


def test_401_is_refreshed_by_the_client(world):
    """The API resource refreshes the token once on a 401 (a new emulator token) and the call succeeds."""
    from halo_pipeline.api.client import run_api

    mid = world.match_ids()[0]
    with Emulator(synthetic=world, faults="401:after=3") as emu:
        api = HaloApiResource(api_url=emu.url, requests_per_second=100)

        async def go():
            async with api.client() as client:
                return [await client.match_stats(mid) for _ in range(6)], client.stats

        bodies, stats = run_api(go())
        assert emu.counts()["faults"]["401"] >= 1
    assert all(b == world.match_stats_body(mid) for b in bodies) and stats.refreshed >= 1


def test_5xx_expired_truncate_malformed_enum_hang(world):
    mid = world.match_ids()[0]
    original = world.match_stats_body(mid)
    with Emulator(synthetic=world, faults="5xx:rate=1,codes=502") as emu:
        assert _get(emu.url, [stats_path(mid)])[0][0] == 502
    with Emulator(synthetic=world, faults="expired:rate=1") as emu:
        assert _get(emu.url, [stats_path(mid)])[0][0] == 404
        history = _get(emu.url, [f"/halostats/hi/players/xuid({world.players[0].xuid})/matches"])[0]
        assert history[0] == 200  # only the match's stats expire
    with Emulator(synthetic=world, faults="truncate:rate=1") as emu:
        status, headers, body = _get(emu.url, [stats_path(mid)])[0]
        assert status == 200 and 0 < len(body) < len(original) and original.startswith(body)
        assert int(headers["Content-Length"]) == len(body)
    with Emulator(synthetic=world, faults="malformed:rate=1") as emu:
        status, _, body = _get(emu.url, [stats_path(mid)])[0]
        assert status == 200 and body.startswith(b"<html>")
    with Emulator(synthetic=world, faults="enum:rate=1,value=77") as emu:
        status, _, body = _get(emu.url, [stats_path(mid)])[0]
        doc = orjson.loads(body)
        assert doc["MatchInfo"]["PlaylistExperience"] == 77
        MatchStats(**orjson.loads(original))
        with pytest.raises(pydantic.ValidationError):
            MatchStats(**doc)
    with Emulator(synthetic=world, faults="hang:rate=1,seconds=0.6") as emu:
        started = time.monotonic()
        assert _get(emu.url, [stats_path(mid)])[0][0] == 200
        assert time.monotonic() - started >= 0.6
        with pytest.raises(asyncio.TimeoutError):
            _get(emu.url, [stats_path(mid)], timeout=0.2)


def test_film_bad_serves_an_unreadable_chunk(halo_api_dir):
    with Emulator(recordings=halo_api_dir, faults="film_bad:rate=1") as emu:
        manifest = orjson.loads(_get(emu.url, [f"/discovery-infiniteugc/hi/films/matches/{ODDBALL}/spectate"])[0][2])
        url = manifest["BlobStoragePathPrefix"].replace("https://blobs-infiniteugc.svc.halowaypoint.com",
                                                        emu.url + "/blobs-infiniteugc") + "filmChunk0"
        status, _, chunk = _get(url, [""])[0]
    whole = (halo_api_dir / "film" / f"38_{ODDBALL}.gzip").read_bytes()
    assert status == 200 and chunk == whole[: len(whole) // 2]
    with pytest.raises(zlib.error):
        zlib.decompress(chunk)


# --- what the pipeline does with them ---------------------------------------------------------------------
def _sync(emu_url: str, data_dir, xuid: int, months: tuple[str, str], instance=None,
          **api) -> dg.ExecuteInProcessResult:
    instance = instance or dg.DagsterInstance.ephemeral()
    if str(xuid) not in instance.get_dynamic_partitions(PLAYERS):
        instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
    resources = {"halo_api": HaloApiResource(api_url=emu_url, requests_per_second=200, **api),
                 "warehouse": WarehouseResource(data_dir=str(data_dir))}
    return dg.materialize(SYNC_ASSETS, instance=instance, resources=resources,
                          tags=partition_range_tags(xuid, *months), raise_on_error=False)


def test_incomplete_bodies_are_never_landed_and_are_retried(world, tmp_path):
    xuid = world.players[0].xuid
    ids = world.match_ids(xuid)
    with Emulator(synthetic=world, faults="truncate:rate=0.5;malformed:rate=0.3;seed=3") as emu:
        result = _sync(emu.url, tmp_path, xuid, ("2025-06-01", "2025-06-01"))
        assert result.success
        log = emu.fault_log()
        bad = {path.split("/")[-2] for kind, route, path in log if route == "match_stats"}
        assert bad and {k for k, *_ in log} == {"truncate", "malformed"}
        wh = Warehouse(tmp_path)
        index = wh.read_table("raw_matches")
        failed = set(index.filter(pl.col("stats_status") == "failed")["match_id"])
        assert failed == bad
        for mid in failed:
            assert wh.landing.get(STATS, mid) is None  # nothing landed for them
        for mid in set(ids) - failed:
            assert wh.landing.get(STATS, mid) == world.match_stats_body(mid)  # complete bodies only
        errors = index.filter(pl.col("stats_status") == "failed")["error"].to_list()
        assert all(e.startswith("stats: stats body is not valid JSON") for e in errors)
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "all_matches_landed"]
        assert not check.passed and check.partition == f"2025-06-01|{xuid}"
        materialization = next(iter(result.asset_materializations_for_node("raw_matches")))
        listed = materialization.metadata["failed_matches"].value
        assert all(mid in listed for mid in failed)
        assert set(wh.read_table("match_facts")["match_id"]) == set(ids) - failed

        emu.set_faults(None)
        assert _sync(emu.url, tmp_path, xuid, ("2025-06-01", "2025-06-01")).success
    assert set(wh.read_table("match_facts")["match_id"]) == set(ids)
    assert set(wh.read_table("raw_matches")["stats_status"]) == {"landed"}


def test_unknown_enum_is_landed_and_derived(world, tmp_path):
    xuid = world.players[0].xuid
    with Emulator(synthetic=world) as emu:
        assert _sync(emu.url, tmp_path / "clean", xuid, ("2025-06-01", "2025-06-01")).success
        emu.set_faults("enum:rate=1")
        result = _sync(emu.url, tmp_path / "enum", xuid, ("2025-06-01", "2025-06-01"))
        assert result.success and emu.counts()["faults"]["enum"] == len(world.match_ids(xuid))
    clean, enum = Warehouse(tmp_path / "clean"), Warehouse(tmp_path / "enum")
    index = enum.read_table("raw_matches")
    assert index["spnkr_parse_ok"].not_().all() and set(index["stats_status"]) == {"landed"}
    assert all("PlaylistExperience" in e or "playlist_experience" in e.lower() for e in index["error"])
    assert result.get_asset_check_evaluations()[0].passed
    facts_clean, facts_enum = (w.read_table("match_facts").sort("match_id") for w in (clean, enum))
    assert set(facts_enum["playlist_experience"]) == {99}
    assert facts_enum.drop("playlist_experience").equals(facts_clean.drop("playlist_experience"))
    for table in ("match_participants", "medals", "personal_scores", "team_stats", "player_match_skill"):
        assert enum.read_table(table).sort(pl.all()).equals(clean.read_table(table).sort(pl.all())), table


def test_unreadable_film_chunk_is_retried_then_a_bad_landed_chunk_spares_the_partition(recorded_emulator, tmp_path):
    months = ("2024-08-01", "2025-01-01")
    instance = dg.DagsterInstance.ephemeral()
    recorded_emulator.set_faults("film_bad:rate=1")
    try:
        first = _sync(recorded_emulator.url, tmp_path, OWNER_XUID, months, instance)
    finally:
        recorded_emulator.set_faults(None)
    assert first.success
    wh = Warehouse(tmp_path)
    index = wh.read_table("raw_matches")
    bad = index.filter(pl.col("film_status") == "failed")
    assert ODDBALL in set(bad["match_id"]) and all("truncated" in e for e in bad["error"])
    assert not wh.landing.has_film(ODDBALL)

    assert _sync(recorded_emulator.url, tmp_path, OWNER_XUID, months, instance).success
    assert wh.landing.has_film(ODDBALL)
    events = wh.read_table("highlight_events")
    films = set(events["match_id"])
    assert ODDBALL in films and len(films) == 2

    # A landed chunk that cannot be decoded (damaged on disk, or landed before chunks were checked): its
    # partition still materializes, with the other matches' events, and the run's log names the match.
    chunk, version = wh.landing.get_film(ODDBALL)
    wh.landing.put_film(ODDBALL, version, chunk[: len(chunk) // 3])
    result = dg.materialize(SYNC_ASSETS, selection=[asset("highlight_events")], instance=instance,
                            resources={"warehouse": WarehouseResource(data_dir=str(tmp_path)),
                                       "halo_api": HaloApiResource(api_url=recorded_emulator.url)},
                            tags=partition_range_tags(OWNER_XUID, *months))
    assert result.success
    after = wh.read_table("highlight_events")
    assert set(after["match_id"]) == films - {ODDBALL}
    assert after.height == events.filter(pl.col("match_id") != ODDBALL).height
    warnings = [r.dagster_event.message if r.dagster_event else r.user_message
                for r in instance.all_logs(result.run_id) if r.level >= 30]
    assert any(ODDBALL in (w or "") and "unreadable" in (w or "") for w in warnings), [
        (r.level, r.user_message[:200]) for r in instance.all_logs(result.run_id)]


@pytest.mark.slow
def test_a_stats_endpoint_that_always_fails_is_tried_max_attempts_recorded_and_retried_by_the_next_sync(
        tmp_path, monkeypatch):
    """Through ``halo-pipeline sync`` (the planner, default retry settings): every stats call answers 503, so each
    match is asked exactly ``max_attempts`` times, recorded failed with the status, holds the watermark — and the
    next sync, the API healthy again, lands them all."""
    import random

    from halo_pipeline.runner import sync_players
    from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR
    from halo_pipeline_tests.support import fast_defs

    monkeypatch.setattr(random, "uniform", lambda low, high: low)  # no jitter sleep: the attempts are counted
    world = SyntheticWorld(seed=13, players=1, months=1, matches_per_month=6)
    xuid = world.players[0].xuid
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
    with Emulator(synthetic=world, faults="5xx:rate=1,codes=503,on=match_stats") as emu:
        for name, value in {"HALO_API_URL": emu.url, "HALO_DATA_DIR": str(tmp_path),
                            "HALO_REFERENCE_DIR": str(DEFAULT_REFERENCE_DIR)}.items():
            monkeypatch.setenv(name, value)

        def sync():
            return sync_players(fast_defs(), instance, HaloApiResource(requests_per_second=400), WarehouseResource(),
                                log=lambda _: None)

        started = time.monotonic()
        assert sync().ok  # failures are recorded, not run failures
        assert time.monotonic() - started < 60
        assert emu.counts()["requests"]["match_stats"] == 6 * len(world.match_ids(xuid))  # max_attempts each
        wh = Warehouse(tmp_path)
        index = wh.read_table("raw_matches")
        assert set(index["stats_status"]) == {"failed"} and all("HTTP 503" in e for e in index["error"])
        state = wh.read_table("sync_meta").row(0, named=True)
        assert state["sync_status"] == "incomplete" and state["watermark"] is None and state["failed_matches"] == 6

        emu.set_faults(None)
        assert sync().ok
    assert set(wh.read_table("raw_matches")["stats_status"]) == {"landed"}
    assert set(wh.read_table("match_facts")["match_id"]) == set(world.match_ids(xuid))
    assert wh.read_table("sync_meta")["sync_status"].to_list() == ["ok"]
