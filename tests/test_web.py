"""The pages and their htmx partials, through the Flask test client, with real Redis and a real RQ worker."""

import re

import pytest

import audiogen
from audiofind.app import get_catalog, services
from audiofind.jobs.worker import run_worker

pytestmark = pytest.mark.usefixtures("empty_queue")

SR = 32000
HX = {"HX-Request": "true"}


@pytest.fixture
def catalog(app, audio_dir):
    """Three 20-second pieces in the catalog, with titles and albums."""
    catalog = get_catalog(app)
    for seed, (title, album) in enumerate([("Morning", "Light"), ("Noon", "Light"), ("Night", "Dark")]):
        path = audio_dir / f"piece{seed}.wav"
        audiogen.write(path, audiogen.music(20, SR, seed=seed, bpm=100 + 10 * seed), SR, "WAV")
        catalog.ingest(path, metadata={"title": title, "album": album, "tags": "Synth"})
    return catalog


def track_id(catalog, title):
    return next(t["track_id"] for t in catalog.list(0, 50) if t["title"] == title)


def upload(client, path, content_type="audio/wav"):
    data = path.read_bytes()
    answer = client.post("/api/v1/uploads", json={"filename": path.name, "content_type": content_type, "size": len(data)})
    assert answer.status_code == 201, answer.json
    target = answer.json
    put = client.open(target["upload_url"], method=target["method"], headers=target["headers"], data=data)
    assert put.status_code < 300, put.data
    return target["key"]


def poll_url(html):
    return re.search(r'hx-get="([^"]+)"', html).group(1)


def text(response):
    return response.get_data(as_text=True)


# -- the search page


def test_search_page_has_drop_zone_filters_and_htmx_from_the_package(client):
    page = client.get("/")
    html = text(page)
    assert page.status_code == 200
    assert "Drop an audio file here" in html and 'type="file"' in html
    for field in ("album", "tags", "min_duration", "max_duration", "min_bpm", "max_bpm", "mode", "per_album",
                  "collapse_versions", "limit"):
        assert f'name="{field}"' in html
    assert "/assets/htmx.min.js" in html and "unpkg" not in html and "cdn" not in html.lower()
    assert page.headers["Vary"] == "HX-Request"
    htmx = client.get("/assets/htmx.min.js")
    assert htmx.status_code == 200 and b"htmx" in htmx.data[:2000] and "javascript" in htmx.content_type


def test_search_page_partial_for_htmx_is_only_the_form(client):
    html = text(client.get("/", headers=HX))
    assert html.lstrip().startswith("<form") and "<html" not in html


def test_public_pages_show_no_admin_actions(app, client, catalog):
    app.config["ADMIN_TOKEN"] = "secret"  # a visitor who is not signed in
    for url in ("/", f"/tracks/{track_id(catalog, 'Noon')}"):
        html = text(client.get(url))
        assert "/admin" not in html and "Remove" not in html and "hx-delete" not in html


def test_search_flow_upload_status_partial_then_results(app, client, catalog, audio_dir):
    reference = audio_dir / "reference.wav"
    audiogen.write(reference, audiogen.music(20, SR, seed=1, bpm=110), SR, "WAV")  # the same piece as "Noon"
    key = upload(client, reference)

    started = client.post("/searches", data={"key": key, "limit": "10", "mode": "track"}, headers=HX)
    html = text(started)
    assert started.status_code == 202
    assert 'id="status"' in html and 'hx-trigger="load delay:500ms"' in html and "Waiting for a worker" in html

    status_url = poll_url(html)
    running = text(client.get(status_url, headers=HX))
    assert "hx-get" in running  # still polling while the job waits

    run_worker(services(app), burst=True)
    done = client.get(status_url, headers=HX)
    html = text(done)
    assert done.status_code == 200 and done.headers["Vary"] == "HX-Request"
    assert "hx-trigger" not in html  # the partial stops polling once the job is done
    assert 'hx-swap-oob="true"' in html and 'id="results"' in html
    titles = re.findall(r'<h3><a href="/tracks/\w+">([^<]+)</a>', html)
    assert titles[0] == "Noon" and set(titles) == {"Morning", "Noon", "Night"}
    assert "match" in html and "BPM" in html and "Synth" in html
    assert re.search(r'<audio controls preload="none" src="/storage/audio/[^"]+#t=\d', html)
    assert '<rect class="match"' in html and '<path class="wave"' in html
    assert "More like this" in html and "Results are ready" in html
    assert not get_catalog(app).storage.exists(key)  # the reference is not kept

    full = client.get(status_url)  # the same URL as a page (a reload) shows the results in place
    assert full.status_code == 200 and "<html" in text(full) and "Noon" in text(full) and "hx-swap-oob" not in text(full)


