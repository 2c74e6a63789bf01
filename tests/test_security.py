"""What protects the app: the admin check, sessions, rate limits, headers, uploads claimed once and swept."""

import os
import re
import threading
import time

import pytest
import redis

import audiogen
from audiofind import uploads
from audiofind.app import create_app, get_catalog, services
from audiofind.jobs.queue import enqueue_search

pytestmark = pytest.mark.usefixtures("empty_queue")
SR = 16000


@pytest.fixture
def track_id(app, audio_dir):
    path = audiogen.write(audio_dir / "one.wav", audiogen.music(8, SR, seed=1), SR)
    return get_catalog(app).ingest(path).track.track_id


def test_admin_without_a_token_refuses_a_rebound_host_name(client, track_id):
    """DNS rebinding: a page on evil.example points its name at 127.0.0.1; the request comes from loopback."""
    rebound = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    assert client.delete(f"/api/v1/tracks/{track_id}", headers=rebound).status_code == 403
    assert client.delete(f"/api/v1/tracks/{track_id}", headers={"Host": "evil.example"}).status_code == 403
    assert client.delete(f"/api/v1/tracks/{track_id}",
                         headers={"Host": "127.0.0.1:8000", "Origin": "http://evil.example"}).status_code == 403
    assert client.get(f"/api/v1/tracks/{track_id}").status_code == 200  # still there
    assert client.delete(f"/api/v1/tracks/{track_id}", headers={"Host": "[::1]:8000"}).status_code == 204


def test_an_all_digit_admin_token_from_the_environment_works(app_config, monkeypatch, track_id):
    monkeypatch.setenv("AUDIOFIND_ADMIN_TOKEN", "0123456789")
    monkeypatch.setenv("AUDIOFIND_SECRET_KEY", "12345")
    app = create_app({k: v for k, v in app_config.items() if k != "SECRET_KEY"})
    assert app.config["ADMIN_TOKEN"] == "0123456789" and app.config["SECRET_KEY"] == "12345"
    client = app.test_client()
    assert client.get("/admin/", headers={"Authorization": "Bearer 0123456789"}).status_code == 200
    assert client.get("/admin/", headers={"Authorization": "Bearer 123456789"}).status_code == 403


def test_logging_out_ends_the_session_for_every_copy_of_the_cookie(app):
    app.config["ADMIN_TOKEN"] = "secret-token"
    client = app.test_client()
    login = client.post("/admin/login", data={"token": "secret-token"}, base_url="https://localhost")
    cookie = login.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie  # gone when the browser closes; the login itself lasts ADMIN_SESSION_SECONDS
    assert client.get("/admin/", base_url="https://localhost").status_code == 200
    stolen = client.get_cookie("session", domain="localhost").value
    client.post("/admin/logout", base_url="https://localhost")
    thief = app.test_client()
    thief.set_cookie("session", stolen, domain="localhost")
    assert thief.get("/admin/", base_url="https://localhost").status_code == 302  # to the login form
    plain = app.test_client().post("/admin/login", data={"token": "secret-token"})
    assert "Secure" not in plain.headers["Set-Cookie"]  # plain http on loopback: a Secure cookie would not come back


def test_rate_limits_answer_429_with_a_reason(app_config):
    app = create_app({**app_config, "RATE_LIMIT_UPLOADS": "2 per minute", "RATE_LIMIT_LOGIN": "2 per minute",
                      "RATELIMIT_STORAGE_URI": "memory://", "ADMIN_TOKEN": "t"})
    client = app.test_client()
    body = {"filename": "a.wav", "content_type": "audio/wav", "size": 100}
    assert [client.post("/api/v1/uploads", json=body).status_code for _ in range(2)] == [201, 201]
    limited = client.post("/api/v1/uploads", json=body)
    assert limited.status_code == 429 and limited.json["error"] == "rate_limited" and "2 per 1 minute" in limited.json["message"]
    assert limited.headers["Retry-After"]
    assert [client.post("/admin/login", data={"token": "guess"}).status_code for _ in range(3)] == [401, 401, 429]


