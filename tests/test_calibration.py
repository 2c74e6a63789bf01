"""Calibration: once the catalog has learned how noise and codecs move its sound, noisy excerpts are found."""

import numpy as np
import pytest
from click.testing import CliRunner

import audiogen
import trained_embedder
from audiofind import calibration
from audiofind.app import create_app, get_catalog, services
from audiofind.cli import cli
from audiofind.jobs.queue import CALIBRATION_JOB_KEY, enqueue_ingest, job_status
from audiofind.jobs.worker import run_worker
from test_jobs import piece, stored

SR = 32000


def noisy_compressed(clip, rng):
    """Hiss at 25 dB SNR through a low-bitrate MP3: not one of calibration.DEGRADATIONS."""
    return calibration._mp3(calibration._noise(clip, 25, "white", rng), SR, 0.85)


@pytest.mark.skipif(trained_embedder.checkpoint_path() is None, reason="pip install --no-deps aisfx")
def test_noisy_excerpts_are_found_and_placed_after_calibration(tmp_path, monkeypatch):
    """The trained aisfx network hears hiss and a codec louder than the music: six generated pieces, twelve
    noisy compressed 20 s excerpts; calibrating finds and places more of them, with nothing else changed."""
    monkeypatch.setattr(calibration, "CLIPS_PER_TRACK", 1)
    app = create_app({"DATA_DIR": str(tmp_path / "instance"), "EMBEDDER": "aisfx"}, plugins=[trained_embedder.Plugin()])
    catalog = get_catalog(app)
    rng = np.random.default_rng(0)
    queries = []
    for seed in range(6):
        signal = audiogen.music(40, SR, seed=seed)
        path = tmp_path / f"piece{seed}.wav"
        audiogen.write(path, signal, SR, "WAV")
        track_id = catalog.ingest(path).track.track_id
        for _ in range(2):
            offset = float(rng.uniform(0, 20))
            clip = signal[int(offset * SR) : int((offset + 20) * SR)]
            query = tmp_path / f"query{len(queries)}.wav"
            audiogen.write(query, noisy_compressed(clip, rng), SR, "WAV")
            queries.append((query, track_id, offset))

    def found_and_placed():
        best = [catalog.search_file(query, limit=1)[0] for query, _, _ in queries]
        found = [b["track_id"] == track_id for b, (_, track_id, _) in zip(best, queries)]
        placed = [f and abs(b["match_start"] - offset) <= 5 for f, b, (_, _, offset) in zip(found, best, queries)]
        return sum(found), sum(placed)

    found_before, placed_before = found_and_placed()
    assert catalog.nuisance_directions() is None
    learned = calibration.calibrate(catalog, np.random.default_rng(1))
    assert learned.tracks == 6 and learned.directions.shape == (calibration.DIRECTIONS, 512)
    found_after, placed_after = found_and_placed()
    assert found_after >= max(10, found_before + 2), (found_before, found_after)
    assert placed_after >= placed_before + 3, (placed_before, placed_after)


@pytest.fixture
def dsp_catalog(tmp_path):
    return get_catalog(create_app({"DATA_DIR": str(tmp_path / "instance"), "EMBEDDER": "dsp"}))


def test_a_calibration_is_kept_with_the_catalog_for_its_embedder(dsp_catalog, tmp_path, monkeypatch):
    monkeypatch.setattr(calibration, "MIN_TRACKS", 2)
    monkeypatch.setattr(calibration, "CLIPS_PER_TRACK", 1)
    with pytest.raises(ValueError, match="empty"):
        calibration.calibrate(dsp_catalog)
    for seed in range(2):
        path = tmp_path / f"p{seed}.wav"
        audiogen.write(path, audiogen.music(25, SR, seed=seed), SR, "WAV")
        dsp_catalog.ingest(path)
    assert calibration.needs_calibration(dsp_catalog)
    learned = calibration.calibrate(dsp_catalog)
    assert not calibration.needs_calibration(dsp_catalog)

    reopened = get_catalog(create_app({"DATA_DIR": dsp_catalog.config["DATA_DIR"], "EMBEDDER": "dsp"}))
    assert np.allclose(reopened.nuisance_directions(), learned.directions)  # another process reads it
    assert np.allclose(np.linalg.norm(learned.directions, axis=1), 1.0, atol=1e-4)

    # Learned for another embedder (the catalog was re-indexed since): ignored, and needed again.
    store = calibration.for_index(dsp_catalog.index)
    store.save(calibration.Calibration(learned.directions, {"name": "other"}, 2, 0.0, 0.0))
    assert reopened.nuisance_directions() is None and calibration.needs_calibration(reopened)