def test_search_with_filters_only_returns_matching_tracks(app, client, catalog, audio_dir):
    reference = audio_dir / "ref.wav"
    audiogen.write(reference, audiogen.music(15, SR, seed=7), SR, "WAV")
    key = upload(client, reference)
    form = {"key": key, "album": "Light", "tags": "Synth", "min_duration": "10", "max_duration": "30",
            "collapse_versions": ["0", "1"], "per_album": "5"}
    html = text(client.post("/searches", data=form, headers=HX))
    run_worker(services(app), burst=True)
    html = text(client.get(poll_url(html), headers=HX))
    titles = re.findall(r'<h3><a href="/tracks/\w+">([^<]+)</a>', html)
    assert sorted(titles) == ["Morning", "Noon"]


def test_not_audio_fails_the_job_with_a_clear_message_and_a_toast(app, client, catalog, audio_dir):
    fake = audio_dir / "notes.mp3"
    audiogen.text_file(fake)
    key = upload(client, fake, "audio/mpeg")
    html = text(client.post("/searches", data={"key": key}, headers=HX))
    run_worker(services(app), burst=True)
    failed = text(client.get(poll_url(html), headers=HX))
    assert 'data-state="failed"' in failed and "hx-trigger" not in failed
    assert "notes.mp3" in failed and 'class="toast error"' in failed
    assert not get_catalog(app).storage.exists(key)


def test_search_without_an_upload_says_so(client):
    answer = client.post("/searches", data={"key": "audio/nothing.wav"}, headers=HX)
    html = text(answer)
    assert answer.status_code == 400
    assert "upload the file again" in html and 'class="toast error"' in html and 'id="status"' in html


def test_bad_filter_value_is_reported(client, redis_url):
    answer = client.post("/searches", data={"key": "x", "min_bpm": "fast"}, headers=HX)
    assert answer.status_code == 400 and "min_bpm must be a number" in text(answer)


def test_unknown_search_job(client):
    assert client.get("/searches/nope").status_code == 404
    partial = client.get("/searches/nope", headers=HX)
    assert partial.status_code == 404 and "expired" in text(partial)


# -- more like this, track page


def test_more_like_this_partial_excludes_the_track_itself(client, catalog):
    noon = track_id(catalog, "Noon")
    answer = client.get(f"/tracks/{noon}/similar", headers=HX)
    html = text(answer)
    assert answer.status_code == 200 and answer.headers["Vary"] == "HX-Request"
    assert "<html" not in html and "More like Noon" in html
    titles = re.findall(r'<h3><a href="/tracks/\w+">([^<]+)</a>', html)
    assert sorted(titles) == ["Morning", "Night"]


def test_more_like_this_honours_filters_and_renders_as_page(client, catalog):
    noon = track_id(catalog, "Noon")
    html = text(client.get(f"/tracks/{noon}/similar?album=Dark"))
    assert "<html" in html
    assert re.findall(r'<h3><a href="/tracks/\w+">([^<]+)</a>', html) == ["Night"]
    bad = client.get(f"/tracks/{noon}/similar?limit=0", headers=HX)
    assert bad.status_code == 400 and "limit must be between" in text(bad) and bad.headers["HX-Reswap"] == "none"


def test_track_page_shows_details_neighbours_and_widget_snippet(client, catalog):
    night = track_id(catalog, "Night")
    html = text(client.get(f"/tracks/{night}"))
    assert "<h1>Night</h1>" in html and "Dark" in html and "piece2.wav" in html and "0:20" in html
    assert "Sounds like this" in html and "Morning" in html
    assert f"/widgets/similar/{night}" in html and "<audio" in html
    assert client.get("/tracks/unknown").status_code == 404
    assert client.get("/tracks/unknown/similar", headers=HX).status_code == 404


