"""Mutual proximity in track ranking: a track close to every track stops topping everyone's "more like this"."""

import numpy as np
import pytest

from audiofind import proximity
from audiofind.app import create_app, get_catalog
from audiofind.index.base import Filters
from test_index import make_track, windows_for

DIM = 64


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def catalog(tmp_path):
    catalog = get_catalog(create_app({"DATA_DIR": str(tmp_path / "instance"), "EMBEDDER": "dsp"}))
    catalog.index.set_embedder_identity({"name": "test", "version": "1", "dim": DIM, "window_dim": DIM})
    return catalog


def add(catalog, i, vector, album):
    catalog.index.add(make_track(i, album=album), vector.astype(np.float32), windows_for(1), vector[None].astype(np.float32))
    return make_track(i).track_id


def test_a_hub_no_longer_tops_every_list(catalog):
    """Two groups of eight tracks and a 'hub' at their centroid, as similar to every track as their own group
    mates are: by dot product it is among the three nearest of most tracks; by mutual proximity of few."""
    rng = np.random.default_rng(0)
    members = [unit(np.eye(DIM)[group] + 1.2 * rng.standard_normal(DIM) / np.sqrt(DIM)) for group in (0, 1) for _ in range(8)]
    album = {add(catalog, i, v, f"group {i // 8}"): f"group {i // 8}" for i, v in enumerate(members)}
    hub = add(catalog, 99, unit(np.mean(members, axis=0)), "hub")

    by_dot = by_proximity = 0
    same_group = []
    for track_id in album:
        nearest = catalog.index.search(catalog.index.track_vector(track_id), 3, Filters(exclude_track_ids=[track_id]))
        by_dot += hub in [hit.track_id for hit in nearest]
        results = catalog.similar(track_id, limit=3)
        by_proximity += hub in [r["track_id"] for r in results]
        same_group.extend(r["album"] == album[track_id] for r in results)
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        assert all(0 <= r["score"] <= 1 for r in results)
    assert by_dot >= 10 and by_proximity <= 4, (by_dot, by_proximity)
    assert np.mean(same_group) >= 0.9


def test_the_sample_follows_the_catalog(catalog, monkeypatch):
    rng = np.random.default_rng(1)
    for i in range(3):
        add(catalog, i, unit(rng.standard_normal(DIM)), "a")
    assert len(catalog.proximity.sample()) == 3
    add(catalog, 3, unit(rng.standard_normal(DIM)), "a")
    assert len(catalog.proximity.sample()) == 4  # a small catalog: all of it, drawn again when it changes

    now = [0.0]
    monkeypatch.setattr(proximity, "SAMPLE_SIZE", 3)
    sampled = proximity.Proximity(catalog.index, clock=lambda: now[0])
    first = sampled.sample()
    assert len(first) == 3
    add(catalog, 4, unit(rng.standard_normal(DIM)), "a")
    assert sampled.sample() is first  # a large catalog's sample is kept a while ...
    now[0] += proximity.RESAMPLE_SECONDS
    assert sampled.sample() is not first  # ... then drawn again
