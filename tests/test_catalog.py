import shutil

import numpy as np
import pytest

import audiogen
from audiofind import hookimpl
from audiofind.app import create_app, get_catalog
from audiofind.audio import AudioError
from audiofind.embedders.dsp import DspEmbedder
from audiofind.index.base import EmbedderMismatch, Filters

SR = 32000


@pytest.fixture
def catalog(app):
    return get_catalog(app)


@pytest.fixture
def tracks(audio_dir):
    """Four distinct 30-second pieces as WAV files."""
    paths = []
    for seed in range(4):
        path = audio_dir / f"piece{seed}.wav"
        audiogen.write(path, audiogen.music(30, SR, seed=seed, bpm=90 + 10 * seed), SR, "WAV")
        paths.append(path)
    return paths


def test_ingest_measures_and_stores_the_track(catalog, tracks):
    outcome = catalog.ingest(tracks[0])
    assert outcome.status == "added"
    track = catalog.get(outcome.track.track_id)
    assert track["file"] == "piece0.wav"
    assert track["duration"] == pytest.approx(30, abs=0.1)
    assert track["bpm"] == pytest.approx(90, rel=0.03)
    assert len(track["envelope"]) > 100 and 0 <= min(track["envelope"]) <= max(track["envelope"]) <= 1
    assert catalog.storage.exists(track["storage_key"])
    assert "piece0" not in track["storage_key"]  # keys are ours, never the user's file name


def test_the_same_audio_twice_is_one_track(catalog, tracks, tmp_path):
    first = catalog.ingest(tracks[0])
    copy = tmp_path / "renamed copy.wav"
    shutil.copyfile(tracks[0], copy)
    again = catalog.ingest(copy)
    assert again.status == "duplicate"
    assert again.track.track_id == first.track.track_id
    assert catalog.count() == 1


def test_two_ingests_of_the_same_audio_at_once_add_one_track(catalog, tracks, tmp_path, monkeypatch):
    """Both ingests look for the content hash before either has written (the race); the index's write lock
    lets one in, the other ends as a duplicate and leaves no copy of the audio behind."""
    copy = tmp_path / "copy.wav"
    shutil.copyfile(tracks[0], copy)
    first = catalog.ingest(tracks[0])
    real, looks = catalog.index.find_by_hash, []
    # The second ingest's first look (before embedding) came before the first one's write: it saw nothing.
    monkeypatch.setattr(catalog.index, "find_by_hash", lambda h: None if not looks and not looks.append(h) else real(h))
    second = catalog.ingest(copy)
    assert second.status == "duplicate" and second.track.track_id == first.track.track_id
    assert catalog.count() == 1
    audio_files = [p for p in (catalog.storage.root / "audio").rglob("*") if p.is_file()]
    assert len(audio_files) == 1


def test_a_retried_ingest_finds_its_own_track(catalog, tracks):
    """An ingest job that got as far as the catalog and is run again is "added", and its audio stays."""
    first = catalog.ingest(tracks[0], track_id="job0000000000001")
    again = catalog.ingest(tracks[0], track_id="job0000000000001")
    assert again.status == "added" and again.track.track_id == first.track.track_id
    assert catalog.storage.exists(again.track.storage_key) and catalog.count() == 1
    other = catalog.ingest(tracks[0], track_id="job0000000000002")
    assert other.status == "duplicate"


def test_a_bad_file_is_refused_and_leaves_nothing(catalog, audio_dir):
    bad = audio_dir / "not-audio.mp3"
    bad.write_text("this is a text file, not music\n" * 50)
    with pytest.raises(AudioError) as error:
        catalog.ingest(bad)
    assert "not-audio.mp3" in str(error.value)
    assert catalog.count() == 0
    assert not any(catalog.storage.root.rglob("*.*"))


