"""Analytics: sessions, performance score, materialized stats and their catalog views — hand-computed
expectations on small frames, then the assets on real partitions (synthetic files and the recorded owner)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from halo_pipeline.defs.analytics.settings import AnalyticsSettings
from halo_pipeline.partitions import PLAYERS, partition_key, partition_range_tags
from halo_pipeline.services.analytics import month_sessions
from halo_pipeline.storage.catalog import refresh_catalog
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import analytics as ta
from halo_pipeline_tests.analytics_data import LIVE_FIRE, STREETS, XUID, crossing_month, fact, facts
from halo_pipeline_tests.conftest import OWNER_XUID
from halo_pipeline_tests.support import SYNC_ASSETS, asset, assets_of, checks, resources

JAN, FEB = "2025-01-01", "2025-02-01"


def test_sessions_cross_a_month_boundary_whole():
    out = ta.sessions(crossing_month())
    assert out["session_id"].to_list() == [f"{XUID}:m0", f"{XUID}:m3"]
    first = out.row(0, named=True)
    assert first["match_count"] == 3 and (first["wins"], first["losses"], first["ties"]) == (2, 1, 0)
    assert (first["kills"], first["deaths"], first["assists"]) == (30, 17, 9)
    assert first["kda"] == pytest.approx(30 + 9 / 3 - 17)            # 16
    assert first["kd_ratio"] == pytest.approx(30 / 17)
    assert first["accuracy"] == pytest.approx(70 / 180 * 100)         # m2 fired no shot
    assert first["start_time"] == datetime(2025, 1, 31, 23, 0, tzinfo=UTC)
    assert first["end_time"] == datetime(2025, 2, 1, 0, 25, tzinfo=UTC)
    assert first["duration_seconds"] == 85 * 60 and first["time_played_seconds"] == 35 * 60
    # a 20-minute gap limit splits m1 → m2 (30 min) but not m0 → m1 (20 min)
    assert ta.sessions(crossing_month(), gap_minutes=20)["match_count"].to_list() == [2, 1, 1]


def test_months_in_any_order_give_identical_sessions_and_scores(tmp_path):
    wh = Warehouse(tmp_path)
    t = datetime(2025, 1, 20, 12, tzinfo=UTC)
    history = [fact(f"h{i:02d}", t + timedelta(hours=2 * i), kills=i) for i in range(12)]
    rows = facts(history).vstack(crossing_month())
    for month in (JAN, FEB):
        wh.write_partition("match_facts", XUID, month, rows.filter(ta.month_of() == month))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(XUID)])
    res = {"warehouse": WarehouseResource(data_dir=str(tmp_path)), "analytics": AnalyticsSettings()}
    results = []
    for order in ([FEB, JAN], [JAN, FEB]):
        for month in order:
            assert dg.materialize([asset("sessions"), asset("performance_scores")], instance=instance, resources=res,
                                  partition_key=str(partition_key(XUID, month))).success
        results.append({t: wh.read_table(t) for t in ("sessions", "performance_scores")})
    for table in ("sessions", "performance_scores"):
        assert results[0][table].equals(results[1][table])
    jan, feb = (wh.read_partition("sessions", XUID, m) for m in (JAN, FEB))
    assert f"{XUID}:m0" in jan["session_id"].to_list() and jan.filter(
        pl.col("session_id") == f"{XUID}:m0")["match_count"].item() == 3
    assert feb["session_id"].to_list() == [f"{XUID}:m3"]
    assert month_sessions(wh, XUID, FEB, ta.GAP_MINUTES)["session_id"].to_list() == [f"{XUID}:m3"]
    # Feb's scores read January's matches: m2 and m3 have ≥ 10 earlier matches
    assert wh.read_partition("performance_scores", XUID, FEB)["performance_score"].null_count() == 0


def test_performance_score_hand_computed_and_null_below_ten_earlier_matches():
    t = datetime(2025, 3, 1, tzinfo=UTC)
    rows = [fact(f"p{i:02d}", t + timedelta(hours=i), kills=i) for i in range(11)]
    out = ta.performance_scores(facts(rows))
    assert out["history_matches"].to_list() == list(range(11))
    assert out["performance_score"][:10].null_count() == 10           # < 10 earlier matches
    # match 10: kills/min and KDA above all 10 earlier → 100; every other known metric ties → 50;
    # rank_vs_expected is unknown without participants. (0.30·100 + 0.60·50) / 0.90 = 66.67
    assert out["performance_score"][10] == pytest.approx((0.30 * 100 + 0.60 * 50) / 0.90, abs=1e-4)
    # with players per match: rank 1 of 8 → +3.5 for every match (ties → 50), weight 0.10 joins the sum
    players = pl.DataFrame({"match_id": [r["match_id"] for r in rows], "players": [8] * 11})
    with_rank = ta.performance_scores(facts(rows), players)
    assert with_rank["rank_vs_expected"][10] == 3.5
    assert with_rank["performance_score"][10] == pytest.approx(0.30 * 100 + 0.70 * 50, abs=1e-4)
    assert sum(w for w, _ in ta.PERFORMANCE_METRICS.values()) == pytest.approx(1.0)


def _labelled():
    names = pl.DataFrame({"kind": ["maps", "maps", "mapModePairs", "mapModePairs"],
                          "asset_id": [LIVE_FIRE, STREETS, "p1", "p2"], "version_id": ["v"] * 4,
                          "public_name": ["Live Fire", "Streets", "Ranked:Slayer on Live Fire", "Mystery:Mode on X"]},
                         schema=ta.UGC_NAMES_SCHEMA)
    game_modes = pl.DataFrame({"name_en": ["Arena:CTF on Aquarius"], "category": ["Arena"]})
    categories = pl.DataFrame({"category": ["Arena", "Ranked", "Other"]})
    t = datetime(2025, 3, 1, tzinfo=UTC)
    rows = facts([fact("a", t, map_id=LIVE_FIRE, pair="p1", kills=10, deaths=5, assists=3, outcome=2),
                  fact("b", t + timedelta(hours=1), map_id=LIVE_FIRE, pair="p1", kills=4, deaths=8, assists=6,
                       outcome=3, fired=50, hit=10),
                  fact("c", t + timedelta(hours=2), map_id=STREETS, pair="p2", kills=7, deaths=0, assists=0)])
    return ta.label_matches(rows, names, game_modes, categories), rows


def test_mv_stats_hand_computed():
    labelled, rows = _labelled()
    assert labelled["mode_category"].to_list() == ["Ranked", "Ranked", ta.OTHER]
    assert ta.mode_category("Arena:CTF on Aquarius", {"Arena:CTF on Aquarius": "Arena"}, set()) == "Arena"
    assert ta.mode_category(None, {}, {"Arena"}) == ta.OTHER
    scores = pl.DataFrame({"match_id": ["a", "b", "c"], "performance_score": [60.0, None, 40.0]})
    maps = ta.map_stats(labelled, scores, "2025-03-01")
    live = maps.filter(pl.col("map_name") == "Live Fire").row(0, named=True)
    assert (live["matches"], live["wins"], live["losses"], live["kills"], live["deaths"]) == (2, 1, 1, 14, 13)
    assert live["win_rate"] == pytest.approx(0.5) and live["kd_ratio"] == pytest.approx(14 / 13)
    assert live["kda"] == pytest.approx((14 + 9 / 3 - 13) / 2)        # mean per-match KDA = 2
    assert live["accuracy"] == pytest.approx(60 / 150 * 100)
    assert live["avg_performance_score"] == pytest.approx(60.0)       # b has no score
    cats = ta.mode_category_stats(labelled, scores, "2025-03-01")
    assert dict(zip(cats["mode_category"], cats["matches"], strict=True)) == {"Other": 1, "Ranked": 2}
    glob = ta.global_stats(rows, scores, "2025-03-01").row(0, named=True)
    assert glob["matches"] == 3 and glob["kd_ratio"] == pytest.approx(21 / 13)
    assert glob["avg_performance_score"] == pytest.approx(50.0)
    sess = ta.sessions(crossing_month())
    stats = ta.session_stats(sess, crossing_month(), pl.DataFrame(
        {"match_id": ["m0", "m1", "m2", "m3"], "performance_score": [10.0, 20.0, 60.0, 99.0]}), JAN)
    assert stats["avg_performance_score"].to_list() == [pytest.approx(30.0), pytest.approx(99.0)]


def test_catalog_mv_views_roll_up_months(tmp_path):
    wh = Warehouse(tmp_path)
    labelled, rows = _labelled()
    scores = pl.DataFrame({"match_id": ["a", "b", "c"], "performance_score": [60.0, None, 40.0]})
    for month in ("2025-03-01", "2025-04-01"):  # the same figures in two months: the views sum them
        wh.write_partition("map_stats", XUID, month, ta.map_stats(labelled, scores, month))
        wh.write_partition("mode_category_stats", XUID, month, ta.mode_category_stats(labelled, scores, month))
        wh.write_partition("global_stats", XUID, month, ta.global_stats(rows, scores, month))
        wh.write_partition("session_stats", XUID, month, ta.session_stats(
            ta.sessions(crossing_month()), crossing_month(), scores, month))
    with duckdb.connect(str(tmp_path / "c.duckdb")) as con:
        counts = refresh_catalog(con, wh)
        live = con.execute("SELECT matches, wins, kills, deaths, kd_ratio, accuracy, avg_performance_score, kda "
                           "FROM mv_map_stats WHERE map_name = 'Live Fire'").fetchone()
        assert live[:4] == (4, 2, 28, 26)
        assert live[4] == pytest.approx(28 / 26) and live[5] == pytest.approx(40.0)
        assert live[6] == pytest.approx(60.0) and live[7] == pytest.approx(2.0)
        assert con.execute("SELECT matches, first_month, last_month FROM mv_global_stats").fetchone() == (
            6, "2025-03-01", "2025-04-01")
        cats = dict(con.execute("SELECT mode_category, matches FROM mv_mode_category_stats").fetchall())
        assert cats == {"Ranked": 4, "Other": 2}
        assert counts["mv_session_stats"] == 4


@pytest.mark.slow
def test_recorded_owner_analytics(recorded_emulator, reference_dir, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(OWNER_XUID)])
    res = resources(recorded_emulator.url, tmp_path, reference_dir)
    assert dg.materialize(assets_of("reference"), instance=instance, resources=res).success
    result = dg.materialize([*SYNC_ASSETS, *assets_of("analytics"), *checks()],
                            instance=instance, resources=res,
                            tags=partition_range_tags(OWNER_XUID, "2024-08-01", "2025-01-01"))
    assert result.success
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert all(passed for name, passed in outcomes.items() if name != "player_sync_fresh")
    assert {"unique_match_id_per_owner", "owner_in_participants", "no_null_start_time", "accuracy_in_range",
            "team_kills_match_participants", "medal_names_defined", "all_matches_landed"} <= set(outcomes)
    wh = Warehouse(tmp_path)
    assert wh.read_table("sessions")["match_count"].sum() == 8
    assert wh.read_table("performance_scores")["performance_score"].null_count() == 8  # < 10 earlier matches
    glob = wh.read_table("global_stats")
    assert glob["matches"].sum() == 8 and glob["kills"].sum() == wh.read_table("match_facts")["kills"].sum()
    assert wh.read_table("mode_category_stats")["mode_category"].null_count() == 0
    report = tmp_path / "warehouse" / "reports" / f"{OWNER_XUID}.html"
    assert report.exists() and "plotly" in report.read_text()[:200000].lower()
    # zero API calls on a re-derive of the analytics (UGC names are landed once per asset version)
    recorded_emulator.reset_counts()
    assert dg.materialize(assets_of("analytics"), instance=instance, resources=res,
                          tags=partition_range_tags(OWNER_XUID, "2024-08-01", "2025-01-01")).success
    assert sum(recorded_emulator.counts()["requests"].values()) == 0