def test_playback_url_serves_the_audio_with_ranges(client, catalog):
    html = text(client.get(f"/tracks/{track_id(catalog, 'Morning')}"))
    src = re.search(r'<audio controls preload="none" src="([^"#]+)', html).group(1)
    part = client.get(src, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100 and part.data[:4] == b"RIFF"


# -- widget


def test_widget_snippet_with_cors_for_configured_origins_only(app, client, catalog):
    app.config["WIDGET_ORIGINS"] = "https://partner.example, https://other.example"
    morning = track_id(catalog, "Morning")
    answer = client.get(f"/widgets/similar/{morning}?limit=2", headers={"Origin": "https://partner.example", **HX})
    html = text(answer)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "Sounds like Morning" in html and html.count("<li") == 2 and "http://localhost/tracks/" in html
    assert "<html" not in html
    stranger = client.get(f"/widgets/similar/{morning}", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    preflight = client.options(f"/widgets/similar/{morning}", headers={
        "Origin": "https://other.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "hx-request"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://other.example"
    assert "HX-Request" in preflight.headers["Access-Control-Allow-Headers"]
    assert client.get("/widgets/similar/unknown").status_code == 404


# -- errors


def test_unknown_page_is_a_friendly_404(client):
    answer = client.get("/no/such/page")
    assert answer.status_code == 404 and "Back to search" in text(answer)


# -- admin


def test_admin_login_with_token_then_pages_and_rq_dashboard(app, client, catalog):
    app.config["ADMIN_TOKEN"] = "s3cret"
    first = client.get("/admin/")
    assert first.status_code == 302 and "/admin/login" in first.headers["Location"]
    assert client.get("/admin/rq/").status_code == 302
    hx = client.get("/admin/tracks", headers=HX)
    assert hx.status_code == 401 and hx.headers["HX-Redirect"] == "/admin/login"
    wrong = client.post("/admin/login", data={"token": "guess"})
    assert wrong.status_code == 401 and "not right" in text(wrong)
    assert client.post("/admin/login?next=/admin/rq/", data={"token": "s3cret"}).headers["Location"] == "/admin/rq/"
    page = text(client.get("/admin/"))
    assert "Catalog admin" in page and "Drop audio files here" in page and "Import CSV" in page
    assert page.count('hx-delete="/admin/tracks/') == 3 and "Morning" in page
    dashboard = client.get("/admin/rq/")
    assert dashboard.status_code == 200 and "RQ" in text(dashboard)
    assert client.get("/admin/rq/0/data/queues.json").status_code == 200
    client.post("/admin/logout")
    assert client.get("/admin/").status_code == 302


def test_admin_without_token_only_from_this_machine(client, catalog):
    assert client.get("/admin/").status_code == 200
    remote = client.get("/admin/", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert remote.status_code == 403 and "AUDIOFIND_ADMIN_TOKEN" in text(remote)
    assert client.get("/admin/rq/", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 403


def test_admin_track_list_search_and_remove(app, client, catalog):
    listing = text(client.get("/admin/tracks?q=nig", headers=HX))
    assert "Night" in listing and "Morning" not in listing and "<html" not in listing
    night = track_id(catalog, "Night")
    refused = client.delete(f"/admin/tracks/{night}", headers={**HX, "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    removed = client.delete(f"/admin/tracks/{night}", headers=HX)
    assert removed.status_code == 200 and "Removed Night" in text(removed)
    assert get_catalog(app).get(night) is None
    again = client.delete(f"/admin/tracks/{night}", headers=HX)
    assert again.status_code == 404 and again.headers["HX-Reswap"] == "none"


def test_admin_ingest_row_polls_until_added(app, client, catalog, audio_dir):
    new = audio_dir / "dawn.wav"
    audiogen.write(new, audiogen.music(12, SR, seed=11), SR, "WAV")
    key = upload(client, new)
    row = client.post("/admin/ingests", data={"key": key, "filename": "dawn.wav"}, headers=HX)
    html = text(row)
    assert row.status_code == 202 and "<tr" in html and "dawn.wav" in html and "hx-trigger" in html
    run_worker(services(app), burst=True)
    finished = client.get(poll_url(html), headers=HX)
    done = text(finished)
    assert "added" in done and "hx-trigger" not in done
    assert finished.headers["HX-Trigger"] == "catalogChanged"  # the track list reloads
    assert any(t["file"] == "dawn.wav" for t in get_catalog(app).list(0, 10))
    # the same audio again is recognised
    key = upload(client, new)
    html = text(client.post("/admin/ingests", data={"key": key, "filename": "dawn copy.wav"}, headers=HX))
    run_worker(services(app), burst=True)
    assert "already in the catalog" in text(client.get(poll_url(html), headers=HX))
    bad = client.post("/admin/ingests", data={"key": "audio/forged.wav"}, headers=HX)
    assert bad.status_code == 400 and "upload the file again" in text(bad)


def test_admin_metadata_import_errors(app, client, catalog):
    import io

    missing = client.post("/admin/metadata", data={}, headers=HX)
    assert missing.status_code == 400 and "Choose a CSV" in text(missing)
    for data, reason in ((b"name,title\na,b\n", "no &#39;file&#39; column"), (b"file,title\n\xff\xfe,x\n", "not UTF-8")):
        started = client.post("/admin/metadata", data={"csv": (io.BytesIO(data), "m.csv")},
                              content_type="multipart/form-data", headers=HX)
        run_worker(services(app), burst=True)
        failed = text(client.get(poll_url(text(started)), headers=HX))
        assert "m.csv" in failed and reason in failed and "hx-get" not in failed
    app.config["MAX_CSV_BYTES"] = 1000
    huge = client.post("/admin/metadata", data={"csv": (io.BytesIO(b"file,title\n" + b"a,b\n" * 1000), "big.csv")},
                       content_type="multipart/form-data", headers=HX)
    assert huge.status_code == 413


def test_every_response_names_its_request_id(client):
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    # one that is not an id (too long, odd characters) is replaced, not logged
    assert client.get("/healthz", headers={"X-Request-ID": "x" * 200}).headers["X-Request-ID"] != "x" * 200
