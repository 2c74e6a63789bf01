"""The catalog map kept with the catalog: the map job computes and stores it on both backends, new tracks are
placed on it without recomputing, and a catalog without a map says so."""

import numpy as np
import pytest
from test_atlas import empty_index

from audiofind import map_store
from audiofind.index.atlas import AtlasIndex
from audiofind.index.base import Track
from audiofind.jobs.catalog_map import compute_map

DIM, WDIM = 32, 8
IDENTITY = {"name": "test", "version": "1", "dim": DIM, "window_dim": WDIM}
GROUPS = 4


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


CENTRES = unit(np.random.default_rng(0).standard_normal((GROUPS, DIM)))


def vector_of(i, rng):
    return unit(CENTRES[i % GROUPS] + 0.15 * rng.standard_normal(DIM))


def add(index, i, vector):
    track = Track(track_id=f"t{i:03d}", file=f"song{i:03d}.mp3", content_hash=f"h{i}", duration=60.0,
                  embedder="test:1", created_at=1000.0 + i, album=f"album{i % GROUPS}")
    window = unit(np.random.default_rng(i).standard_normal((1, WDIM)))
    index.add(track, vector, [[0.0, 10.0]], window)


@pytest.fixture(params=["local", "atlas"])
def index(request, tmp_path, monkeypatch):
    index = empty_index(request.param, tmp_path, monkeypatch, IDENTITY)
    rng = np.random.default_rng(1)
    for i in range(80):
        add(index, i, vector_of(i, rng))
    if isinstance(index, AtlasIndex):
        index.wait_searchable()
    yield index
    index.close()


def test_a_catalog_has_no_map_until_the_job_computes_one(index):
    store = map_store.for_index(index)
    assert store.load() is None
    assert map_store.place_track(store, index, "t001") is False
    store.add_points(["t001"], [[0.5, 0.5]], [[0.5, 0.5]])
    assert store.load() is None


def test_the_map_job_stores_every_track_and_keeps_alike_tracks_together(index):
    store = map_store.for_index(index)
    computed = compute_map(index, store, "tsne")
    stored = store.load()
    assert sorted(stored.track_ids) == [f"t{i:03d}" for i in range(80)]
    assert stored.info()["tracks"] == 80 and stored.placed == 0 and stored.method == "tsne"
    assert stored.layout.shape == stored.coarse.shape == (80, 2)
    assert 0 <= stored.layout.min() and stored.layout.max() <= 1
    row = {t: i for i, t in enumerate(computed.track_ids)}
    # each track's nearest on the map is of its own group
    for t in stored.track_ids:
        xy = stored.layout[stored.row(t)]
        distances = np.linalg.norm(stored.layout - xy, axis=1)
        distances[stored.row(t)] = np.inf
        nearest = stored.track_ids[int(np.argmin(distances))]
        assert int(nearest[1:]) % GROUPS == int(t[1:]) % GROUPS
    assert np.allclose(stored.layout, computed.layout[[row[t] for t in stored.track_ids]])


def test_a_new_track_is_placed_among_its_group_without_recomputing(index):
    store = map_store.for_index(index)
    compute_map(index, store, "pca")
    before = store.load()
    add(index, 500, vector_of(2, np.random.default_rng(9)))  # a group-2 track
    if isinstance(index, AtlasIndex):
        index.wait_searchable()
    assert map_store.place_track(store, index, "t500")
    after = store.load()
    assert len(after) == 81 and after.placed == 1 and after.computed_at == before.computed_at
    for t in before.track_ids:  # nobody else moved
        assert np.allclose(after.layout[after.row(t)], before.layout[before.row(t)])
    group = [before.row(t) for t in before.track_ids if int(t[1:]) % GROUPS == 2]
    others = [before.row(t) for t in before.track_ids if int(t[1:]) % GROUPS != 2]
    xy = after.layout[after.row("t500")]
    assert np.linalg.norm(before.layout[group] - xy, axis=1).mean() < np.linalg.norm(
        before.layout[others] - xy, axis=1).mean() / 2
    # placing it again moves it, rather than adding it twice
    assert map_store.place_track(store, index, "t500") and len(store.load()) == 81


def test_recomputing_replaces_the_map_and_takes_the_placed_tracks_in(index):
    store = map_store.for_index(index)
    compute_map(index, store, "pca")
    add(index, 600, vector_of(1, np.random.default_rng(3)))
    if isinstance(index, AtlasIndex):
        index.wait_searchable()
    map_store.place_track(store, index, "t600")
    compute_map(index, store, "pca")
    assert store.load().placed == 0 and len(store.load()) == 81
