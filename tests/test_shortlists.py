"""Shortlists: the store (the same cases on the local index, on Atlas's documents through the in-process fake of
tests/test_atlas.py, and on a real MongoDB with AUDIOFIND_TEST_MONGODB_URI), the catalog's removal, the exports."""

import contextlib
import csv
import io
import threading

import pytest

import audiogen
from test_index import real_mongodb
from audiofind.app import get_catalog
from audiofind.shortlists import CSV_COLUMNS, ShortlistNotFound, store_for, to_csv, to_m3u, tracks_of

ATLAS_SKIP = "AUDIOFIND_TEST_MONGODB_URI not set: the Atlas shortlist contract needs a real MongoDB"
SR = 32000


@pytest.fixture(params=["local", "atlas-documents", "atlas"])
def open_store(request, tmp_path):
    """open_store() opens the shortlist store over one catalog; each call stands for a restarted process."""
    opened = []
    with contextlib.ExitStack() as stack:
        if request.param == "local":
            from audiofind.index.local import LocalIndex

            def make():
                opened.append(LocalIndex({"DATA_DIR": str(tmp_path / "instance")}))
                return opened[-1]

        elif request.param == "atlas-documents":
            from test_atlas import FakeDatabase

            from audiofind.index.atlas import AtlasIndex

            database = FakeDatabase()

            def make():
                opened.append(AtlasIndex({"MONGODB_URI": "mongodb://fake"}, database=database))
                return opened[-1]

        else:
            uri, name = stack.enter_context(real_mongodb(ATLAS_SKIP))
            from audiofind.index.atlas import AtlasIndex

            def make():
                opened.append(AtlasIndex({"MONGODB_URI": uri, "MONGODB_DATABASE": name}))
                return opened[-1]

        yield lambda: store_for(make())
        for index in opened:
            index.close()


@pytest.fixture
def store(open_store):
    return open_store()


def test_create_edit_and_survive_a_restart(open_store):
    store = open_store()
    made = store.create("browser-1", "  Chase   scene ", ["t1", "t2", "t1"])
    assert made.name == "Chase scene" and made.track_ids == ["t1", "t2"]
    assert len(made.shortlist_id) >= 20 and made.share_id != made.shortlist_id
    store.add(made.shortlist_id, "t3", note="the drums at 1:10")
    store.add(made.shortlist_id, "t1")  # already there: stays first
    store.set_note(made.shortlist_id, "t2", "too slow?")
    store.reorder(made.shortlist_id, ["t3", "t1", "t2"])
    store.rename(made.shortlist_id, "Chase, act 2")
    store.remove(made.shortlist_id, "t1")

    again = open_store().get(made.shortlist_id)  # another process, after a restart
    assert again.name == "Chase, act 2"
    assert [(i.track_id, i.note) for i in again.items] == [("t3", "the drums at 1:10"), ("t2", "too slow?")]
    assert again.owner == "browser-1" and again.updated_at >= again.created_at
    assert open_store().get_shared(made.share_id).shortlist_id == made.shortlist_id


def test_lists_by_owner_and_all_and_delete(store):
    mine = [store.create("me", f"list {i}") for i in range(3)]
    theirs = store.create("them", "theirs")
    store.add(mine[0].shortlist_id, "t9")  # the last changed comes first
    assert [s.shortlist_id for s in store.list_by_owner("me")] == [mine[0].shortlist_id, *(
        s.shortlist_id for s in sorted(mine[1:], key=lambda s: -s.updated_at))]
    assert {s.shortlist_id for s in store.list_all()} == {s.shortlist_id for s in [*mine, theirs]}
    assert len(store.list_all(offset=1, limit=2)) == 2 and store.count() == 4
    assert store.delete(theirs.shortlist_id) and not store.delete(theirs.shortlist_id)
    assert store.get(theirs.shortlist_id) is None and store.get_shared(theirs.share_id) is None
    assert store.list_by_owner("them") == []


