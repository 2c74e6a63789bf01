"""Versions are grouped with their original and distinct pieces never are, on dsp and on a trained network."""

import numpy as np
import pytest
import scipy.signal

import audiogen
import trained_embedder
from audiofind.app import create_app, get_catalog

SR = 44100
EMBEDDERS = ["dsp", pytest.param("aisfx", marks=pytest.mark.skipif(
    trained_embedder.checkpoint_path() is None, reason="pip install --no-deps aisfx"))]


@pytest.fixture(params=EMBEDDERS)
def catalog(request, app_config):
    config = dict(app_config, EMBEDDER=request.param)
    return get_catalog(create_app(config, plugins=[trained_embedder.Plugin()]))


def album(n=4, seconds=40):
    """Pieces of one album: one band's timbre, each piece its own melody and tempo."""
    return [audiogen.music(seconds, SR, seed=seed, bpm=84 + 9 * seed, style=1) for seed in range(n)]


def test_true_versions_are_grouped_with_their_original(catalog, audio_dir):
    pieces = album()
    originals = []
    for i, piece in enumerate(pieces):
        originals.append(catalog.ingest(audiogen.write(audio_dir / f"piece{i}.flac", piece, SR)).track)
    source, original = pieces[2], originals[2]
    lowpass = scipy.signal.sosfilt(scipy.signal.butter(4, 5000, "low", fs=SR, output="sos"), source)
    made = {
        "re-encode.mp3": source,
        "cut-down.wav": source[int(7.3 * SR) : int(32.3 * SR)],  # not on a window boundary
        "quieter-lowpass.wav": (lowpass * 10 ** (-4 / 20)).astype(np.float32),
    }
    for name, signal in made.items():
        outcome = catalog.ingest(audiogen.write(audio_dir / name, signal, SR))
        assert outcome.version_of == original.track_id, name
        assert outcome.track.group_id == original.group_id


def test_distinct_pieces_of_one_album_are_not_grouped(catalog, audio_dir):
    for i, piece in enumerate(album(6)):
        outcome = catalog.ingest(audiogen.write(audio_dir / f"piece{i}.flac", piece, SR))
        assert outcome.version_of is None, f"piece{i}"
    assert len({t["group_id"] for t in catalog.list()}) == 6


def test_default_mode_finds_an_excerpt_and_where(app, audio_dir):
    """No mode given: a degraded 20 s excerpt finds its source first, placed near its true offset.

    dsp only: the aisfx network hears these synthetic pieces of one timbre as one sound (with noise, even
    segment search does not tell them apart); on real music its figures are in BENCHMARKS.md."""
    catalog = get_catalog(app)
    # Each piece moves through six 10 s sections, as real pieces change over time (for where the excerpt is).
    pieces = [np.concatenate([audiogen.music(10, SR, seed=10 * i + k, bpm=84 + 9 * i, style=1) for k in range(6)])
              for i in range(4)]
    ids = [catalog.ingest(audiogen.write(audio_dir / f"piece{i}.flac", p, SR)).track.track_id
           for i, p in enumerate(pieces)]
    rng = np.random.default_rng(0)
    for source, offset in ((1, 23.4), (3, 8.0)):
        clip = pieces[source][int(offset * SR) : int((offset + 20) * SR)]
        noisy = clip + rng.normal(0, 0.03 * np.std(clip), clip.shape).astype(np.float32)
        best = catalog.search_file(audiogen.write(audio_dir / f"excerpt{source}.mp3", noisy, SR), limit=1)[0]
        assert best["track_id"] == ids[source]
        assert abs(best["match_start"] - offset) <= 5.0
