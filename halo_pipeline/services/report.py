"""The per-player HTML report: performance score over time, K/D by map and by mode category, sessions.

Built with plotly (one self-contained HTML file; plotly.js is embedded so the file opens offline).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from halo_pipeline.storage.files import write_bytes_atomic


def _bar(df: pl.DataFrame, label: str, title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=df[label].to_list(), y=df["kd_ratio"].to_list(),
                           text=[f"{m} matches" for m in df["matches"].to_list()]))
    return fig.update_layout(title=title, yaxis_title="K/D (kills / max(deaths, 1))", height=380)


def player_report_html(xuid: int, gamertag: str | None, scores: pl.DataFrame, maps: pl.DataFrame,
                       categories: pl.DataFrame, sessions: pl.DataFrame, profile: str = "",
                       sections: Sequence[str] = ()) -> str:
    """The report of one player as an HTML document (``profile``: an HTML paragraph under the title;
    ``sections``: HTML appended after the charts).

    Args:
        scores: ``performance_scores`` rows (start_time, performance_score) of the player, all months.
        maps: per map over all months: map label, matches, kd_ratio (like ``mv_map_stats``).
        categories: per mode category: mode_category, matches, kd_ratio (like ``mv_mode_category_stats``).
        sessions: ``session_stats`` rows (start_time, match_count, kd_ratio, avg_performance_score).
    """
    scored = scores.filter(pl.col("performance_score").is_not_null()).sort("start_time")
    perf = go.Figure(go.Scatter(x=scored["start_time"].to_list(), y=scored["performance_score"].to_list(),
                                mode="lines+markers", name="match"))
    perf.update_layout(title="Performance score per match (0–100, vs the player's earlier matches)",
                       yaxis_range=[0, 100], height=380)
    sess = go.Figure([
        go.Bar(x=sessions["start_time"].to_list(), y=sessions["match_count"].to_list(), name="matches"),
        go.Scatter(x=sessions["start_time"].to_list(), y=sessions["kd_ratio"].to_list(), name="K/D",
                   yaxis="y2", mode="markers"),
    ])
    sess.update_layout(title="Sessions: matches and K/D", height=380,
                       yaxis2={"overlaying": "y", "side": "right", "title": "K/D"})
    figures = [perf, _bar(maps, "map", "K/D by map"), _bar(categories, "mode_category", "K/D by mode category"),
               sess]
    parts = [f.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)
             for i, f in enumerate(figures)]
    title = html.escape(f"{gamertag or xuid} — Halo Infinite report")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1>{profile}<p>xuid {xuid}: {scores.height} matches, {sessions.height} sessions.</p>"
            + "".join(parts) + "".join(sections) + "</body></html>")


def write_report(path: Path, document: str) -> Path:
    """Write the report atomically."""
    return write_bytes_atomic(path, document.encode())
