"""The JSON API under /api/v1: the upload/search flow with a real worker, tracks, admin auth, errors, OpenAPI."""

import io
import re

import pytest

import audiogen
from audiofind.app import create_app, get_catalog, services
from audiofind.jobs.worker import run_worker

pytestmark = pytest.mark.usefixtures("empty_queue")

SR = 32000


@pytest.fixture
def catalog(app, audio_dir):
    catalog = get_catalog(app)
    for seed, album in enumerate(["Light", "Light", "Dark"]):
        path = audio_dir / f"piece{seed}.wav"
        audiogen.write(path, audiogen.music(20, SR, seed=seed, bpm=100 + 10 * seed), SR, "WAV")
        catalog.ingest(path, metadata={"title": f"Piece {seed}", "album": album})
    return catalog


def ids(catalog):
    return {t["title"]: t["track_id"] for t in catalog.list(0, 50)}


def upload(client, path, content_type="audio/wav"):
    data = path.read_bytes()
    answer = client.post("/api/v1/uploads", json={"filename": path.name, "content_type": content_type, "size": len(data)})
    assert answer.status_code == 201, answer.json
    target = answer.json
    assert set(target) >= {"upload_url", "method", "headers", "key"}
    assert target["upload_url"].startswith("http://localhost/")
    put = client.open(target["upload_url"], method=target["method"], headers=target["headers"], data=data)
    assert put.status_code < 300, put.data
    return target["key"]


def test_upload_search_poll_results(app, client, catalog, audio_dir):
    reference = audio_dir / "my reference.wav"
    audiogen.write(reference, audiogen.music(20, SR, seed=2, bpm=120), SR, "WAV")
    key = upload(client, reference)

    started = client.post("/api/v1/searches", json={"key": key, "limit": 2, "filters": {"min_duration": 5}})
    assert started.status_code == 202
    status_url = started.json["status_url"]
    assert started.headers["Location"] == status_url

    queued = client.get(status_url).json
    assert queued["status"] == "queued" and queued["results"] == [] and queued["error"] is None

    run_worker(services(app), burst=True)
    done = client.get(status_url).json
    assert done["status"] == "finished" and done["stage"] == "done" and done["error"] is None
    assert len(done["results"]) == 2
    best = done["results"][0]
    assert best["title"] == "Piece 2" and best["rank"] == 1 and best["score"] > done["results"][1]["score"]
    for field in ("track_id", "file", "title", "score", "match_start", "match_end", "duration", "playback_url"):
        assert field in best
    assert "storage_key" not in best and "envelope" not in best
    assert 0 <= best["match_start"] < best["match_end"] <= 20.5


def test_search_keys_are_single_use_and_must_be_ours(app, client, catalog, audio_dir):
    reference = audio_dir / "ref.wav"
    audiogen.write(reference, audiogen.music(12, SR, seed=5), SR, "WAV")
    key = upload(client, reference)
    assert client.post("/api/v1/searches", json={"key": key}).status_code == 202
    again = client.post("/api/v1/searches", json={"key": key})
    assert again.status_code == 400 and "already used" in again.json["message"]
    # a catalog track's storage key is not an upload: a search must never delete catalog audio
    stored = catalog.list(0, 1)[0]["storage_key"]
    theirs = client.post("/api/v1/searches", json={"key": stored})
    assert theirs.status_code == 400 and theirs.json["error"] == "bad_key"


def test_uploaded_but_not_sent_is_a_clear_error(client, redis_url):
    target = client.post("/api/v1/uploads", json={"filename": "a.mp3", "content_type": "audio/mpeg", "size": 10}).json
    answer = client.post("/api/v1/searches", json={"key": target["key"]})
    assert answer.status_code == 400 and "a.mp3 has not been uploaded" in answer.json["message"]


