"""Moving an embedded catalog (local index + local files) to Atlas + S3 without re-embedding, resumably.

The target is AtlasIndex over the in-process fake database of test_atlas.py and S3Storage against
moto's S3 server on loopback."""

import json
import uuid

import numpy as np
import pytest

from audiofind.index.atlas import AtlasIndex
from audiofind.index.base import EmbedderMismatch, Filters, Track
from audiofind.index.local import LocalIndex
from audiofind.moveup import move_up, progress_path
from audiofind.storage.local import LocalStorage
from audiofind.storage.s3 import S3Storage
from test_atlas import FakeDatabase, unit
from test_storage import s3_endpoint  # noqa: F401  (the moto server fixture)

IDENTITY = {"name": "dsp", "version": "1", "dim": 8, "window_dim": 4}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    import audiofind.index.atlas.definitions

    monkeypatch.setattr(audiofind.index.atlas.definitions, "sleep", lambda seconds: None)


@pytest.fixture
def source(tmp_path):
    """A local catalog of 7 tracks with their audio files (one file lost)."""
    config = {"DATA_DIR": str(tmp_path / "local"), "INDEX": "local", "STORAGE": "local", "S3_PREFIX": "audio/"}
    index, storage = LocalIndex(config), LocalStorage(config)
    index.set_embedder_identity(IDENTITY)
    rng = np.random.default_rng(0)
    for i in range(7):
        key = storage.new_key(f"song {i}.flac")
        audio = tmp_path / f"in{i}.flac"
        audio.write_bytes(b"fLaC" + bytes([i]) * (1000 + i))
        storage.put_file(audio, key)
        track = Track(track_id=f"t{i}", file=f"song {i}.flac", content_hash=f"h{i}", duration=30.0 + i,
                      embedder="dsp:1", storage_key=key, title=f"Song {i}", album="A" if i % 2 else "B",
                      tags=["calm"], bpm=90.0 + i, group_id=f"t{i}", created_at=100.0 + i)
        index.add(track, unit(rng, 1, 8)[0], np.array([[0, 10], [5, 15], [10, 20]], dtype=np.float32),
                  unit(rng, 3, 4))
    storage.delete(index.get("t5").storage_key)
    yield config, index, storage
    index.close()


@pytest.fixture
def target(tmp_path, s3_endpoint):  # noqa: F811
    bucket = f"moveup-{uuid.uuid4().hex[:10]}"
    config = {"DATA_DIR": str(tmp_path / "prod"), "INDEX": "atlas", "STORAGE": "s3", "MONGODB_URI": "mongodb://atlas.example",
              "MONGODB_DATABASE": "catalog", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1",
              "S3_PREFIX": "audio/", "ATLAS_INDEX_TIMEOUT": 5}
    db = FakeDatabase()
    storage = S3Storage(config)
    storage.client.create_bucket(Bucket=bucket)
    return config, AtlasIndex(config, database=db), storage, db


def test_move_up_copies_vectors_files_and_metadata(source, target):
    source_config, source_index, source_storage = source
    target_config, target_index, target_storage, db = target
    events = []
    summary = move_up(source_config, target_config, progress=lambda *e: events.append(e),
                      source=(source_index, source_storage), target=(target_index, target_storage), batch_size=3)
    assert summary["total"] == 7 and summary["moved"] == 7 and summary["skipped"] == 0
    assert summary["missing_files"] == ["song 5.flac"]
    assert events == [(done, 7) for done in range(1, 8)]

    assert target_index.embedder_identity() == IDENTITY
    assert {spec["name"] for c in ("tracks", "segments") for spec in db[c].search_indexes.values()} == {
        "tracks_vector", "segments_vector"}
    assert target_index.count() == 7
    assert [t.track_id for t in target_index.list()] == [t.track_id for t in source_index.list()]
    for i in range(7):
        track = source_index.get(f"t{i}")
        assert target_index.get(track.track_id) == track  # same key, same metadata
        assert np.array_equal(target_index.track_vector(track.track_id), source_index.track_vector(track.track_id))
        windows, vectors = target_index.segments(track.track_id)
        assert np.array_equal(windows, source_index.segments(track.track_id)[0])
        assert np.array_equal(vectors, source_index.segments(track.track_id)[1])
        if i != 5:
            with target_storage.local_copy(track.storage_key) as copy, source_storage.local_copy(track.storage_key) as orig:
                assert copy.read_bytes() == orig.read_bytes()
    head = target_storage.client.head_object(Bucket=target_storage.bucket, Key=source_index.get("t1").storage_key)
    assert head["ContentType"] == "audio/flac" and head["Metadata"]["filename"] == "song%201.flac"
    # The moved catalog answers searches in Atlas with the same neighbours as the local one.
    query = source_index.track_vector("t3")
    expected = [h.track_id for h in source_index.search(query, 3, Filters(exclude_track_ids=["t3"]))]
    assert [h.track_id for h in target_index.search(query, 3, Filters(exclude_track_ids=["t3"]))] == expected


