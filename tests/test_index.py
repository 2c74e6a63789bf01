"""The index contract: the same cases against every index backend (local always, Atlas with a real MongoDB)."""

import contextlib
import os
import sqlite3
import uuid
from dataclasses import replace

import numpy as np
import pytest

from audiofind.index.base import EmbedderMismatch, Filters, IndexUnavailable, Track

DIM, WDIM = 16, 8
IDENTITY = {"name": "test", "version": "1", "dim": DIM, "window_dim": WDIM}
ATLAS_SKIP = "AUDIOFIND_TEST_MONGODB_URI not set: Atlas contract suite needs a real MongoDB with vector search"


def unit(rng, *shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_track(i, **fields) -> Track:
    values = {
        "track_id": f"t{i:04d}",
        "file": f"song{i:04d}.mp3",
        "content_hash": f"hash{i:04d}",
        "duration": 60.0 + i,
        "embedder": "test:1",
        "title": f"Title {i}",
        "artist": "Artist",
        "album": "Album",
        "bpm": 100.0 + i,
        "group_id": f"t{i:04d}",
        "created_at": 1000.0 + i,
    }
    values.update(fields)
    return Track(**values)


def windows_for(n, length=10.0, hop=5.0):
    return np.array([[k * hop, k * hop + length] for k in range(n)], dtype=np.float32)


def add(index, track, rng, vector=None, window_vectors=None, n_windows=4):
    vector = unit(rng, DIM) if vector is None else vector
    window_vectors = unit(rng, n_windows, WDIM) if window_vectors is None else window_vectors
    index.add(track, vector, windows_for(len(window_vectors)), window_vectors)
    return vector, window_vectors


@contextlib.contextmanager
def real_mongodb(skip_reason=ATLAS_SKIP):
    """(URI, a fresh database name) on the MongoDB of AUDIOFIND_TEST_MONGODB_URI, the database dropped after; the
    test is skipped (``skip_reason``) without one."""
    uri = os.environ.get("AUDIOFIND_TEST_MONGODB_URI")
    if not uri:
        pytest.skip(skip_reason)
    name = f"audiofind_test_{uuid.uuid4().hex[:12]}"
    try:
        yield uri, name
    finally:
        import pymongo

        client = pymongo.MongoClient(uri)
        client.drop_database(name)
        client.close()


@pytest.fixture(params=["local", "atlas"])
def make_index(request, tmp_path):
    """Builds backend instances over one catalog: each call stands for another process opening it."""
    made = []
    with contextlib.ExitStack() as stack:
        if request.param == "local":
            from audiofind.index.local import LocalIndex

            def factory(**config):
                made.append(LocalIndex({"DATA_DIR": str(tmp_path / "instance"), **config}))
                return made[-1]

        else:
            uri, database = stack.enter_context(real_mongodb())
            from audiofind.index.atlas import AtlasIndex

            def factory(**config):
                base = {"DATA_DIR": str(tmp_path / "instance"), "MONGODB_URI": uri, "MONGODB_DATABASE": database}
                made.append(AtlasIndex({**base, **config}))
                return made[-1]

        yield factory
        for index in made:
            index.close()


@pytest.fixture
def index(make_index):
    index = make_index()
    index.set_embedder_identity(IDENTITY)
    return index


def settle(index):
    """Backends whose search lags behind writes (Atlas) wait here until the writes are searchable."""
    wait = getattr(index, "wait_searchable", None)
    if wait:
        wait()


def test_add_get_list_count_remove(index):
    rng = np.random.default_rng(1)
    a = make_track(1, title="Morning Light", artist="Ana", album="Dawn", tags=["calm", "piano"], envelope=[0.1, 0.5])
    b = make_track(2, title="Night Drive", artist="Ben", album="Roads", labels=[["Music", 0.9]], bpm=None)
    c = make_track(3, file="Café.WAV", title="Third", storage_key="k/3")
    for track in (a, b, c):
        add(index, track, rng)

    assert index.count() == 3
    assert index.get(a.track_id) == a
    assert index.get(b.track_id).bpm is None
    assert index.get("nope") is None
    assert [t.track_id for t in index.list()] == [c.track_id, b.track_id, a.track_id]  # newest first
    assert [t.track_id for t in index.list(offset=1, limit=1)] == [b.track_id]
    assert [t.track_id for t in index.list(query="night")] == [b.track_id]  # title
    assert [t.track_id for t in index.list(query="ANA")] == [a.track_id]  # artist
    assert [t.track_id for t in index.list(query="roads")] == [b.track_id]  # album
    assert [t.track_id for t in index.list(query="café.wav")] == [c.track_id]  # file
    assert index.list(query="absent") == []
    assert index.find_by_hash(b.content_hash) == b
    assert index.find_by_hash("nope") is None
    assert index.find_by_file(c.file) == [c]
    assert index.find_by_file("nope.mp3") == []
    assert index.get_many([a.track_id, "nope", c.track_id]) == {a.track_id: a, c.track_id: c}
    assert index.get_many([a.track_id], envelope=False) == {a.track_id: replace(a, envelope=[])}

    index.update(a.track_id, {"title": "Renamed", "tags": ["calm"], "group_id": c.track_id})
    updated = index.get(a.track_id)
    assert (updated.title, updated.tags, updated.group_id) == ("Renamed", ["calm"], c.track_id)
    assert [t.track_id for t in index.list(query="renamed")] == [a.track_id]
    with pytest.raises(KeyError):
        index.update("nope", {"title": "x"})

    windows, vectors = index.segments(a.track_id)
    assert windows.shape == (4, 2) and vectors.shape == (4, WDIM)
    assert index.track_vector(a.track_id).shape == (DIM,)

    assert index.remove(a.track_id) is True
    assert index.remove(a.track_id) is False
    assert index.get(a.track_id) is None
    assert index.count() == 2
    settle(index)
    assert a.track_id not in [h.track_id for h in index.search(unit(rng, DIM), 10, Filters())]


def test_track_vectors_and_a_random_sample_of_them(index):
    rng = np.random.default_rng(2)
    vectors = {make_track(i).track_id: add(index, make_track(i), rng)[0] for i in range(6)}
    ids = ["t0004", "t0001", "t0005"]
    assert np.allclose(index.track_vectors(ids), [vectors[i] for i in ids], atol=1e-6)
    assert index.track_vectors([]).shape[0] == 0
    with pytest.raises(KeyError):
        index.track_vectors(["t0001", "nope"])

    every = index.vector_sample(100)  # a catalog smaller than the sample: all of it
    assert sorted(map(tuple, np.round(every, 5))) == sorted(map(tuple, np.round(list(vectors.values()), 5)))
    some = index.vector_sample(3)
    assert some.shape == (3, DIM)
    assert all(any(np.allclose(row, v, atol=1e-6) for v in vectors.values()) for row in some)
    assert len({tuple(np.round(row, 5)) for row in some}) == 3  # drawn without replacement


def test_pages_by_cursor_walk_the_whole_catalog_newest_first(index):
    rng = np.random.default_rng(4)
    tracks = [make_track(i, title="Night" if i % 2 else "Day") for i in range(7)]
    for track in tracks:
        add(index, track, rng)
    seen, cursor = [], ""
    for _ in range(10):
        page, cursor = index.page(3, cursor=cursor)
        seen += [t.track_id for t in page]
        if cursor is None:
            break
    assert seen == [t.track_id for t in reversed(tracks)] == [t.track_id for t in index.list(limit=7)]
    nights, following = index.page(2, query="night")
    rest, last = index.page(2, query="night", cursor=following)
    assert [t.title for t in nights + rest] == ["Night"] * 3 and last is None
    index.remove(nights[-1].track_id)  # the cursor's own track is gone: its place is not
    assert [t.track_id for t in index.page(2, query="night", cursor=following)[0]] == [rest[0].track_id]
    with pytest.raises(ValueError, match="not a cursor"):
        index.page(2, cursor="'; DROP TABLE tracks")


def test_embedder_identity_and_dimension_mismatch(make_index):
    index = make_index()
    rng = np.random.default_rng(2)
    assert index.embedder_identity() is None
    with pytest.raises(IndexUnavailable):
        add(index, make_track(1), rng)
    index.set_embedder_identity(IDENTITY)
    assert index.embedder_identity() == IDENTITY
    with pytest.raises(EmbedderMismatch, match="16"):
        add(index, make_track(1), rng, vector=unit(rng, DIM * 2))
    with pytest.raises(EmbedderMismatch, match="8"):
        add(index, make_track(1), rng, window_vectors=unit(rng, 3, WDIM + 1))
    assert index.count() == 0
    add(index, make_track(1), rng)
    # Another embedder cannot take over a catalog that holds its vectors.
    with pytest.raises(EmbedderMismatch):
        index.set_embedder_identity({**IDENTITY, "name": "other"})
    assert index.embedder_identity() == IDENTITY
    assert make_index().embedder_identity() == IDENTITY


def test_exact_ranking(index):
    rng = np.random.default_rng(3)
    vectors = unit(rng, 60, DIM)
    for i, vector in enumerate(vectors):
        add(index, make_track(i), rng, vector=vector)
    settle(index)
    for target in (0, 17, 59):
        query = vectors[target] + 0.05 * unit(rng, DIM)
        hits = index.search(query, 5, Filters())
        assert len(hits) == 5
        assert hits[0].track_id == make_track(target).track_id
        expected = np.sort(vectors @ query)[::-1][:5]
        np.testing.assert_allclose([h.score for h in hits], expected, rtol=1e-4, atol=1e-5)
        assert all(h.match_start is None for h in hits)


FILTER_CASES = {
    "exclude_track_ids": Filters(exclude_track_ids=["t0001", "t0004"]),
    "exclude_files": Filters(exclude_files=["song0002.mp3"]),
    "album": Filters(album="Dawn"),
    "artist": Filters(artist="Ben"),
    "tags": Filters(tags=["calm", "piano"]),
    "min_duration": Filters(min_duration=64.0),
    "max_duration": Filters(max_duration=63.0),
    "min_bpm": Filters(min_bpm=105.0),
    "max_bpm": Filters(max_bpm=104.0),
    "combined": Filters(album="Dawn", tags=["calm"], min_duration=61.0, exclude_files=["song0007.mp3"]),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_every_filter_applies_before_ranking(index, case):
    rng = np.random.default_rng(4)
    filters = FILTER_CASES[case]
    query = unit(rng, DIM)
    tracks = []
    for i in range(12):
        track = make_track(
            i,
            album="Dawn" if i % 2 else "Roads",
            artist="Ben" if i % 3 == 0 else "Ana",
            tags=["calm", "piano"] if i % 4 == 1 else (["calm"] if i % 4 == 3 else []),
            bpm=None if i == 9 else 100.0 + i,
        )
        tracks.append(track)
        # The tracks the filters keep are the ones farthest from the query: filtering after a top-k would lose them.
        closeness = -1.0 if filters.matches(track) else 1.0
        add(index, track, rng, vector=closeness * query + 0.3 * unit(rng, DIM))
    settle(index)
    expected = [t.track_id for t in tracks if filters.matches(t)]
    assert 0 < len(expected) < len(tracks)
    hits = index.search(query, 20, filters)
    assert sorted(h.track_id for h in hits) == sorted(expected)
    top = index.search(query, 2, filters)
    assert [h.track_id for h in top] == [h.track_id for h in hits[:2]]
    segment_hits = index.search_segments(unit(rng, 2, WDIM), 20, filters)
    assert sorted(h.track_id for h in segment_hits) == sorted(expected)


def test_exclude_self(index):
    rng = np.random.default_rng(5)
    vectors = unit(rng, 10, DIM)
    for i, vector in enumerate(vectors):
        add(index, make_track(i), rng, vector=vector)
    settle(index)
    me = make_track(3)
    assert index.search(vectors[3], 1, Filters())[0].track_id == me.track_id
    hits = index.search(vectors[3], 5, Filters(exclude_track_ids=[me.track_id]))
    assert len(hits) == 5 and me.track_id not in [h.track_id for h in hits]
    hits = index.search(vectors[3], 5, Filters(exclude_files=[me.file]))
    assert len(hits) == 5 and me.track_id not in [h.track_id for h in hits]


def test_segment_search_finds_track_and_window(index):
    rng = np.random.default_rng(6)
    catalog = {}
    for i in range(20):
        _, window_vectors = add(index, make_track(i), rng, n_windows=3 + i % 5)
        catalog[i] = window_vectors
    settle(index)
    target = catalog[11]  # 4 windows, 5 s apart
    # An excerpt: one window very close to the target's window 2, one a little less close to window 3.
    query = np.stack([target[2] + 0.05 * unit(rng, WDIM), target[3] + 0.3 * unit(rng, WDIM)])
    hits = index.search_segments(query, 5, Filters())
    assert hits[0].track_id == make_track(11).track_id
    assert (hits[0].match_start, hits[0].match_end) == (10.0, 20.0)
    expected = np.mean([(target @ q).max() for q in query])
    assert hits[0].score == pytest.approx(expected, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert make_track(11).track_id not in [
        h.track_id for h in index.search_segments(query, 5, Filters(exclude_track_ids=[make_track(11).track_id]))
    ]


def test_add_is_all_or_nothing(index, monkeypatch):
    rng = np.random.default_rng(7)
    add(index, make_track(1), rng)
    if not hasattr(index, "_insert_tracks"):
        pytest.skip(f"{type(index).__name__} has no _insert_tracks step to interrupt")

    def crash(*args, **kwargs):
        raise OSError("simulated crash after the vectors were written")

    monkeypatch.setattr(index, "_insert_tracks", crash)
    half = make_track(2)
    vector = unit(rng, DIM)
    with pytest.raises(OSError):
        add(index, half, rng, vector=vector)
    monkeypatch.undo()

    assert index.count() == 1
    assert index.get(half.track_id) is None
    assert index.find_by_hash(half.content_hash) is None
    assert [t.track_id for t in index.list()] == [make_track(1).track_id]
    settle(index)
    assert half.track_id not in [h.track_id for h in index.search(vector, 10, Filters())]

    after = make_track(3)
    after_vector, after_windows = add(index, after, rng)
    add(index, half, rng, vector=vector)  # the failed track can be added again
    settle(index)
    assert index.count() == 3
    assert index.search(after_vector, 1, Filters())[0].track_id == after.track_id
    assert index.search(vector, 1, Filters())[0].track_id == half.track_id
    np.testing.assert_allclose(index.segments(after.track_id)[1], after_windows)


def test_a_second_instance_sees_the_first_ones_writes(make_index, index):
    rng = np.random.default_rng(8)
    other = make_index()  # e.g. the web process, while `index` is the worker
    assert other.count() == 0
    settle(other)
    assert other.search(unit(rng, DIM), 5, Filters()) == []
    vectors = unit(rng, 5, DIM)
    for i, vector in enumerate(vectors):
        add(index, make_track(i), rng, vector=vector)
    settle(index)
    assert other.count() == 5
    assert other.get(make_track(4).track_id) == make_track(4)
    assert other.search(vectors[4], 1, Filters())[0].track_id == make_track(4).track_id
    index.remove(make_track(4).track_id)
    index.update(make_track(3).track_id, {"album": "Moved"})
    settle(index)
    assert make_track(4).track_id not in [h.track_id for h in other.search(vectors[4], 5, Filters())]
    assert [h.track_id for h in other.search(vectors[4], 5, Filters(album="Moved"))] == [make_track(3).track_id]


def test_approximate_search_agrees_with_exact(make_index):
    rng = np.random.default_rng(9)
    index = make_index(ANN_THRESHOLD=50)
    index.set_embedder_identity(IDENTITY)
    centres = unit(rng, 12, DIM)
    vectors = [centres[i % 12] + 0.4 * unit(rng, DIM) for i in range(300)]
    vectors = np.stack([v / np.linalg.norm(v) for v in vectors])
    windows = []
    for i, vector in enumerate(vectors):
        _, w = add(index, make_track(i, tags=["even"] if i % 2 == 0 else []), rng, vector=vector)
        windows.append(w)
    settle(index)
    # HNSW is approximate (and its multi-threaded build is not deterministic): top-1 must agree with exact
    # search for nearly every query, not necessarily all.
    agree = {"plain": 0, "filtered": 0, "segments": 0}
    for q in range(20):
        query = vectors[q * 13] + 0.1 * unit(rng, DIM)
        exact = int(np.argmax(vectors @ query))
        agree["plain"] += index.search(query, 10, Filters())[0].track_id == make_track(exact).track_id
        evens = np.where(np.arange(300) % 2 == 0, vectors @ query, -np.inf)
        hits = index.search(query, 10, Filters(tags=["even"]))
        assert len(hits) == 10
        agree["filtered"] += hits[0].track_id == make_track(int(np.argmax(evens))).track_id
        target = windows[q * 7]
        segment_query = target[1:3] + 0.1 * unit(rng, 2, WDIM)
        agree["segments"] += index.search_segments(segment_query, 5, Filters())[0].track_id == make_track(q * 7).track_id
    assert min(agree.values()) >= 18, agree


# -- the local backend's own guarantees


@pytest.fixture
def local(tmp_path):
    from audiofind.index.local import LocalIndex

    index = LocalIndex({"DATA_DIR": str(tmp_path / "instance")})
    index.set_embedder_identity(IDENTITY)
    yield index
    index.close()


def test_local_catalog_is_sqlite_wal_with_a_schema_version(local):
    from audiofind.index.local import SCHEMA_VERSION

    add(local, make_track(1), np.random.default_rng(10))
    conn = sqlite3.connect(local.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_local_catalog_gains_the_column_of_a_new_track_field_on_open(local, tmp_path):
    """A Track field added after a catalog was made (a new filter's attribute) gets its column, with the
    field's default in the rows already there; the tracks stay searchable and filterable."""
    from audiofind.index.local import LocalIndex

    rng = np.random.default_rng(13)
    vector = add(local, make_track(1, album="Dawn"), rng)[0]
    local.close()
    conn = sqlite3.connect(local.db_path)
    conn.execute("ALTER TABLE tracks DROP COLUMN group_id")  # the catalog of a version without group_id
    conn.commit()
    conn.close()
    reopened = LocalIndex({"DATA_DIR": str(tmp_path / "instance")})
    assert reopened.get(make_track(1).track_id).group_id == ""
    assert reopened.search(vector, 1, Filters(album="Dawn"))[0].track_id == make_track(1).track_id
    reopened.update(make_track(1).track_id, {"group_id": "g1"})
    assert reopened.get(make_track(1).track_id).group_id == "g1"
    reopened.close()


def test_local_reopen_and_compact(local, tmp_path, monkeypatch):
    from audiofind.index.local import LocalIndex

    rng = np.random.default_rng(11)
    vectors = unit(rng, 8, DIM)
    kept_windows = {}
    for i, vector in enumerate(vectors):
        kept_windows[i] = add(local, make_track(i), rng, vector=vector, n_windows=2 + i)[1]
    monkeypatch.setattr(local, "_insert_tracks", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        add(local, make_track(99), rng)
    monkeypatch.undo()
    local.remove(make_track(2).track_id)
    local.remove(make_track(5).track_id)

    reclaimed = local.compact()
    assert reclaimed == {"track_rows": 3, "window_rows": 4 + 7 + 4}
    local.close()

    reopened = LocalIndex({"DATA_DIR": str(tmp_path / "instance")})
    assert reopened.count() == 6
    for i in (0, 1, 3, 4, 6, 7):
        assert reopened.search(vectors[i], 1, Filters())[0].track_id == make_track(i).track_id
        np.testing.assert_array_equal(reopened.track_vector(make_track(i).track_id), vectors[i])
        np.testing.assert_array_equal(reopened.segments(make_track(i).track_id)[1], kept_windows[i])
    add(reopened, make_track(8), rng)
    assert reopened.count() == 7
    reopened.close()


def test_local_refuses_bad_vectors(local):
    rng = np.random.default_rng(12)
    bad = unit(rng, DIM)
    bad[0] = np.nan
    with pytest.raises(ValueError, match="song0001.mp3"):
        add(local, make_track(1), rng, vector=bad)
    with pytest.raises(ValueError, match="already"):
        add(local, make_track(2), rng)
        add(local, make_track(2), rng)
    with pytest.raises(ValueError, match="twice"):
        local.add_many([(make_track(3), unit(rng, DIM), windows_for(1), unit(rng, 1, WDIM))] * 2)
    assert local.get(make_track(3).track_id) is None
    # An emptied catalog may change embedder (re-index): new widths, new files.
    for track in local.list(limit=100):
        local.remove(track.track_id)
    local.set_embedder_identity({**IDENTITY, "dim": 2 * DIM, "window_dim": 2 * WDIM})
    add(local, make_track(4), rng, vector=unit(rng, 2 * DIM), window_vectors=unit(rng, 2, 2 * WDIM))
    assert local.search(unit(rng, 2 * DIM), 5, Filters())[0].track_id == make_track(4).track_id
    assert len(list(local.root.glob("*_vectors.*.f32"))) == 2
    with pytest.raises(ValueError, match="updatable"):
        local.update(make_track(2).track_id, {"content_hash": "x"})


def test_local_hnsw_index_is_persisted_updated_and_shared(tmp_path):
    from audiofind.index.local import LocalIndex

    config = {"DATA_DIR": str(tmp_path / "instance"), "ANN_THRESHOLD": 20}
    writer = LocalIndex(config)
    writer.set_embedder_identity(IDENTITY)
    rng = np.random.default_rng(13)
    vectors = unit(rng, 120, DIM)
    for i, vector in enumerate(vectors):
        add(writer, make_track(i), rng, vector=vector)
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "instance").glob("*.usearch")) == ["tracks", "windows"]
    reader = LocalIndex(config)
    for i in (0, 60, 119):  # 119 may still be in the exactly-searched tail
        assert reader.search(vectors[i], 3, Filters())[0].track_id == make_track(i).track_id
        assert reader.search(vectors[i], 3, Filters(), exact=True)[0].track_id == make_track(i).track_id
    writer.remove(make_track(60).track_id)
    assert make_track(60).track_id not in [h.track_id for h in reader.search(vectors[60], 5, Filters())]
    # An album filter only three tracks pass: far too few survive an over-fetch, so exact filtered search answers.
    for i in (5, 6, 7):
        writer.update(make_track(i).track_id, {"album": "Rare"})
    hits = reader.search(vectors[0], 10, Filters(album="Rare"))
    assert sorted(h.track_id for h in hits) == [make_track(i).track_id for i in (5, 6, 7)]
    writer.build_ann(rebuild=True)
    assert reader.search(vectors[1], 1, Filters())[0].track_id == make_track(1).track_id
    writer.compact()
    assert list((tmp_path / "instance").glob("*.usearch")) == []
    assert reader.search(vectors[2], 1, Filters())[0].track_id == make_track(2).track_id  # exact until rebuilt
    add(writer, make_track(500), rng)
    assert len(list((tmp_path / "instance").glob("*.usearch"))) == 2
    assert reader.search(vectors[3], 1, Filters())[0].track_id == make_track(3).track_id
    writer.close()
    reader.close()
