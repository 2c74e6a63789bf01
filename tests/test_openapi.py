"""The generated OpenAPI document against the app: a valid OpenAPI 3.1 document, and every status it documents for a
route is answered by a real request to that route (with a real worker, Redis, storage and index)."""

import re
import tomllib
from pathlib import Path

import pytest
from openapi_spec_validator import validate

import audiogen
from audiofind.app import create_app, get_catalog, services
from audiofind.jobs.worker import run_worker

pytestmark = pytest.mark.usefixtures("empty_queue")

SR = 16000
ADMIN = {"Authorization": "Bearer t"}
WRONG = {"Authorization": "Bearer wrong"}


def documented(client):
    doc = client.get("/api/v1/openapi.json").json
    return doc, {(path, method.upper(), int(status)) for path, ops in doc["paths"].items()
                 for method, op in ops.items() for status in op["responses"]}


def test_the_document_is_valid_openapi(client):
    doc, _ = documented(client)
    validate(doc)
    assert doc["paths"]["/searches"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewSearch"}
    job = doc["components"]["schemas"]["SearchStatus"]["properties"]["status"]
    assert set(job["enum"]) >= {"queued", "started", "finished", "failed", "stopped", "canceled"}
    assert doc["paths"]["/tracks/{track_id}"]["delete"]["security"] == [{"bearer": []}]


@pytest.fixture
def catalog(app, audio_dir):
    catalog = get_catalog(app)
    path = audiogen.write(audio_dir / "one.wav", audiogen.music(12, SR, seed=1), SR)
    catalog.ingest(path, metadata={"title": "One", "album": "A"})
    audiogen.write(audio_dir / "two.wav", audiogen.music(12, SR, seed=2), SR)
    return catalog


def _upload(client, path, content_type="audio/wav"):
    data = path.read_bytes()
    target = client.post("/api/v1/uploads", json={"filename": path.name, "content_type": content_type,
                                                  "size": len(data)}).json
    assert client.open(target["upload_url"], method=target["method"], headers=target["headers"], data=data).status_code == 200
    return target["key"]


def test_every_documented_status_is_answered(app, app_config, client, catalog, audio_dir):
    app.config["ADMIN_TOKEN"] = "t"
    one = catalog.list(0, 1)[0]["track_id"]
    two = audio_dir / "two.wav"
    search = client.post("/api/v1/searches", json={"key": _upload(client, two), "limit": 2}).json["status_url"]
    ingest = client.post("/api/v1/tracks", json={"key": _upload(client, two), "metadata": {"title": "Two"}},
                         headers=ADMIN).json["status_url"]
    run_worker(services(app), burst=True)

    def too_large(kind):
        key = _upload(client, two)
        app.config["MAX_UPLOAD_BYTES"] = 1000  # lowered after the upload: the claim finds it too large
        try:
            return client.post(f"/api/v1/{kind}", json={"key": key}, headers=ADMIN)
        finally:
            app.config["MAX_UPLOAD_BYTES"] = app_config.get("MAX_UPLOAD_BYTES", 200 * 2**20)

    down = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0", "ADMIN_TOKEN": "t",
                       "RATELIMIT_STORAGE_URI": "memory://"}).test_client()
    limited = create_app({**app_config, "RATELIMIT_STORAGE_URI": "memory://", "RATE_LIMIT_UPLOADS": "1 per minute",
                          "RATE_LIMIT_SEARCHES": "1 per minute", "RATE_LIMIT_SIMILAR": "1 per minute"}).test_client()

    def twice(send):
        send(limited)
        return send(limited)

    wav = {"filename": "a.wav", "content_type": "audio/wav", "size": 100}
    kept = client.post("/api/v1/shortlists", json={"name": "Kept", "track_ids": [one]}).json
    gone = client.post("/api/v1/shortlists", json={"name": "Gone"}).json["shortlist_id"]
    sl = f"/api/v1/shortlists/{kept['shortlist_id']}"
    requests = {
        ("/openapi.json", "GET", 200): lambda: client.get("/api/v1/openapi.json"),
        ("/uploads", "POST", 201): lambda: client.post("/api/v1/uploads", json=wav),
        ("/uploads", "POST", 400): lambda: client.post("/api/v1/uploads", json={**wav, "size": "big"}),
        ("/uploads", "POST", 413): lambda: client.post("/api/v1/uploads", json={**wav, "size": 10**12}),
        ("/uploads", "POST", 422): lambda: client.post("/api/v1/uploads", json={**wav, "filename": "cv.pdf",
                                                                                "content_type": "application/pdf"}),
        ("/uploads", "POST", 429): lambda: twice(lambda c: c.post("/api/v1/uploads", json=wav)),
        ("/uploads", "POST", 503): lambda: down.post("/api/v1/uploads", json=wav),
        ("/searches", "POST", 202): lambda: client.post("/api/v1/searches", json={"key": _upload(client, two)}),
        ("/searches", "POST", 400): lambda: client.post("/api/v1/searches", json={"key": "k", "mode": "fuzzy"}),
        ("/searches", "POST", 413): lambda: too_large("searches"),
        ("/searches", "POST", 429): lambda: twice(lambda c: c.post("/api/v1/searches", json={"key": "k"})),
        ("/searches", "POST", 503): lambda: down.post("/api/v1/searches", json={"key": "k"}),
        ("/searches/{job_id}", "GET", 200): lambda: client.get(search),
        ("/searches/{job_id}", "GET", 404): lambda: client.get("/api/v1/searches/nope"),
        ("/searches/{job_id}", "GET", 503): lambda: down.get(search),
        ("/tracks", "GET", 200): lambda: client.get("/api/v1/tracks?limit=1"),
        ("/tracks", "GET", 400): lambda: client.get("/api/v1/tracks?limit=0"),
        ("/tracks", "POST", 202): lambda: client.post("/api/v1/tracks", json={"key": _upload(client, two)},
                                                      headers=ADMIN),
        ("/tracks", "POST", 400): lambda: client.post("/api/v1/tracks", json={"key": "k", "metadata": ["x"]},
                                                      headers=ADMIN),
        ("/tracks", "POST", 401): lambda: client.post("/api/v1/tracks", json={"key": "k"}),
        ("/tracks", "POST", 403): lambda: client.post("/api/v1/tracks", json={"key": "k"}, headers=WRONG),
        ("/tracks", "POST", 413): lambda: too_large("tracks"),
        ("/tracks", "POST", 503): lambda: down.post("/api/v1/tracks", json={"key": "k"}, headers=ADMIN),
        ("/tracks/{track_id}", "GET", 200): lambda: client.get(f"/api/v1/tracks/{one}"),
        ("/tracks/{track_id}", "GET", 404): lambda: client.get("/api/v1/tracks/nope"),
        ("/tracks/{track_id}/similar", "GET", 200): lambda: client.get(f"/api/v1/tracks/{one}/similar?tags=x,y"),
        ("/tracks/{track_id}/similar", "GET", 400): lambda: client.get(f"/api/v1/tracks/{one}/similar?min_bpm=9&max_bpm=1"),
        ("/tracks/{track_id}/similar", "GET", 404): lambda: client.get("/api/v1/tracks/nope/similar"),
        ("/tracks/{track_id}/similar", "GET", 429): lambda: twice(lambda c: c.get("/api/v1/tracks/nope/similar")),
        ("/tracks/{track_id}", "DELETE", 401): lambda: client.delete(f"/api/v1/tracks/{one}"),
        ("/tracks/{track_id}", "DELETE", 403): lambda: client.delete(f"/api/v1/tracks/{one}", headers=WRONG),
        ("/tracks/{track_id}", "DELETE", 404): lambda: client.delete("/api/v1/tracks/nope", headers=ADMIN),
        ("/ingests/{job_id}", "GET", 200): lambda: client.get(ingest, headers=ADMIN),
        ("/ingests/{job_id}", "GET", 401): lambda: client.get(ingest),
        ("/ingests/{job_id}", "GET", 403): lambda: client.get(ingest, headers=WRONG),
        ("/ingests/{job_id}", "GET", 404): lambda: client.get("/api/v1/ingests/nope", headers=ADMIN),
        ("/ingests/{job_id}", "GET", 503): lambda: down.get(ingest, headers=ADMIN),
        ("/shortlists", "POST", 201): lambda: client.post("/api/v1/shortlists", json={"name": "Cue 3"}),
        ("/shortlists", "POST", 400): lambda: client.post("/api/v1/shortlists", json={"name": "x", "track_ids": ["nope"]}),
        ("/shortlists", "GET", 200): lambda: client.get("/api/v1/shortlists"),
        ("/shortlists", "GET", 400): lambda: client.get("/api/v1/shortlists", headers={"X-Shortlist-Owner": "short"}),
        ("/shortlists/{shortlist_id}", "GET", 200): lambda: client.get(sl),
        ("/shortlists/{shortlist_id}", "GET", 404): lambda: client.get("/api/v1/shortlists/nope"),
        ("/shortlists/{shortlist_id}", "PATCH", 200): lambda: client.patch(sl, json={"name": "Kept 2"}),
        ("/shortlists/{shortlist_id}", "PATCH", 400): lambda: client.patch(sl, json={"name": ""}),
        ("/shortlists/{shortlist_id}", "PATCH", 404): lambda: client.patch("/api/v1/shortlists/nope", json={"name": "x"}),
        ("/shortlists/{shortlist_id}", "DELETE", 204): lambda: client.delete(f"/api/v1/shortlists/{gone}"),
        ("/shortlists/{shortlist_id}", "DELETE", 404): lambda: client.delete(f"/api/v1/shortlists/{gone}"),
        ("/shortlists/{shortlist_id}/items", "POST", 200): lambda: client.post(sl + "/items", json={"track_id": one}),
        ("/shortlists/{shortlist_id}/items", "POST", 400): lambda: client.post(sl + "/items", json={"note": "x"}),
        ("/shortlists/{shortlist_id}/items", "POST", 404): lambda: client.post(sl + "/items", json={"track_id": "nope"}),
        ("/shortlists/{shortlist_id}/items/{track_id}", "PATCH", 200): lambda: client.patch(f"{sl}/items/{one}",
                                                                                           json={"note": "yes"}),
        ("/shortlists/{shortlist_id}/items/{track_id}", "PATCH", 400): lambda: client.patch(f"{sl}/items/{one}",
                                                                                           json={"note": "x" * 3000}),
        ("/shortlists/{shortlist_id}/items/{track_id}", "PATCH", 404): lambda: client.patch(f"{sl}/items/nope",
                                                                                           json={"note": "x"}),
        ("/shortlists/{shortlist_id}/order", "PUT", 200): lambda: client.put(sl + "/order", json={"track_ids": [one]}),
        ("/shortlists/{shortlist_id}/order", "PUT", 400): lambda: client.put(sl + "/order", json={"track_ids": []}),
        ("/shortlists/{shortlist_id}/order", "PUT", 404): lambda: client.put("/api/v1/shortlists/nope/order",
                                                                             json={"track_ids": []}),
        ("/shortlists/{shortlist_id}/export.csv", "GET", 200): lambda: client.get(sl + "/export.csv"),
        ("/shortlists/{shortlist_id}/export.csv", "GET", 404): lambda: client.get("/api/v1/shortlists/nope/export.csv"),
        ("/shortlists/{shortlist_id}/export.m3u8", "GET", 200): lambda: client.get(sl + "/export.m3u8"),
        ("/shortlists/{shortlist_id}/export.m3u8", "GET", 404): lambda: client.get("/api/v1/shortlists/nope/export.m3u8"),
        ("/shared/{share_id}", "GET", 200): lambda: app.test_client().get(f"/api/v1/shared/{kept['share_id']}"),
        ("/shared/{share_id}", "GET", 404): lambda: client.get(f"/api/v1/shared/{kept['shortlist_id']}"),
        ("/shortlists/{shortlist_id}/items/{track_id}", "DELETE", 200): lambda: client.delete(f"{sl}/items/{one}"),
        ("/shortlists/{shortlist_id}/items/{track_id}", "DELETE", 404): lambda: client.delete(f"{sl}/items/{one}"),
        # last: it removes the track the others use
        ("/tracks/{track_id}", "DELETE", 204): lambda: client.delete(f"/api/v1/tracks/{one}", headers=ADMIN),
    }
    doc, statuses = documented(client)
    assert set(requests) == statuses  # each documented status has a request here, and nothing else is tried
    for (path, method, status), send in requests.items():
        answer = send()
        assert answer.status_code == status, (path, method, status, answer.status_code, answer.get_data(True)[:300])
        if status >= 400:
            assert set(answer.json) == {"error", "message"} and len(answer.json["message"]) > 5, answer.json
    finished = client.get(search).json
    assert finished["status"] == "finished" and finished["results"]  # the 200s above carried real results
    assert client.get(ingest, headers=ADMIN).json["result"]["status"] in ("added", "duplicate")


def test_the_served_htmx_is_the_pinned_version(client):
    """pyproject.toml pins the package that ships htmx to one exact version; the page gets that htmx."""
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    pin = next(d for d in project["project"]["dependencies"] if d.startswith("django-js-lib-htmx"))
    version = re.fullmatch(r"django-js-lib-htmx==(\d+\.\d+\.\d+)\.\d+", pin).group(1)  # htmx's version, packaged once
    served = client.get("/assets/htmx.min.js").get_data(as_text=True)
    assert f'version:"{version}"' in served