def test_the_atlas_store_keeps_it_in_meta():
    from test_atlas import FakeDatabase

    db = FakeDatabase()
    store = calibration.AtlasCalibrationStore(db)
    assert store.load() is None
    directions = np.eye(1, 8, dtype=np.float32)
    store.save(calibration.Calibration(directions, {"name": "dsp", "version": "2"}, 12, 5.0, 1.5))
    loaded = store.load()
    assert np.array_equal(loaded.directions, directions) and loaded.embedder == {"name": "dsp", "version": "2"}
    assert (loaded.tracks, loaded.computed_at, loaded.seconds) == (12, 5.0, 1.5)


def test_cli_ingest_calibrates_once_the_catalog_is_large_enough(tmp_path, monkeypatch):
    monkeypatch.setattr(calibration, "MIN_TRACKS", 3)
    monkeypatch.setattr(calibration, "CLIPS_PER_TRACK", 1)
    env = {"AUDIOFIND_EMBEDDER": "dsp", "AUDIOFIND_SECRET_KEY": "test"}
    invoke = lambda *args: CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "instance"), *args], env=env)
    empty = invoke("calibrate")
    assert empty.exit_code == 1 and "empty" in empty.output
    folder = tmp_path / "music"
    folder.mkdir()
    for seed in range(2):
        audiogen.write(folder / f"p{seed}.wav", audiogen.music(25, SR, seed=seed), SR, "WAV")
    first = invoke("ingest", str(folder))
    assert first.exit_code == 0 and "calibrated" not in first.output  # two tracks: not yet
    audiogen.write(folder / "p2.wav", audiogen.music(25, SR, seed=2), SR, "WAV")
    second = invoke("ingest", str(folder))
    assert second.exit_code == 0 and "calibrated excerpt search on 3 tracks" in second.output, second.output
    again = invoke("calibrate")
    assert again.exit_code == 0 and "calibrated excerpt search on 3 tracks" in again.output


@pytest.mark.usefixtures("empty_queue")
def test_the_ingest_job_enqueues_one_calibration(app, audio_dir, monkeypatch):
    monkeypatch.setattr(calibration, "MIN_TRACKS", 2)
    monkeypatch.setattr(calibration, "CLIPS_PER_TRACK", 1)
    keys = [stored(app, piece(audio_dir, f"p{seed}.wav", seconds=25, seed=seed)) for seed in range(3)]
    for i, key in enumerate(keys):
        enqueue_ingest(services(app), key, f"p{i}.wav")
    run_worker(services(app), burst=True)  # the three ingests, then the calibration they enqueued
    job_id = services(app).redis.get(CALIBRATION_JOB_KEY).decode()
    info = job_status(services(app), job_id, kind="calibration")
    assert info["status"] == "finished" and info["result"]["tracks"] == 3, info
    assert get_catalog(app).nuisance_directions() is not None


@pytest.mark.usefixtures("empty_queue")
def test_admin_shows_the_calibration_and_runs_it_again(app, client, audio_dir, monkeypatch):
    from test_web import text

    monkeypatch.setattr(calibration, "CLIPS_PER_TRACK", 1)
    assert "Not calibrated yet" in text(client.get("/admin/calibration"))
    assert "/admin/calibration" in text(client.get("/admin/"))
    for seed in range(2):
        get_catalog(app).ingest(piece(audio_dir, f"p{seed}.wav", seconds=25, seed=seed))
    started = client.post("/admin/calibration")
    assert started.status_code == 202 and "Calibrating" in text(started)
    run_worker(services(app), burst=True)
    assert "Calibrated on 2 tracks" in text(client.get("/admin/calibration"))
    app.config["ADMIN_TOKEN"] = "secret"  # from now on only a logged-in admin
    refused = client.post("/admin/calibration")
    assert refused.status_code == 302 and "/admin/login" in refused.headers["Location"]
