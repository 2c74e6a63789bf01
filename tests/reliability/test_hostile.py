"""Hostile and odd input against a running `audiofind serve`: requests, files, and many users at once."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

import audiogen
from serving import MAX_DURATION, TOKEN

SR = 22050

# (method, path, keyword arguments for requests): each must be answered 4xx, in the API's JSON error shape.
HOSTILE_REQUESTS = [
    ("POST", "/api/v1/uploads", {"data": "filename=a.wav", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/api/v1/uploads", {"data": "{", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/v1/uploads", {"json": ["a.wav", 10]}),
    ("POST", "/api/v1/uploads", {"json": {"filename": 123, "content_type": "audio/wav", "size": 10}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": {"$ne": 1}, "content_type": "audio/wav", "size": 10}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "a.wav", "content_type": ["audio/wav"], "size": 10}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "a.wav", "content_type": "audio/wav", "size": "big"}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "a.wav", "content_type": "audio/wav", "size": -5}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "a.wav", "content_type": "audio/wav", "size": 10**30}}),
    ("POST", "/api/v1/uploads", {"data": '{"filename": "a.wav", "content_type": "audio/wav", "size": 1e999}',
                                 "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "page.html", "content_type": "text/html", "size": 10}}),
    ("POST", "/api/v1/uploads", {"json": {"filename": "x" * 300 + ".wav", "content_type": "audio/wav", "size": 10}}),
    ("POST", "/api/v1/uploads", {"data": "[" * 100000 + "]" * 100000, "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/v1/uploads", {"data": json.dumps({"filename": "a.wav", "pad": "x" * (30 << 20)}),
                                 "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/v1/searches", {"json": {}}),
    ("POST", "/api/v1/searches", {"json": {"key": {"$gt": ""}}}),
    ("POST", "/api/v1/searches", {"json": {"key": "../../../etc/passwd"}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "limit": "ten"}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "limit": 10**20}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "filters": "album=A"}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "filters": {"album": {"$ne": 1}}}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "filters": {"$where": "1"}}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "mode": "'; DROP TABLE tracks; --"}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "start": 30, "end": 10}}),
    ("POST", "/api/v1/searches", {"json": {"key": "uploads/x.wav", "filters": {"min_bpm": [1]}}}),
    ("GET", "/api/v1/searches/not-a-job", {}),
    ("GET", "/api/v1/tracks?offset=99999999999999999999", {}),
    ("GET", "/api/v1/tracks?limit=0", {}),
    ("GET", "/api/v1/tracks?limit=1e999", {}),
    ("GET", "/api/v1/tracks/..%2F..%2Fcatalog.sqlite3", {}),
    ("GET", "/api/v1/tracks/nothing/similar?limit=-1", {}),
    ("DELETE", "/api/v1/tracks/anything", {}),
    ("DELETE", "/api/v1/tracks/anything", {"headers": {"Authorization": "Bearer wrong"}}),
    ("POST", "/api/v1/tracks", {"json": {"key": "uploads/x.wav"}, "headers": {"Authorization": "Basic eA=="}}),
    ("POST", "/api/v1/tracks", {"json": {"key": "uploads/x.wav", "metadata": {"title": {"$ne": 1}}},
                                "headers": {"Authorization": f"Bearer {TOKEN}"}}),
    ("POST", "/api/v1/tracks", {"json": {"key": "uploads/x.wav", "metadata": ["title"]},
                                "headers": {"Authorization": f"Bearer {TOKEN}"}}),
    ("GET", "/api/v1/ingests/whatever", {}),
    ("PUT", "/storage/upload/forged-token", {"data": b"x", "headers": {"Content-Type": "audio/wav"}}),
    ("GET", "/storage/audio/forged-token", {}),
    ("PATCH", "/api/v1/tracks", {}),
]


@pytest.mark.parametrize("method, path, kwargs", HOSTILE_REQUESTS, ids=[f"{m} {p[:40]}" for m, p, _ in HOSTILE_REQUESTS])
def test_hostile_request_is_a_clear_4xx(served, method, path, kwargs):
    answer = served.call(method, path, timeout=30, **kwargs)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert isinstance(body.get("error"), str) and len(body.get("message", "")) > 5, body


def test_the_service_still_answers_after_the_hostile_requests(served):
    assert served.call("GET", "/readyz").json()["ok"] is True


# -- hostile and odd files, each through ingest and through search


def _multichannel(path, channels, rate, seconds, subtype):
    mono = audiogen.music(seconds, rate, seed=channels)
    sf.write(path, np.stack([np.roll(mono, 100 * c) for c in range(channels)], axis=1) * 0.5, rate, subtype=subtype)
    return path


def _odd_files(folder):
    """(path, name to upload it as, expected: "added" or a phrase of the refusal)."""
    f = folder
    files = [
        (audiogen.noise_file(f / "noise.mp3", 20000), None, "not an audio file"),
        (audiogen.empty_file(f / "empty.wav"), None, "size must be"),
        (audiogen.text_file(f / "notes.mp3"), None, "not an audio file"),
        (f / "picture.mp3", None, "not an audio file"),
        (audiogen.wav_claiming(f / "claims-2gb.wav", 2_000_000_000), None, "truncated"),
        (audiogen.truncated(f / "cut.flac", audiogen.music(20, SR, seed=31), SR, 0.5), None, "truncated"),
        (audiogen.write(f / "silence.wav", np.zeros(10 * SR, np.float32), SR), None, "added"),
        (audiogen.write(f / "blip.wav", audiogen.music(0.2, SR, seed=32), SR), None, "minimum"),
        (audiogen.write(f / "phone.wav", audiogen.music(12, 8000, seed=33), 8000), None, "added"),
        (_multichannel(f / "hires.wav", 2, 96000, 8, "PCM_24"), None, "added"),
        (_multichannel(f / "surround.wav", 6, 48000, 8, "FLOAT"), None, "added"),
        (_multichannel(f / "wide.wav", 8, 384000, 1, "PCM_16"), None, "sample rate"),
        (audiogen.write(f / "named.wav", audiogen.music(12, SR, seed=34), SR), '<img src=x onerror=alert(1)>.wav', "added"),
        (audiogen.write(f / "long-name.wav", audiogen.music(12, SR, seed=35), SR), "n" * 196 + ".wav", "added"),
        (audiogen.write(f / "up.wav", audiogen.music(12, SR, seed=36), SR), "../../../etc/passwd.wav", "added"),
        (audiogen.write(f / "page.wav", audiogen.music(12, SR, seed=37), SR), "page.html", "added"),
        (audiogen.write(f / "too-long.wav", audiogen.music(MAX_DURATION + 20, 8000, seed=38), 8000), None, "the limit is"),
        (audiogen.lying_m4a(f / "lying.m4a", audiogen.music(MAX_DURATION + 60, 8000, seed=39), 8000, 30), None,
         "longer than its header says"),
    ]
    (f / "picture.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    return files


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is needed to make the lying M4A (CI installs it)")
    return _odd_files(tmp_path_factory.mktemp("odd"))


def test_odd_files_are_added_or_refused_with_a_reason_and_leave_nothing_behind(served, odd_files):
    before = served.total()
    added = []
    for path, name, expected in odd_files:
        name = name or path.name
        outcomes = {}
        for kind in ("tracks", "searches"):
            key = served.upload(path, name)
            if not isinstance(key, str):  # refused when the upload was asked for
                outcomes[kind] = ("refused", key.json()["message"])
                continue
            status = served.finish(served.start(kind, key))
            outcomes[kind] = (status["status"], status["error"] or "")
        if expected == "added":
            assert outcomes["tracks"][0] == "finished" and outcomes["searches"][0] == "finished", (name, outcomes)
            added.append(name)
        else:
            for kind, (state, message) in outcomes.items():
                assert state in ("refused", "failed") and expected in message, (name, kind, outcomes)
                if state == "failed":
                    assert name in message, (name, message)  # the user's name for the file, not our key
    assert served.total() == before + len(added)
    assert served.stored_files("uploads") == []  # every upload was used once and removed
    assert len(served.stored_files("audio")) == served.total()  # one file per track, no orphan
    listed = served.call("GET", "/api/v1/tracks?limit=100").json()["tracks"]
    assert {t["file"] for t in listed} >= set(added)
    page = served.call("GET", "/admin/", admin=True).text
    assert "<img src=x" not in page and "&lt;img src=x" in page  # shown, never run
    html_named = next(t for t in listed if t["file"] == "page.html")
    played = served.call("GET", "/api/v1/tracks/" + html_named["track_id"]).json()["playback_url"]
    audio = served.http.get(served.base + played, timeout=30)
    assert audio.headers["Content-Type"].startswith("audio/") and "sandbox" in audio.headers["Content-Security-Policy"]
    assert audio.headers["X-Content-Type-Options"] == "nosniff"


def test_an_upload_url_is_used_once(served, tmp_path):
    path = audiogen.write(tmp_path / "once.wav", audiogen.music(8, SR, seed=40), SR)
    data = path.read_bytes()
    target = served.call("POST", "/api/v1/uploads", json={"filename": "once.wav", "content_type": "audio/wav",
                                                         "size": len(data)}).json()
    first = served.http.put(target["upload_url"], data=data, headers=target["headers"], timeout=30)
    replay = served.http.put(target["upload_url"], data=data, headers=target["headers"], timeout=30)
    assert first.status_code == 200 and replay.status_code == 403 and "already used" in replay.json()["message"]
    status = served.finish(served.start("searches", target["key"]))
    assert status["status"] == "finished"
    again = served.call("POST", "/api/v1/searches", json={"key": target["key"]})
    assert again.status_code == 400 and "already used" in again.json()["message"]
    after = served.http.put(target["upload_url"], data=data, headers=target["headers"], timeout=30)
    assert after.status_code == 403 and served.stored_files("uploads") == []


def test_fifty_users_uploading_and_searching_at_once(served, tmp_path):
    clips = [audiogen.write(tmp_path / f"clip{i}.wav", audiogen.music(6, SR, seed=100 + i), SR) for i in range(5)]

    def one_user(i):
        key = served.upload(clips[i % len(clips)], f"user{i}.wav")
        assert isinstance(key, str), key.text
        return served.finish(served.start("searches", key, limit=5), timeout=300)

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(one_user, range(50)))
    assert [o["status"] for o in outcomes] == ["finished"] * 50
    assert all(o["error"] is None for o in outcomes)
    assert served.stored_files("uploads") == []