def test_an_interrupted_move_resumes_without_writing_twice(source, target):
    source_config, source_index, source_storage = source
    target_config, target_index, target_storage, db = target

    def stop_after_four(done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        move_up(source_config, target_config, progress=stop_after_four,
                source=(source_index, source_storage), target=(target_index, target_storage), batch_size=2)
    assert target_index.count() == 4
    logged = [json.loads(line) for line in progress_path(source_config, target_config).read_text().splitlines()]
    assert sum(len(entry["done"]) for entry in logged) == 4

    # A crash between writing a batch to Atlas and logging it: the track is in the target, not in the log.
    extra = source_index.get("t4")
    with source_storage.local_copy(extra.storage_key) as path:
        target_storage.put_file(path, extra.storage_key)
    target_index.add(extra, source_index.track_vector("t4"), *source_index.segments("t4"))
    uploads = []
    original_put = target_storage.put_file
    target_storage.put_file = lambda *a, **k: (uploads.append(a[1]), original_put(*a, **k))

    inserted = []
    original_insert = target_index._insert_tracks
    target_index._insert_tracks = lambda docs: (inserted.extend(d["_id"] for d in docs), original_insert(docs))
    summary = move_up(source_config, target_config, source=(source_index, source_storage),
                      target=(target_index, target_storage), batch_size=2)
    assert summary["total"] == 7 and summary["skipped"] == 5 and summary["moved"] == 2
    assert summary["missing_files"] == ["song 5.flac"]
    assert inserted == ["t5", "t6"]
    assert target_index.count() == 7
    assert uploads == [source_index.get("t6").storage_key]  # t4's file was already there: not sent again

    again = move_up(source_config, target_config, source=(source_index, source_storage),
                    target=(target_index, target_storage))
    assert again["skipped"] == 7 and again["moved"] == 0 and target_index.count() == 7


def test_a_target_built_by_another_embedder_is_refused(source, target):
    source_config, source_index, source_storage = source
    target_config, target_index, target_storage, db = target
    other = {**IDENTITY, "name": "panns", "dim": 8}
    target_index.set_embedder_identity(other)
    target_index.add(Track(track_id="x", file="x.mp3", content_hash="x", duration=1.0, embedder="panns"),
                     np.ones(8) / np.sqrt(8), np.array([[0, 10]]), np.ones((1, 4)) / 2)
    with pytest.raises(EmbedderMismatch):
        move_up(source_config, target_config, source=(source_index, source_storage), target=(target_index, target_storage))
    assert target_index.count() == 1


def test_an_empty_catalog_moves_nothing(tmp_path, target):
    config = {"DATA_DIR": str(tmp_path / "empty"), "INDEX": "local", "STORAGE": "local"}
    target_config, target_index, target_storage, db = target
    summary = move_up(config, target_config, source=(LocalIndex(config), LocalStorage(config)),
                      target=(target_index, target_storage))
    assert summary["total"] == 0 and target_index.embedder_identity() is None


def test_progress_files_name_the_target_without_credentials(tmp_path):
    source = {"DATA_DIR": str(tmp_path)}
    a = {"INDEX": "atlas", "STORAGE": "s3", "MONGODB_URI": "mongodb+srv://u:secret@c0.example.net", "S3_BUCKET": "b1"}
    b = {**a, "S3_BUCKET": "b2"}
    assert progress_path(source, a) != progress_path(source, b)
    assert progress_path(source, a).parent == tmp_path
    assert "secret" not in progress_path(source, a).name
