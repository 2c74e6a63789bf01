"""The catalog map as server-rendered SVG (no JavaScript): one function, independent of routes.

``render`` draws the points of ``coords`` (catalog_map's unit-square positions) inside a viewport: each point
is an ``<a>`` to the caller's URL pattern, coloured by a category (album, tag) or a numeric band (BPM, energy),
with the caller's reference and results drawn on top. Beyond ``max_points`` in view, a density layer (track
counts per cell) is drawn under a stable subset of points that grows as one zooms in
(catalog_map.select_points), so a page stays small at 100,000 tracks (BENCHMARKS.md, "Catalog map").
"""

from html import escape
from typing import Optional, Sequence
from urllib.parse import quote

import numpy as np

from audiofind import catalog_map

# Distinguishable on white (Tableau 10 hues, widely used for categories) and a grey for "other".
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
OTHER = "#888888"
# Low to high for numeric bands (a sequential blue-to-red ramp).
BAND_COLOURS = ("#2c7bb6", "#00a6ca", "#00ccbc", "#90eb9d", "#f9d057", "#f29e2e", "#e76818", "#d7191c")
HIGHLIGHT = {"reference": ("#000000", 7.0), "result": ("#d62728", 5.0)}


def _colours(n, categories, values, bands):
    """(colour per point, legend [(label, colour)])."""
    if categories is not None:
        counts = {}
        for c in categories:
            counts[c] = counts.get(c, 0) + 1
        named = sorted(counts, key=lambda c: (-counts[c], str(c)))[: len(PALETTE)]
        colour_of = {c: PALETTE[i] for i, c in enumerate(named)}
        legend = [(str(c), colour_of[c]) for c in named]
        if len(counts) > len(named):
            legend.append(("other", OTHER))
        return [colour_of.get(c, OTHER) for c in categories], legend
    if values is not None:
        values = np.asarray(values, np.float64)
        if bands is None:
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
            bands = np.linspace(low, high, len(BAND_COLOURS) + 1)[1:-1]
        bands = list(bands)[: len(BAND_COLOURS) - 1]
        ramp = BAND_COLOURS[:: max(1, len(BAND_COLOURS) // (len(bands) + 1))][: len(bands) + 1]
        index = np.searchsorted(bands, values, side="right")
        colours = [ramp[i] if np.isfinite(v) else OTHER for i, v in zip(index, values)]
        edges = [None] + bands + [None]
        legend = []
        for i, colour in enumerate(ramp):
            low, high = edges[i], edges[i + 1]
            label = f"< {high:g}" if low is None else f">= {low:g}" if high is None else f"{low:g}-{high:g}"
            legend.append((label, colour))
        return colours, legend
    return [PALETTE[0]] * n, []


def render(coords: np.ndarray, ids: Sequence[str], *, viewport=(0.0, 0.0, 1.0, 1.0), url: str = "/tracks/{id}",
           categories: Optional[Sequence] = None, values: Optional[Sequence[float]] = None,
           bands: Optional[Sequence[float]] = None, titles: Optional[Sequence[str]] = None,
           highlight: Optional[dict] = None, width: int = 800, height: int = 800, max_points: int = 1000,
           density_cell: int = 16, seed: int = 0, underlay: str = "", marks: Sequence = (),
           background: Optional[np.ndarray] = None) -> str:
    """An ``<svg>`` of the map inside ``viewport`` = (x0, y0, x1, y1) in unit-square coordinates.

    ``ids``: one per point, put into ``url`` as ``{id}`` (URL-quoted) for each point's link.
    Colour by ``categories`` (one per point; the 10 commonest get colours, the rest grey) or by ``values``
    in ``bands`` (ascending edges; default 8 equal bands over the range). ``titles``: tooltip per point
    (default the id). ``highlight``: {id: "reference" | "result"}, drawn on top, always. Points beyond
    ``max_points`` in view: a density layer of ``density_cell``-pixel cells, and a stable subset of points.
    ``underlay``: the caller's SVG markup under the points (in pixels, e.g. links that zoom into a region).
    ``marks``: [(xy in unit-square coordinates, title)] drawn on top as the reference's mark, not links (a
    search's reference file is no catalog track).
    ``background``: the positions of every track, when ``coords`` holds only those the caller chose to draw
    (catalog_map.select_points: then only those need their metadata read); it is what is counted and what the
    density layer shows."""
    coords = np.asarray(coords, np.float32)
    x0, y0, x1, y1 = (float(v) for v in viewport)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"empty viewport {viewport!r}")
    highlight = highlight or {}
    colours, legend = _colours(len(coords), categories, values, bands)
    inside = catalog_map.in_viewport(coords, (x0, y0, x1, y1))
    crowd = coords if background is None else np.asarray(background, np.float32)
    crowd_inside = inside if background is None else catalog_map.in_viewport(crowd, (x0, y0, x1, y1))
    crowded = len(crowd_inside) > max_points
    shown = catalog_map.select_points(coords, (x0, y0, x1, y1), max_points, seed) if len(inside) > max_points \
        else inside
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="catalog-map" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" data-viewport="{x0:g} {y0:g} {x1:g} {y1:g}" '
             f'data-tracks="{len(crowd_inside)}" data-shown="{len(shown)}" role="img">',
             f'<title>Catalog map: {len(crowd_inside)} tracks in view</title>',
             f'<rect width="{width}" height="{height}" fill="#fafafa"/>', underlay]
    if crowded:
        columns, rows = max(1, width // density_cell), max(1, height // density_cell)
        counts = catalog_map.density_grid(crowd[crowd_inside], (x0, y0, x1, y1), (columns, rows))
        top = np.log1p(counts.max())
        cw, ch = width / columns, height / rows
        parts.append('<g class="density" fill="#4e79a7" shape-rendering="crispEdges">')
        for r, c in zip(*np.nonzero(counts)):
            opacity = 0.08 + 0.6 * np.log1p(counts[r, c]) / top
            parts.append(f'<rect x="{c * cw:.1f}" y="{r * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                         f'fill-opacity="{opacity:.2f}"/>')
        parts.append("</g>")
    radius = 2.5 if crowded else 4.0
    highlighted = [i for i, track in enumerate(ids) if track in highlight] if highlight else []
    parts.append('<g class="points" stroke="#ffffff" stroke-width="0.5">')
    marked = set(highlighted)
    for i in shown:
        if i in marked:
            continue
        parts.append(_point(coords[i], ids[i], titles[i] if titles else ids[i], url, colours[i], radius,
                            (x0, y0), (sx, sy)))
    parts.append("</g>")
    if highlighted:
        parts.append('<g class="highlighted" stroke="#111111" stroke-width="1.5">')  # apart from the palette's red
        # Results first, the reference last: on top.
        for i in sorted(highlighted, key=lambda i: highlight[ids[i]] == "reference"):
            colour, r = HIGHLIGHT.get(highlight[ids[i]], HIGHLIGHT["result"])
            parts.append(_point(coords[i], ids[i], titles[i] if titles else ids[i], url, colour, r, (x0, y0),
                                (sx, sy), css=highlight[ids[i]]))
        parts.append("</g>")
    if len(marks):
        colour, r = HIGHLIGHT["reference"]
        parts.append('<g class="marks" stroke="#ffffff" stroke-width="1.5">')
        for xy, title in marks:
            x, y = (xy[0] - x0) * sx, (xy[1] - y0) * sy
            parts.append(f'<circle class="reference" cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{colour}">'
                         f'<title>{escape(str(title))}</title></circle>')
        parts.append("</g>")
    if legend:
        parts.append('<g class="legend" font-family="sans-serif" font-size="11">')
        for k, (label, colour) in enumerate(legend):
            y = 14 + 15 * k
            parts.append(f'<circle cx="12" cy="{y - 4}" r="4" fill="{colour}"/>'
                         f'<text x="20" y="{y}">{escape(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _point(xy, track, title, url, colour, radius, origin, scale, css=None) -> str:
    x, y = (xy[0] - origin[0]) * scale[0], (xy[1] - origin[1]) * scale[1]
    href = escape(url.format(id=quote(str(track), safe="")))
    css = f' class="{css}"' if css else ""  # plain points are styled through their group
    return (f'<a href="{href}"{css}><circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}" fill="{colour}">'
            f'<title>{escape(str(title))}</title></circle></a>')