def test_a_failed_index_write_leaves_no_half_track(catalog, tracks, monkeypatch):
    def broken_add(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(catalog.index, "add", broken_add)
    with pytest.raises(OSError):
        catalog.ingest(tracks[0])
    monkeypatch.undo()
    assert catalog.count() == 0
    assert not any(path.is_file() for path in catalog.storage.root.rglob("*"))
    assert catalog.ingest(tracks[0]).status == "added"


def test_an_excerpt_finds_its_source_and_where(catalog, tracks, audio_dir):
    ids = [catalog.ingest(path).track.track_id for path in tracks]
    excerpt = audio_dir / "excerpt.mp3"
    signal = audiogen.music(30, SR, seed=2, bpm=110)[12 * SR : 24 * SR]
    noise = np.random.default_rng(0).normal(0, 0.01, signal.shape).astype(np.float32)
    audiogen.write(excerpt, signal + noise, SR, "MP3")
    for mode in ("segment", "track"):
        results = catalog.search_file(excerpt, limit=3, mode=mode)
        assert results[0]["track_id"] == ids[2], mode
        assert results[0]["score"] >= results[1]["score"]
    for mode in ("segment", "track"):
        best = catalog.search_file(excerpt, limit=1, mode=mode)[0]
        assert best["match_start"] == pytest.approx(12, abs=2.5)  # where the excerpt was cut from
        assert best["match_end"] == pytest.approx(24, abs=2.5)


def test_search_a_time_range_of_the_reference(catalog, tracks, audio_dir):
    ids = [catalog.ingest(path).track.track_id for path in tracks[:2]]
    both = audio_dir / "medley.wav"
    medley = np.concatenate([audiogen.music(30, SR, seed=0, bpm=90), audiogen.music(30, SR, seed=1, bpm=100)])
    audiogen.write(both, medley, SR, "WAV")
    assert catalog.search_file(both, start=0, end=25, mode="segment")[0]["track_id"] == ids[0]
    assert catalog.search_file(both, start=32, end=58, mode="segment")[0]["track_id"] == ids[1]


def test_more_like_this_never_returns_the_track_itself(catalog, tracks):
    ids = [catalog.ingest(path).track.track_id for path in tracks]
    results = catalog.similar(ids[1], limit=10)
    assert ids[1] not in [r["track_id"] for r in results]
    assert sorted(r["track_id"] for r in results) == sorted(set(ids) - {ids[1]})
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert all(len(r["envelope"]) > 100 for r in results)  # each result's loudness picture
    with pytest.raises(KeyError):
        catalog.similar("no-such-track")


def test_filters_and_album_diversity(catalog, tracks):
    albums = ["North", "North", "North", "South"]
    ids = [
        catalog.ingest(path, metadata={"album": album, "tags": "strings"}).track.track_id
        for path, album in zip(tracks, albums)
    ]
    query = catalog.index.track_vector(ids[0])
    times, windows = catalog.index.segments(ids[0])
    capped = catalog.search_embedding(query, windows, times, limit=10, per_album=1)
    assert sorted(r["album"] for r in capped) == ["North", "South"]
    south = catalog.search_embedding(query, windows, times, limit=10, filters=Filters(album="South"))
    assert [r["track_id"] for r in south] == [ids[3]]
    fast = catalog.search_embedding(query, windows, times, filters=Filters(min_bpm=105))
    assert {r["track_id"] for r in fast} == {ids[2], ids[3]}  # 110 and 120 BPM


def test_a_cut_down_is_grouped_with_its_full_version(catalog, tracks, audio_dir):
    full = catalog.ingest(tracks[1]).track
    for path in tracks[2:]:
        catalog.ingest(path)
    cut = audio_dir / "piece1 (20s edit).mp3"
    audiogen.write(cut, audiogen.music(30, SR, seed=1, bpm=100)[: 20 * SR], SR, "MP3")
    outcome = catalog.ingest(cut)
    assert outcome.status == "added" and outcome.version_of == full.track_id
    assert outcome.track.group_id == full.group_id

    query = catalog.index.track_vector(full.track_id)
    times, windows = catalog.index.segments(full.track_id)
    collapsed = catalog.search_embedding(query, windows, times, limit=10)
    grouped = [r for r in collapsed if r["group_id"] == full.group_id]
    assert len(grouped) == 1 and grouped[0]["versions"] == 2
    everything = catalog.search_embedding(query, windows, times, limit=10, collapse_versions=False)
    assert len([r for r in everything if r["group_id"] == full.group_id]) == 2


def test_metadata_import_by_file_name(catalog, tracks, tmp_path):
    ids = [catalog.ingest(path).track.track_id for path in tracks[:2]]
    sheet = tmp_path / "related songs.csv"
    sheet.write_text(
        "file,title,artist,album,tags\n"
        "piece0.wav,Dawn,Orchestra A,First Light,\"calm, strings\"\n"
        "missing.wav,Nothing,,,\n"
    )
    outcome = catalog.import_metadata(sheet)
    assert outcome == {"updated": 1, "unmatched": ["missing.wav"]}
    track = catalog.get(ids[0])
    assert (track["title"], track["artist"], track["album"]) == ("Dawn", "Orchestra A", "First Light")
    assert track["tags"][:2] == ["calm", "strings"]
    assert [t["title"] for t in catalog.list(query="first light")] == ["Dawn"]

    no_key = tmp_path / "bad.csv"
    no_key.write_text("name,title\nx,y\n")
    with pytest.raises(ValueError, match="no 'file' column"):
        catalog.import_metadata(no_key)


class RetunedDsp(DspEmbedder):
    """A third-party embedder plugin: same features under another name, so its vectors must not mix."""

    name = "dsp-retuned"


class RetunedPlugin:
    @hookimpl
    def register_embedders(self):
        return [RetunedDsp]


def test_vectors_from_another_embedder_are_refused_until_reindex(app_config, tracks):
    from audiofind.app import create_app as factory

    first = get_catalog(create_app(app_config))
    ids = [first.ingest(path).track.track_id for path in tracks[:2]]

    other = get_catalog(factory(dict(app_config, EMBEDDER="dsp-retuned"), plugins=[RetunedPlugin()]))
    with pytest.raises(EmbedderMismatch, match="audiofind reindex"):
        other.ingest(tracks[2])
    with pytest.raises(EmbedderMismatch):
        other.search_file(tracks[0])

    assert other.reindex() == []
    assert other.count() == 2
    assert {t["embedder"] for t in other.list()} == {"dsp-retuned:" + RetunedDsp.version}
    assert other.search_file(tracks[0], limit=1)[0]["track_id"] == ids[0]
    assert other.ingest(tracks[2]).status == "added"


def test_reindex_keeps_what_it_cannot_re_embed_for_the_next_run(app_config, tracks, monkeypatch):
    from audiofind.app import create_app as factory
    from audiofind.storage.base import StorageError

    first = get_catalog(create_app(app_config))
    ids = [first.ingest(path, metadata={"title": f"T{i}"}).track.track_id for i, path in enumerate(tracks[:3])]
    other = get_catalog(factory(dict(app_config, EMBEDDER="dsp-retuned"), plugins=[RetunedPlugin()]))
    flaky_key = first.index.get(ids[1]).storage_key
    real_copy = type(other.storage).local_copy

    def storage_down_for_one(storage, key):
        if key == flaky_key:
            raise StorageError("S3 error 500 on s3://bucket/key")
        return real_copy(storage, key)

    monkeypatch.setattr(type(other.storage), "local_copy", storage_down_for_one)
    failed = other.reindex()
    assert len(failed) == 1 and "piece1.wav" in failed[0] and "500" in failed[0]
    assert other.count() == 2 and other.storage.exists(flaky_key)  # its audio is never deleted

    monkeypatch.setattr(type(other.storage), "local_copy", real_copy)  # storage is back: run it again
    assert other.reindex() == []
    assert other.count() == 3 and other.get(ids[1])["title"] == "T1"
    assert {t["embedder"] for t in other.list()} == {"dsp-retuned:" + RetunedDsp.version}


def test_default_mode_ranks_an_excerpt_by_segments_and_a_whole_track_by_its_vector(catalog, tracks, audio_dir):
    for path in tracks:
        catalog.ingest(path)
    excerpt = audiogen.write(audio_dir / "excerpt.wav", audiogen.music(30, SR, seed=1, bpm=100)[5 * SR : 25 * SR], SR)
    medley = np.concatenate([audiogen.music(35, SR, seed=s, bpm=95) for s in (5, 6)])
    whole = audiogen.write(audio_dir / "whole.wav", medley, SR)  # 70 s, longer than AUTO_SEGMENT_SECONDS
    for reference, expected in ((excerpt, "segment"), (whole, "track")):
        default = catalog.search_file(reference, limit=4)
        fixed = catalog.search_file(reference, limit=4, mode=expected)
        assert [(r["track_id"], r["score"]) for r in default] == [(r["track_id"], r["score"]) for r in fixed]
    assert catalog.search_file(excerpt, limit=1)[0]["file"] == "piece1.wav"