def test_upload_refuses_too_large_and_not_audio(app, client, redis_url):
    app.config["MAX_UPLOAD_BYTES"] = 1000
    big = client.post("/api/v1/uploads", json={"filename": "big.wav", "content_type": "audio/wav", "size": 5000})
    assert big.status_code == 413 and big.json["error"] == "too_large" and "big.wav" in big.json["message"]
    pdf = client.post("/api/v1/uploads", json={"filename": "cv.pdf", "content_type": "application/pdf", "size": 10})
    assert pdf.status_code == 422 and pdf.json["error"] == "not_audio" and "cv.pdf" in pdf.json["message"]
    missing = client.post("/api/v1/uploads", json={"content_type": "audio/wav", "size": 10})
    assert missing.status_code == 400 and "filename" in missing.json["message"]
    not_json = client.post("/api/v1/uploads", data="x")
    assert not_json.status_code == 400 and "JSON" in not_json.json["message"]


def test_search_job_for_a_file_that_is_not_audio_fails_with_the_reason(app, client, catalog, audio_dir):
    noise = audio_dir / "noise.wav"
    audiogen.noise_file(noise)
    key = upload(client, noise)
    status_url = client.post("/api/v1/searches", json={"key": key}).json["status_url"]
    run_worker(services(app), burst=True)
    failed = client.get(status_url).json
    assert failed["status"] == "failed" and "noise.wav" in failed["error"]


def test_search_options_are_validated(client, redis_url):
    for body, message in [
        ({"key": "k", "limit": 0}, "limit must be between"),
        ({"key": "k", "mode": "fuzzy"}, "mode must be one of"),
        ({"key": "k", "filters": {"colour": "red"}}, "unknown filter 'colour'"),
        ({"key": "k", "filters": {"min_bpm": 150, "max_bpm": 90}}, "min_bpm is larger than max_bpm"),
        ({"key": "k", "start": 10, "end": 5}, "end must be after start"),
        ({"limit": 3}, "key is required"),
    ]:
        answer = client.post("/api/v1/searches", json=body)
        assert answer.status_code == 400 and message in answer.json["message"], (body, answer.json)


def test_unknown_search_is_404(client, redis_url):
    answer = client.get("/api/v1/searches/nope")
    assert answer.status_code == 404 and answer.json["error"] == "not_found"


def test_tracks_list_get_similar(client, catalog):
    listing = client.get("/api/v1/tracks?limit=2").json
    assert listing["total"] == 3 and len(listing["tracks"]) == 2 and listing["limit"] == 2
    found = client.get("/api/v1/tracks?q=piece 1").json
    assert found["tracks"][0]["title"] == "Piece 1" and found["total"] == 1  # what matched, not the catalog
    titles, cursor = [], listing["next_cursor"]
    titles += [t["title"] for t in listing["tracks"]]
    while cursor:
        page = client.get(f"/api/v1/tracks?limit=2&cursor={cursor}").json
        titles, cursor = titles + [t["title"] for t in page["tracks"]], page["next_cursor"]
    assert titles == ["Piece 2", "Piece 1", "Piece 0"]
    assert client.get("/api/v1/tracks?cursor=abc").status_code == 400
    assert client.get("/api/v1/tracks?cursor=5&offset=2").status_code == 400
    piece0 = ids(catalog)["Piece 0"]
    one = client.get(f"/api/v1/tracks/{piece0}").json
    assert one["title"] == "Piece 0" and one["album"] == "Light" and one["playback_url"]
    similar = client.get(f"/api/v1/tracks/{piece0}/similar?limit=5").json
    assert piece0 not in [r["track_id"] for r in similar["results"]] and len(similar["results"]) == 2
    light = client.get(f"/api/v1/tracks/{piece0}/similar?album=Light").json["results"]
    assert [r["title"] for r in light] == ["Piece 1"]
    assert client.get("/api/v1/tracks/nope").status_code == 404
    assert client.get("/api/v1/tracks/nope/similar").json["error"] == "not_found"
    assert client.get(f"/api/v1/tracks/{piece0}/similar?max_duration=abc").status_code == 400


