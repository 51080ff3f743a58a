"""The per-player HTML report: performance score over time, K/D by map and by mode category, sessions, the
player's medals (with their icons) and maps (with their thumbnails).

Built with plotly (one self-contained HTML file; plotly.js is embedded so the file opens offline). Images are
embedded too, as ``data:`` URIs: relative paths to the data folder would break as soon as the file is mailed,
copied or opened from another folder, and browsers refuse ``file://`` images in some settings; a medal icon is
≈ 1–5 KB and map thumbnails are scaled down to 160 px wide, so the file stays small.
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


def _img(uri: str | None, alt: str, css: str, width: int) -> str:
    if not uri:
        return ""
    return f"<img class='{css}' alt='{html.escape(alt, quote=True)}' width='{width}' src='{uri}'>"


def medals_html(medals: pl.DataFrame) -> str:
    """The medals table: one row per medal (``name_id``, ``name``, ``count``, ``icon``: a data URI or null),
    most earned first; each row carries ``data-name-id``."""
    if medals.is_empty():
        return "<h2>Medals</h2><p>No medal earned yet.</p>"
    rows = "".join(
        f"<tr data-name-id='{r['name_id']}'><td>{_img(r['icon'], r['name'], 'medal-icon', 36)}</td>"
        f"<td>{html.escape(r['name'])}</td><td>{r['count']}</td></tr>"
        for r in medals.iter_rows(named=True))
    return ("<h2>Medals</h2><table class='medals'><tr><th></th><th>medal</th><th>count</th></tr>"
            + rows + "</table>")


def maps_html(maps: pl.DataFrame) -> str:
    """The maps table: map label, thumbnail (data URI or null), matches, win rate, K/D; rows carry
    ``data-map-id``."""
    if maps.is_empty():
        return ""
    rows = "".join(
        f"<tr data-map-id='{html.escape(str(r['map_id'] or ''), quote=True)}'>"
        f"<td>{_img(r.get('thumbnail'), r['map'], 'map-thumbnail', 96)}</td><td>{html.escape(r['map'])}</td>"
        f"<td>{r['matches']}</td><td>{(r['win_rate'] or 0) * 100:.0f} %</td><td>{r['kd_ratio'] or 0:.2f}</td></tr>"
        for r in maps.iter_rows(named=True))
    return ("<h2>Maps</h2><table class='maps'><tr><th></th><th>map</th><th>matches</th><th>win rate</th>"
            "<th>K/D</th></tr>" + rows + "</table>")


def player_report_html(xuid: int, gamertag: str | None, scores: pl.DataFrame, maps: pl.DataFrame,
                       categories: pl.DataFrame, sessions: pl.DataFrame, profile: str = "",
                       sections: Sequence[str] = (), medals: pl.DataFrame | None = None) -> str:
    """The report of one player as an HTML document (``profile``: an HTML paragraph under the title;
    ``sections``: HTML appended after the charts, before the maps and medals tables).

    Args:
        scores: ``performance_scores`` rows (start_time, performance_score) of the player, all months.
        maps: per map over all months: map_id, map label, matches, win_rate, kd_ratio (like ``mv_map_stats``),
            and ``thumbnail`` (a data URI, or null) when images are landed.
        categories: per mode category: mode_category, matches, kd_ratio (like ``mv_mode_category_stats``).
        sessions: ``session_stats`` rows (start_time, match_count, kd_ratio, avg_performance_score).
        medals: the player's medals over all matches: name_id, name, count, icon (a data URI, or null).
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
    if "thumbnail" not in maps.columns:
        maps = maps.with_columns(thumbnail=pl.lit(None, pl.Utf8))
    tables = maps_html(maps) + (medals_html(medals) if medals is not None else "")
    style = ("<style>table{border-collapse:collapse;font-family:sans-serif}td,th{padding:2px 10px;text-align:left}"
             "img{vertical-align:middle}</style>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{style}</head><body>"
            f"<h1>{title}</h1>{profile}<p>xuid {xuid}: {scores.height} matches, {sessions.height} sessions.</p>"
            + "".join(parts) + "".join(sections) + tables + "</body></html>")


def write_report(path: Path, document: str) -> Path:
    """Write the report atomically."""
    return write_bytes_atomic(path, document.encode())
