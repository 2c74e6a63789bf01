"""The catalog map page: the stored map (map_store.py) as server-rendered SVG (map_svg.py), coloured by a select,
zoomed by links (the viewport in the query string: a zoomed view is a link; htmx swaps only the view), with a
search's reference and results, or a track and its neighbours, drawn on it. Admins recompute it (the map job)."""

from html import escape

import numpy as np
from flask import Blueprint, abort, render_template, request, url_for
from redis import RedisError

from audiofind import catalog_map, map_svg
from audiofind.jobs.queue import QueueUnavailable, enqueue_map, job_status, latest_map_job
from audiofind.routes.auth import admin_access, admin_required, cross_site
from audiofind.routes.context import get_catalog, services
from audiofind.routes.hx import render
from audiofind.routes.schemas import MapQuery, parse

bp = Blueprint("map", __name__)
SIZE = 800  # the SVG's pixels a side
ZOOM_CELLS = 4  # a click on empty map in one of 4 x 4 cells zooms there
BPM_BANDS = (70, 90, 110, 130, 150)
ENERGY_BANDS = (0.2, 0.4, 0.6, 0.8)
NEIGHBOURS = 10  # results drawn for a track's "more like this"
MAX_POINTS = 1000  # drawn in one view; beyond, the density of the rest (BENCHMARKS.md, "Catalog map")


@bp.get("/map")
def index():
    query = parse(MapQuery, request.args)
    return render("map/index.html", "map/_view.html", **_view(query))


def _view(query: MapQuery) -> dict:
    stored = services().map_store.load() if services().map_store is not None else None
    context = {"query": query, "stored": stored, "map_job": _map_job_or_none()}
    if stored is None or not len(stored):
        return {**context, "stored": None}
    viewport = query.viewport()
    coords = stored.coarse if query.view == "coarse" else stored.layout
    inside = catalog_map.in_viewport(coords, viewport)
    highlight, marks, heading = _highlight(query)
    # Only the points drawn need their tracks read: at most MAX_POINTS (the same ones at every zoom), and those
    # highlighted; the rest of the view is drawn as density.
    drawn = catalog_map.select_points(coords, viewport, MAX_POINTS) if len(inside) > MAX_POINTS else inside
    rows = [stored.row(t) for t in highlight]
    drawn = np.union1d(drawn, [r for r in rows if r is not None]).astype(np.int64)
    ids = [stored.track_ids[i] for i in drawn]
    tracks = get_catalog().index.get_many(ids, envelope=False)
    kept = [k for k, t in enumerate(ids) if t in tracks]  # a track removed since the map was computed is left out
    ids, points = [ids[k] for k in kept], coords[drawn[kept]] if kept else coords[:0]
    shown = [tracks[t] for t in ids]
    svg = map_svg.render(points, ids, viewport=viewport, url=url_for("ui.track", track_id="ID").replace("ID", "{id}"),
                         titles=[_title(t) for t in shown], highlight=highlight, marks=marks, width=SIZE, height=SIZE,
                         underlay=_zoom_cells(query, viewport), background=coords,
                         max_points=max(MAX_POINTS, len(points)), **_colouring(query.colour, shown))
    return {**context, "svg": svg, "in_view": len(inside), "total": len(stored), "heading": heading,
            "zoom_out": _url(query, _zoomed_out(viewport)) if viewport != (0.0, 0.0, 1.0, 1.0) else None,
            "whole": _url(query, None), "zoomed": viewport != (0.0, 0.0, 1.0, 1.0)}


def _title(track):
    parts = [track.title or track.file, track.artist, track.album, track.key]
    return " · ".join(p for p in parts if p)


def _colouring(colour, tracks) -> dict:
    if colour == "album":
        return {"categories": [t.album or "(no album)" for t in tracks]}
    if colour == "tag":
        return {"categories": [t.tags[0] if t.tags else "(no tags)" for t in tracks]}
    if colour == "bpm":
        return {"values": [t.bpm if t.bpm is not None else float("nan") for t in tracks], "bands": BPM_BANDS}
    if colour == "energy":
        return {"values": [t.energy if t.energy is not None else float("nan") for t in tracks], "bands": ENERGY_BANDS}
    return {}


