"""The catalog map: layouts that keep sound-alike tracks together, placement of new tracks, what a view draws,
and its SVG."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from audiofind import catalog_map, map_svg
from audiofind.embedders.base import l2_normalise

SVG = "{http://www.w3.org/2000/svg}"


def clustered(n=240, clusters=6, dim=64, seed=0):
    """Unit vectors in ``clusters`` tight groups, and each one's group."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % clusters
    centres = rng.standard_normal((clusters, dim))
    return l2_normalise(centres[labels] + 0.25 * rng.standard_normal((n, dim))), labels


def same_group_share(coords, labels, k=5):
    """Of each point's k nearest on the map, the share in its own group."""
    distances = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_a_layout_keeps_groups_of_alike_tracks_together_inside_the_unit_square(method):
    vectors, labels = clustered()
    coords = catalog_map.fit_layout(vectors, method)
    assert coords.shape == (len(vectors), 2) and coords.dtype == np.float32
    assert coords.min() >= 0 and coords.max() <= 1
    assert same_group_share(coords, labels) > 0.95


def test_neighbour_preservation_is_one_for_a_faithful_map_and_near_chance_for_a_random_one():
    rng = np.random.default_rng(1)
    flat = rng.uniform(size=(300, 2))
    vectors = l2_normalise(np.hstack([flat, np.ones((300, 1)) * 20]))  # nearly flat: neighbours as in 2-D
    assert catalog_map.neighbour_preservation(vectors, flat) > 0.9
    assert catalog_map.neighbour_preservation(vectors, rng.uniform(size=(300, 2))) < 0.15


def test_tsne_keeps_more_neighbours_than_the_linear_view_on_curved_data():
    vectors, _ = clustered(n=300, clusters=10, dim=128, seed=2)
    linear = catalog_map.neighbour_preservation(vectors, catalog_map.fit_layout(vectors, "pca"))
    tsne = catalog_map.neighbour_preservation(vectors, catalog_map.fit_layout(vectors, "tsne"))
    assert tsne > linear


def test_a_few_tracks_get_the_linear_view_and_an_unknown_method_is_refused():
    vectors, _ = clustered(n=12)
    assert catalog_map.fit_layout(vectors, "tsne").shape == (12, 2)
    assert catalog_map.fit_layout(vectors[:1], "umap").tolist() == [[0.5, 0.5]]
    with pytest.raises(ValueError, match="unknown map method"):
        catalog_map.fit_layout(vectors, "mds")


def test_new_tracks_are_placed_among_the_tracks_they_sound_like_without_moving_the_map():
    vectors, labels = clustered(n=300)
    old, new = np.arange(270), np.arange(270, 300)
    coords = catalog_map.fit_layout(vectors[old], "pca")
    before = coords.copy()
    placed = catalog_map.place(vectors[new], vectors[old], coords)
    np.testing.assert_array_equal(coords, before)
    for point, label in zip(placed, labels[new]):
        nearest = np.argsort(((coords - point) ** 2).sum(1))[:5]
        assert (labels[old][nearest] == label).mean() >= 0.8
    copy = catalog_map.place(vectors[old][:1], vectors[old], coords)
    np.testing.assert_allclose(copy[0], coords[0], atol=1e-6)  # a copy of a track lands on it


def test_zooming_in_only_adds_points_and_the_density_counts_every_track():
    rng = np.random.default_rng(3)
    coords = rng.uniform(size=(20000, 2)).astype(np.float32)
    whole = set(catalog_map.select_points(coords, (0, 0, 1, 1), 500))
    zoomed = catalog_map.select_points(coords, (0.25, 0.25, 0.5, 0.5), 500)
    assert len(whole) == 500 and len(zoomed) == 500
    in_zoom = {i for i in whole if 0.25 <= coords[i, 0] <= 0.5 and 0.25 <= coords[i, 1] <= 0.5}
    assert in_zoom <= set(zoomed)
    grid = catalog_map.density_grid(coords, (0, 0, 1, 1), (40, 30))
    assert grid.shape == (30, 40) and grid.sum() == 20000


def _parse(svg):
    return ET.fromstring(svg)


def test_the_svg_links_every_point_and_draws_the_reference_and_results_on_top():
    vectors, labels = clustered(n=60)
    coords = catalog_map.fit_layout(vectors, "pca")
    ids = [f"track <{i}>" for i in range(60)]
    svg = map_svg.render(coords, ids, categories=[f"album {x}" for x in labels], url="/tracks/{id}",
                         highlight={ids[3]: "reference", ids[4]: "result"})
    root = _parse(svg)
    links = root.iter(f"{SVG}a")
    hrefs = [a.get("href") for a in links]
    assert len(hrefs) == 60 and "/tracks/track%20%3C3%3E" in hrefs
    highlighted = root.find(f"{SVG}g[@class='highlighted']")
    assert [a.get("class") for a in highlighted] == ["result", "reference"]
    legend = [t.text for t in root.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")]
    assert sorted(legend) == [f"album {i}" for i in range(6)]


def test_a_large_map_draws_density_under_a_bounded_number_of_points_and_a_zoom_shows_its_region():
    rng = np.random.default_rng(4)
    coords = rng.uniform(size=(30000, 2)).astype(np.float32)
    ids = [str(i) for i in range(30000)]
    whole = _parse(map_svg.render(coords, ids, values=coords[:, 0] * 200, max_points=800, highlight={"7": "reference"}))
    assert whole.find(f"{SVG}g[@class='density']") is not None
    assert len(list(whole.iter(f"{SVG}a"))) <= 801
    assert whole.find(f".//{SVG}a[@href='/tracks/7']") is not None  # the reference, drawn whatever the sample
    zoom = _parse(map_svg.render(coords, ids, viewport=(0.1, 0.1, 0.12, 0.12), max_points=800))
    inside = catalog_map.in_viewport(coords, (0.1, 0.1, 0.12, 0.12))
    assert zoom.find(f"{SVG}g[@class='density']") is None
    assert len(list(zoom.iter(f"{SVG}a"))) == len(inside) > 0
    for circle in zoom.iter(f"{SVG}circle"):
        if circle.get("r") != "4":
            continue
        assert 0 <= float(circle.get("cx")) <= 800 and 0 <= float(circle.get("cy")) <= 800


def test_numeric_bands_colour_low_and_high_values_differently():
    coords = np.array([[0.2, 0.2], [0.8, 0.8]], np.float32)
    svg = map_svg.render(coords, ["slow", "fast"], values=[70, 170], bands=[90, 120, 150])
    fills = {c.find(f"{SVG}title").text: c.get("fill") for c in _parse(svg).iter(f"{SVG}circle")
             if c.find(f"{SVG}title") is not None}
    assert fills["slow"] != fills["fast"]
    with pytest.raises(ValueError):
        map_svg.render(coords, ["a", "b"], viewport=(0.5, 0, 0.5, 1))