def test_wrong_requests_are_refused(store):
    made = store.create("me", "list", ["t1", "t2"])
    with pytest.raises(ShortlistNotFound):
        store.add("no-such-list", "t1")
    with pytest.raises(ValueError):
        store.reorder(made.shortlist_id, ["t1"])
    with pytest.raises(ValueError):
        store.rename(made.shortlist_id, "   ")
    with pytest.raises(KeyError):
        store.set_note(made.shortlist_id, "t7", "not in the list")
    assert store.get(made.shortlist_id).track_ids == ["t1", "t2"]
    assert store.get("no-such-list") is None and store.get_shared("no-such-share") is None


def test_changes_at_once_are_all_kept(store):
    made = store.create("me", "busy")
    track_ids = [f"t{i}" for i in range(12)]
    threads = [threading.Thread(target=store.add, args=(made.shortlist_id, t)) for t in track_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(store.get(made.shortlist_id).track_ids) == sorted(track_ids)


def test_a_removed_track_stays_as_missing_with_its_title(store):
    first = store.create("me", "one", ["t1", "t2"])
    second = store.create("you", "two", ["t2"])
    store.set_note(first.shortlist_id, "t2", "keep this")
    assert store.track_removed("t2", "Night Drive") == 2
    item = store.get(first.shortlist_id).item("t2")
    assert item.missing and item.title == "Night Drive" and item.note == "keep this"
    assert store.get(second.shortlist_id).item("t2").missing
    assert not store.get(first.shortlist_id).item("t1").missing


# -- through the catalog


@pytest.fixture
def catalog_tracks(app, audio_dir):
    catalog = get_catalog(app)
    ids = []
    for seed, (title, artist) in enumerate([("Night Drive", "Ana"), ("=HYPERLINK(\"x\")", ""), ("Dawn", "Bo")]):
        path = audio_dir / f"song{seed}.wav"
        audiogen.write(path, audiogen.music(6, SR, seed=seed, bpm=100 + 10 * seed), SR, "WAV")
        track = catalog.ingest(path, metadata={"title": title, "artist": artist, "album": "Tests", "tags": "calm"}).track
        ids.append(track.track_id)
    return catalog, ids


def test_removing_a_track_from_the_catalog_marks_it_missing(catalog_tracks):
    catalog, ids = catalog_tracks
    store = store_for(catalog.index)
    made = store.create("me", "scene", ids)
    assert catalog.remove(ids[0])
    kept = store.get(made.shortlist_id)
    assert kept.track_ids == ids and kept.item(ids[0]).missing and kept.item(ids[0]).title == "Night Drive"
    assert set(tracks_of(kept, catalog.index)) == set(ids[1:])


def test_csv_and_m3u_exports(catalog_tracks):
    catalog, ids = catalog_tracks
    store = store_for(catalog.index)
    made = store.create("me", "scene", [ids[2], ids[0], ids[1]])
    store.set_note(made.shortlist_id, ids[2], "opening, from 0:30")
    catalog.remove(ids[0])
    shortlist = store.get(made.shortlist_id)
    tracks = tracks_of(shortlist, catalog.index)

    text = to_csv(shortlist, tracks, lambda track: f"https://find.example/tracks/{track.track_id}")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    dawn = rows[0]
    assert (dawn["title"], dawn["artist"], dawn["album"], dawn["file"], dawn["note"]) == (
        "Dawn", "Bo", "Tests", "song2.wav", "opening, from 0:30")
    assert float(dawn["duration"]) == pytest.approx(6, abs=0.1) and float(dawn["bpm"]) > 0
    assert "calm" in dawn["tags"].split("; ")
    assert dawn["track_page_url"] == f"https://find.example/tracks/{ids[2]}"
    assert rows[1]["title"] == "Night Drive" and rows[1]["file"] == rows[1]["track_page_url"] == ""  # missing
    assert rows[2]["title"].startswith("'=")  # not a formula in a spreadsheet

    playlist = to_m3u(shortlist, tracks, lambda track: f"https://find.example/play/{track.track_id}?sig=abc")
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#PLAYLIST:scene"
    assert lines[2] == "#EXTINF:6,Bo - Dawn" and lines[3] == f"https://find.example/play/{ids[2]}?sig=abc"
    assert len([line for line in lines if line.startswith("https://")]) == 2  # the missing track has no URL