def test_admin_delete_and_ingest_need_the_token(app, client, catalog, audio_dir):
    app.config["ADMIN_TOKEN"] = "s3cret"
    piece1 = ids(catalog)["Piece 1"]
    assert client.delete(f"/api/v1/tracks/{piece1}").status_code == 401
    wrong = client.delete(f"/api/v1/tracks/{piece1}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json["error"] == "forbidden"
    auth = {"Authorization": "Bearer s3cret"}
    assert client.delete(f"/api/v1/tracks/{piece1}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/tracks/{piece1}").status_code == 404
    assert client.delete(f"/api/v1/tracks/{piece1}", headers=auth).status_code == 404

    new = audio_dir / "new.wav"
    audiogen.write(new, audiogen.music(15, SR, seed=9), SR, "WAV")
    key = upload(client, new)
    assert client.post("/api/v1/tracks", json={"key": key}).status_code == 401
    started = client.post("/api/v1/tracks", json={"key": key, "metadata": {"title": "Fresh", "album": "New"}}, headers=auth)
    assert started.status_code == 202
    run_worker(services(app), burst=True)
    assert client.get(started.json["status_url"]).status_code == 401
    outcome = client.get(started.json["status_url"], headers=auth).json
    assert outcome["status"] == "finished" and outcome["result"]["status"] == "added" and outcome["file"] == "new.wav"
    track = client.get(f"/api/v1/tracks/{outcome['result']['track_id']}").json
    assert track["title"] == "Fresh" and track["album"] == "New"
    storage = get_catalog(app).storage
    stored = get_catalog(app).get(outcome["result"]["track_id"])["storage_key"]
    assert not storage.exists(key) and storage.exists(stored)  # the upload became a catalog file of its own
    assert not stored.startswith(app.config["UPLOAD_PREFIX"])


def test_admin_without_token_is_open_only_from_this_machine(app, client, catalog):
    piece2 = ids(catalog)["Piece 2"]
    remote = client.delete(f"/api/v1/tracks/{piece2}", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403
    proxied = client.delete(f"/api/v1/tracks/{piece2}", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403
    assert client.delete(f"/api/v1/tracks/{piece2}").status_code == 204


def test_openapi_document_lists_every_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.") and doc["servers"][0]["url"] == "http://localhost/api/v1"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = rule.rule[len("/api/v1"):].replace("<", "{").replace(">", "}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
    assert doc["paths"]["/searches"]["post"]["responses"]["202"]


def test_unknown_api_route_and_method_are_json(client):
    assert client.get("/api/v1/nothing").json["error"] == "not_found"
    answer = client.put("/api/v1/tracks")
    assert answer.status_code == 405 and answer.json["error"] == "method_not_allowed"


def test_queue_down_is_503_with_a_fix(app_config):
    client = create_app({**app_config, "REDIS_URL": ""}).test_client()
    answer = client.post("/api/v1/uploads", json={"filename": "a.wav", "content_type": "audio/wav", "size": 10})
    assert answer.status_code == 503 and "AUDIOFIND_REDIS_URL" in answer.json["message"]


def test_metadata_csv_through_admin_page(app, client, catalog):
    csv = b"file,title,artist\npiece0.wav,Dawn,Someone\nmissing.wav,X,Y\n"
    answer = client.post("/admin/metadata", data={"csv": (io.BytesIO(csv), "meta.csv")},
                         content_type="multipart/form-data", headers={"HX-Request": "true"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 202 and "Importing meta.csv" in html and "hx-get" in html  # a job applies it
    run_worker(services(app), burst=True)
    html = client.get(re.search(r'hx-get="([^"]+)"', html).group(1), headers={"HX-Request": "true"}).get_data(True)
    assert "updated 1 track" in html and "missing.wav" in html and "hx-get" not in html
    assert any(t["title"] == "Dawn" and t["artist"] == "Someone" for t in catalog.list(0, 10))
    assert not any(services(app).storage.list_keys(app.config["UPLOAD_PREFIX"]))  # the CSV is not kept


def test_search_of_a_file_that_is_too_long_fails_with_the_limit(app, client, catalog, audio_dir):
    app.config["MAX_DURATION"] = 10.0
    long = audio_dir / "long take.wav"
    audiogen.write(long, audiogen.music(14, SR, seed=6), SR, "WAV")
    status_url = client.post("/api/v1/searches", json={"key": upload(client, long)}).json["status_url"]
    run_worker(services(app), burst=True)
    failed = client.get(status_url).json
    assert failed["status"] == "failed"
    assert failed["error"].startswith("long take.wav: is ") and "the limit is" in failed["error"]