def _highlight(query) -> tuple:
    """({track_id: "reference" | "result"}, [(xy, title)] marks for a reference that is no catalog track, heading)."""
    if query.track:
        item = get_catalog().get(query.track)
        if item is None:
            abort(404)
        results = get_catalog().similar(query.track, limit=NEIGHBOURS)
        highlight = {r["track_id"]: "result" for r in results}
        highlight[query.track] = "reference"
        return highlight, [], f"{item['title'] or item['file']} and the tracks most like it"
    if query.search:
        info = job_status(services(), query.search, kind="search")
        if info is None or info["status"] != "finished":
            return {}, [], "This search has expired or is not finished"
        highlight = {r["track_id"]: "result" for r in info["result"] or []}
        position = info.get("map_position")
        marks = []
        if position:
            xy = position[1] if query.view == "coarse" else position[0]
            marks = [(xy, f"Your file: {info['file'] or 'the reference'}")]
        return highlight, marks, f"Tracks that sound like {info['file'] or 'your file'}"
    return {}, [], ""


def _zoom_cells(query, viewport) -> str:
    """Links under the points: a click on empty map zooms in twice, centred on the cell clicked."""
    x0, y0, x1, y1 = viewport
    width, height = (x1 - x0) / 2, (y1 - y0) / 2
    cell = SIZE / ZOOM_CELLS
    parts = ['<g class="zoom">']
    for row in range(ZOOM_CELLS):
        for column in range(ZOOM_CELLS):
            cx = x0 + (x1 - x0) * (column + 0.5) / ZOOM_CELLS
            cy = y0 + (y1 - y0) * (row + 0.5) / ZOOM_CELLS
            left = min(max(cx - width / 2, x0), x1 - width)
            top = min(max(cy - height / 2, y0), y1 - height)
            href = escape(_url(query, (left, top, left + width, top + height)))
            parts.append(f'<a href="{href}" hx-get="{href}" hx-target="#map-view" hx-push-url="true" '
                         f'class="zoom-in"><rect x="{column * cell:.0f}" y="{row * cell:.0f}" width="{cell:.0f}" '
                         f'height="{cell:.0f}" fill="transparent"><title>Zoom in here</title></rect></a>')
    parts.append("</g>")
    return "".join(parts)


def _zoomed_out(viewport) -> tuple:
    x0, y0, x1, y1 = viewport
    width, height = min(1.0, 2 * (x1 - x0)), min(1.0, 2 * (y1 - y0))
    left = min(max((x0 + x1) / 2 - width / 2, 0.0), 1.0 - width)
    top = min(max((y0 + y1) / 2 - height / 2, 0.0), 1.0 - height)
    return left, top, left + width, top + height


def _url(query, viewport) -> str:
    """This view's URL with another viewport (None: the whole map); the colour, view and highlight kept."""
    args = query.state()
    if viewport is not None and tuple(viewport) != (0.0, 0.0, 1.0, 1.0):
        args.update(zip(("x0", "y0", "x1", "y1"), (round(float(v), 4) for v in viewport)))
    return url_for("map.index", **args)


def _map_job_or_none():
    """The latest map job's status for an admin; None for others, and when the queue cannot say (the map is
    drawn all the same)."""
    try:
        return latest_map_job(services()) if admin_access() == "ok" else None
    except (QueueUnavailable, RedisError):
        return None


# -- admin: recompute


@bp.get("/map/layout")
@admin_required
def layout_status():
    return render_template("map/_admin.html", stored=_stored(), map_job=latest_map_job(services()))


@bp.post("/map/layout")
@admin_required
def recompute():
    if cross_site():
        abort(403, "cross-site request refused")
    if services().map_store is None:
        abort(400, f"the {services().index.name!r} index keeps no catalog map")
    enqueue_map(services())
    return render_template("map/_admin.html", stored=_stored(), map_job=latest_map_job(services())), 202


def _stored():
    return services().map_store.load() if services().map_store is not None else None
