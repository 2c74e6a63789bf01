"""Refining a search: "more like these, less like that", "sounds like these", and `audiofind similar A B --unlike C`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import audiogen
from audiofind.app import create_app, get_catalog
from audiofind.cli import cli
from audiofind.refine import Weights

SR = 32000
STYLES = 3
PIECES = 4


@pytest.fixture(scope="module")
def library_app(tmp_path_factory, redis_url):
    folder = tmp_path_factory.mktemp("refine")
    return create_app({"TESTING": True, "DATA_DIR": str(folder / "instance"), "EMBEDDER": "dsp",
                       "SECRET_KEY": "test", "REDIS_URL": redis_url})


@pytest.fixture(scope="module")
def library(library_app, tmp_path_factory):
    """Three "albums" of four 20 s pieces each: pieces of one album share their timbre. (catalog, {track_id: album})."""
    catalog = get_catalog(library_app)
    audio_dir = tmp_path_factory.mktemp("refine-audio")
    album_of = {}
    for style in range(STYLES):
        for piece in range(PIECES):
            seed = 10 * style + piece
            path = audio_dir / f"album{style}-piece{piece}.wav"
            audiogen.write(path, audiogen.music(20, SR, seed=seed, bpm=80 + 12 * style, style=style), SR, "WAV")
            track = catalog.ingest(path, metadata={"album": f"album{style}"}).track
            album_of[track.track_id] = track.album
    return catalog, album_of


def ids(results):
    return [r["track_id"] for r in results]


def test_liking_two_tracks_brings_them_and_their_album_up(library):
    catalog, album_of = library
    start = next(iter(album_of))
    limit = len(album_of) - 1
    for mode in ("track", "segment"):
        before = ids(catalog.similar(start, limit=limit, mode=mode))
        liked = before[-2:]  # the two results least like the reference
        after = ids(catalog.similar(start, like=liked, limit=limit, mode=mode))
        assert sum(after.index(t) for t in liked) < sum(before.index(t) for t in liked), mode
        assert start not in after and set(liked) <= set(after)  # liked tracks stay in the list


def test_a_track_marked_less_like_this_leaves_with_its_nearest_neighbours(library):
    catalog, album_of = library
    start = next(iter(album_of))
    before = catalog.similar(start, limit=5)
    unliked = before[0]["track_id"]
    neighbours = ids(catalog.similar(unliked, limit=len(album_of), mode="track"))
    nearest = [t for t in neighbours if t != start][:3]

    after = catalog.similar(start, unlike=[unliked], limit=5)
    assert unliked not in ids(after)
    assert not set(nearest) & set(ids(after))
    assert len(after) == 5 and start not in ids(after)

    # Rocchio alone (no neighbours left out) only moves the unliked track's neighbours down.
    shifted = catalog.similar(start, unlike=[unliked], limit=len(album_of), weights=Weights(neighbours=0))
    assert unliked not in ids(shifted) and set(nearest) <= set(ids(shifted))


def test_a_liked_track_is_never_left_out_as_an_unliked_ones_neighbour(library):
    catalog, album_of = library
    start, *others = list(album_of)
    unliked = others[0]
    nearest = [t for t in ids(catalog.similar(unliked, limit=4, mode="track")) if t != start][0]
    results = catalog.similar(start, like=[nearest], unlike=[unliked], limit=len(album_of))
    assert nearest in ids(results) and unliked not in ids(results)


def test_sounds_like_several_tracks_at_once(library):
    catalog, album_of = library
    first, second, *others = list(album_of)
    vectors = {t: catalog.index.track_vector(t) for t in album_of}
    results = ids(catalog.sounds_like([first, second], limit=4, mode="track"))
    assert first not in results and second not in results
    # like both alike: ranked by the sum of the two tracks' similarities, whichever comes first
    assert results[0] == max(others, key=lambda t: float(vectors[t] @ (vectors[first] + vectors[second])))
    assert results == ids(catalog.sounds_like([second, first], limit=4, mode="track"))
    assert ids(catalog.sounds_like([first], limit=4)) == ids(catalog.similar(first, limit=4))


def test_an_uploaded_reference_with_liked_tracks(library, audio_dir):
    catalog, album_of = library
    reference = audio_dir / "reference.wav"
    audiogen.write(reference, audiogen.music(20, SR, seed=99, style=0), SR, "WAV")
    liked = [t for t, album in album_of.items() if album == "album2"][:2]
    plain = catalog.search_file(reference, limit=len(album_of))
    refined = catalog.search_file(reference, like=liked, limit=len(album_of))
    rank = {t: i for i, t in enumerate(ids(refined))}
    plain_rank = {t: i for i, t in enumerate(ids(plain))}
    assert sum(rank[t] for t in liked) < sum(plain_rank[t] for t in liked)
    assert all(r["match_start"] is not None for r in refined)  # still located for the reference


def test_an_unknown_track_id_is_named(library):
    catalog, album_of = library
    start = next(iter(album_of))
    with pytest.raises(KeyError, match="nosuchtrack"):
        catalog.similar(start, like=["nosuchtrack"])
    with pytest.raises(KeyError, match="nosuchtrack"):
        catalog.similar(start, unlike=["nosuchtrack"])


def test_cli_similar_to_several_tracks_and_unlike(library, library_app):
    catalog, album_of = library
    first, second, third, *_ = list(album_of)

    def invoke(*args):
        return CliRunner().invoke(cli, ["--data-dir", library_app.config["DATA_DIR"], *args],
                                  env={"AUDIOFIND_EMBEDDER": "dsp", "AUDIOFIND_SECRET_KEY": "test"})

    result = invoke("similar", first, second, "--unlike", third, "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    found = [hit["track_id"] for hit in json.loads(result.stdout)]
    assert found == ids(catalog.sounds_like([first, second], unlike=[third], limit=5))
    assert not {first, second, third} & set(found)

    missing = invoke("similar", first, "--unlike", "nosuchtrack")
    assert missing.exit_code == 1 and "nosuchtrack" in missing.output
    assert invoke("similar").exit_code == 2


def test_refined_track_vector_is_the_weighted_mean(library):
    """A refined track search is a plain one with the reference moved: plus the liked mean, minus half the
    unliked's, re-normalised."""
    catalog, album_of = library
    start, liked, unliked, *rest = list(album_of)
    index = catalog.index
    vectors = {t: index.track_vector(t) for t in album_of}
    options = dict(mode="track", limit=len(album_of), collapse_versions=False)
    results = catalog.similar(start, like=[liked], unlike=[unliked], weights=Weights(like=1.0, unlike=0.5, neighbours=0),
                              **options)
    moved = vectors[start] + vectors[liked] - 0.5 * vectors[unliked]
    windows, window_vectors = index.segments(start)
    plain = catalog.search_embedding(moved / np.linalg.norm(moved), window_vectors, windows, **options)
    assert ids(results) == [t for t in ids(plain) if t not in (start, unliked)]
    assert np.isclose(np.linalg.norm(vectors[start]), 1.0, atol=1e-3)