def test_pages_and_stored_audio_carry_protective_headers(app, client, track_id):
    page = client.get("/")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    # A file stored under a non-audio name by an older version is played as bytes, in a sandbox, never as a page.
    storage = services(app).storage
    html = storage.root / "audio" / "old.html"
    html.write_text("<script>alert(document.cookie)</script>")
    with app.test_request_context():
        url = storage.playback_url("audio/old.html")
    served = client.get(url)
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert "sandbox" in served.headers["Content-Security-Policy"] and served.headers["X-Content-Type-Options"] == "nosniff"


def test_request_bodies_are_capped(client):
    huge = {"filename": "a.wav", "content_type": "audio/wav", "size": 10, "pad": "x" * (2 << 20)}
    answer = client.post("/api/v1/uploads", json=huge)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"


def test_the_rq_dashboard_refuses_cross_site_requests(client):
    assert client.get("/admin/rq/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/admin/rq/").status_code == 200


def test_readiness_details_are_for_admins(app_config):
    client = create_app({**app_config, "ADMIN_TOKEN": "t", "REDIS_URL": "redis://127.0.0.1:1/0"}).test_client()
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 503 and anonymous.json["redis"] == {"ok": False}
    admin = client.get("/readyz", headers={"Authorization": "Bearer t"})
    assert admin.status_code == 503 and "127.0.0.1:1" in admin.json["redis"]["error"]


# -- uploads: claimed once, held by their job, swept when left


def _uploaded(app, name="u.wav"):
    storage = services(app).storage
    key = uploads.new_key(storage, name)
    path = storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + b"\0" * 100)
    uploads.offer(services(app).redis, app.config, key, name)
    return key


def test_an_upload_is_claimed_by_exactly_one_of_many_requests_at_once(app):
    key = _uploaded(app)
    conn, storage = services(app).redis, services(app).storage
    start, claimed, refused = threading.Barrier(8), [], []

    def claim():
        start.wait()
        try:
            claimed.append(uploads.claim(conn, storage, key, 10**6))
        except uploads.UploadRefused as refusal:
            refused.append(refusal.code)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert claimed == ["u.wav"] and refused == ["bad_key"] * 7


def test_uploads_nobody_can_claim_are_swept_and_held_ones_kept(app):
    conn, storage = services(app).redis, services(app).storage
    old = time.time() - uploads.offer_seconds(app.config) - 60
    unclaimed, held, done, fresh = (_uploaded(app, f"{n}.wav") for n in ("unclaimed", "held", "done", "fresh"))
    for key in (unclaimed, held, done, fresh):
        if key != fresh:
            conn.delete(uploads.OFFERED + key)  # its offer expired
            os.utime(storage.path(key), (old, old))
    waiting = enqueue_search(services(app), held, {})  # a queued search holds it
    uploads.hold(conn, done, "no-such-job-any-more")
    catalog_file = storage.root / "audio" / "kept.wav"
    catalog_file.parent.mkdir(parents=True, exist_ok=True)
    catalog_file.write_bytes(b"catalog audio")
    os.utime(catalog_file, (old, old))
    swept = uploads.sweep(conn, storage, app.config)
    assert sorted(swept) == sorted([unclaimed, done])
    assert storage.exists(held) and storage.exists(fresh) and catalog_file.exists()
    assert conn.hget(uploads.HELD, held) == waiting.id.encode() and conn.hget(uploads.HELD, done) is None


def test_embedded_redis_needs_its_password(tmp_path):
    from audiofind.serve import _start_redis

    process, url = _start_redis(tmp_path)
    try:
        password = re.match(r"redis://:(\w+)@", url).group(1)
        assert len(password) >= 32
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace(f":{password}@", "")).ping()
        assert redis.Redis.from_url(url).ping()
        assert password.encode() not in open(f"/proc/{process.pid}/cmdline", "rb").read()
    finally:
        process.terminate()
        process.wait(15)
