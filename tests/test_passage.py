"""An excerpt's match placed from the audio (audiofind/passage.py): to a fraction of a second, through the
catalog, the search job and a refined search, and never failing a search when the track's audio is gone."""

import logging
import re

import numpy as np
import pytest

import audiogen
from audiofind import passage
from audiofind.app import get_catalog, services
from audiofind.jobs.worker import run_worker

SR = 22050
HX = {"HX-Request": "true"}


def piece(seed, seconds=60):
    """A piece that moves through 10 s sections, as real pieces change over time."""
    return np.concatenate([audiogen.music(10, SR, seed=10 * seed + k, bpm=84 + 9 * seed, style=1)
                           for k in range(seconds // 10)])


def noisy_excerpt(path, signal, offset, seconds=20.0, seed=0):
    clip = signal[int(offset * SR) : int((offset + seconds) * SR)]
    noise = np.random.default_rng(seed).normal(0, 0.03 * np.std(clip), clip.shape).astype(np.float32)
    return audiogen.write(path, clip + noise, SR, "MP3")


def test_a_noisy_compressed_excerpt_is_located_to_a_fraction_of_a_second(tmp_path):
    source = piece(0)
    track = passage.signature(audiogen.write(tmp_path / "piece.flac", source, SR))
    for offset in (0.0, 17.3, 38.9):
        query = passage.signature(noisy_excerpt(tmp_path / f"q{offset}.mp3", source, offset))
        assert passage.locate(query, track) == pytest.approx(offset, abs=0.1)


def test_another_piece_or_a_longer_query_is_not_located(tmp_path):
    track = passage.signature(audiogen.write(tmp_path / "piece.flac", piece(0), SR))
    other = passage.signature(noisy_excerpt(tmp_path / "other.mp3", piece(1), 12.0))
    assert passage.locate(other, track) is None
    assert passage.locate(track, track[: len(track) // 2]) is None


@pytest.fixture
def pieces(app, audio_dir):
    catalog = get_catalog(app)
    signals = [piece(i) for i in range(3)]
    ids = [catalog.ingest(audiogen.write(audio_dir / f"piece{i}.flac", s, SR)).track.track_id
           for i, s in enumerate(signals)]
    return catalog, signals, ids


def test_search_places_an_excerpt_where_it_was_cut_from(pieces, audio_dir):
    catalog, signals, ids = pieces
    best = catalog.search_file(noisy_excerpt(audio_dir / "q.mp3", signals[1], 23.4), limit=2)
    assert best[0]["track_id"] == ids[1]
    assert best[0]["match_start"] == pytest.approx(23.4, abs=0.1)
    assert best[0]["match_end"] == pytest.approx(43.4, abs=0.1)


def test_without_the_tracks_audio_the_match_is_placed_from_its_windows(pieces, audio_dir, caplog):
    catalog, signals, ids = pieces
    catalog.storage.delete(catalog.index.get(ids[1]).storage_key)
    with caplog.at_level(logging.WARNING, logger="audiofind.catalog"):
        best = catalog.search_file(noisy_excerpt(audio_dir / "q.mp3", signals[1], 23.4), limit=1)[0]
    assert best["track_id"] == ids[1] and abs(best["match_start"] - 23.4) <= 5.0
    assert "piece1.flac" in caplog.text


@pytest.mark.usefixtures("empty_queue")
def test_the_search_page_and_its_refining_keep_the_exact_passage(app, client, pieces, audio_dir):
    catalog, signals, ids = pieces
    reference = noisy_excerpt(audio_dir / "q.mp3", signals[2], 31.7)
    data = reference.read_bytes()
    target = client.post("/api/v1/uploads", json={"filename": reference.name, "content_type": "audio/mpeg",
                                                  "size": len(data)}).json
    client.open(target["upload_url"], method=target["method"], headers=target["headers"], data=data)
    started = client.post("/api/v1/searches", json={"key": target["key"], "limit": 3})
    run_worker(services(app), burst=True)
    best = client.get(started.json["status_url"]).json["results"][0]
    assert best["track_id"] == ids[2] and best["match_start"] == pytest.approx(31.7, abs=0.1)

    job_id = started.json["status_url"].rstrip("/").rsplit("/", 1)[1]
    refined = client.get(f"/searches/{job_id}/refine?like={ids[2]}", headers=HX).get_data(as_text=True)
    assert re.search(r"#t=31\.[67]", refined), "the refined results' player starts at the passage"


def test_digital_silence_matches_nothing(tmp_path):
    """A track with a silent gap: the excerpt of its music is found where it is, never in the silence, and a
    silent excerpt is located nowhere."""
    music = piece(0, seconds=30)
    gap = np.zeros(30 * SR, np.float32)
    track = passage.signature(audiogen.write(tmp_path / "gap.flac", np.concatenate([music, gap, music[::-1]]), SR))
    query = passage.signature(noisy_excerpt(tmp_path / "q.mp3", music, 8.0))
    assert passage.locate(query, track) == pytest.approx(8.0, abs=0.1)
    silent = passage.signature(audiogen.write(tmp_path / "silent.wav", np.zeros(5 * SR, np.float32), SR, "WAV"))
    assert passage.locate(silent, track) is None
    frames_per_second = passage.SAMPLE_RATE / passage.HOP
    in_the_gap = passage.correlation(query, track)[int(31 * frames_per_second) : int(39 * frames_per_second)]
    assert len(in_the_gap) > 300 and np.all(in_the_gap == 0)
