"""Storage contract: the same cases against LocalStorage (signed URLs served by the app over real HTTP)
and S3Storage (a real S3-compatible HTTP server on loopback: moto's server mode)."""

import os
import socket
import threading
import uuid
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

from audiofind import uploads
from audiofind.app import create_app, services
from audiofind.storage.base import StorageError

AUDIO = bytes(range(256)) * 40  # 10240 bytes; the content does not matter to storage


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback, with dummy credentials in the environment for boto3."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class LiveApp:
    """The app served by a real HTTP server in a thread, so URLs are fetched with a real HTTP client."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=10)


def _make_app(tmp_path, redis_url="", **config):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "instance"), "EMBEDDER": "dsp",
                      "SECRET_KEY": "test", "REDIS_URL": redis_url, **config})
    if "storage" not in app.blueprints:  # the web routes register it; these tests do not depend on them
        from audiofind.routes.storage import bp

        app.register_blueprint(bp)
    return app


class Harness:
    def __init__(self, kind, app, live):
        self.kind, self.app, self.live = kind, app, live
        self.storage = services(app).storage

    def url(self, method, *args):
        """Call upload_target/playback_url as the web routes do (inside a request) and make the URL absolute;
        an upload target's key is offered as POST /api/v1/uploads offers it."""
        with self.app.test_request_context(base_url=self.live.base):
            result = getattr(self.storage, method)(*args)
            if method == "upload_target":
                uploads.offer(services(self.app).redis, self.app.config, args[0], "upload")
        if isinstance(result, dict):
            return {**result, "upload_url": urljoin(self.live.base + "/", result["upload_url"])}
        return urljoin(self.live.base + "/", result)


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, redis_url):
    if request.param == "local":
        app = _make_app(tmp_path, redis_url)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"audiofind-{uuid.uuid4().hex[:12]}"
        app = _make_app(tmp_path, redis_url, STORAGE="s3", S3_BUCKET=bucket, S3_ENDPOINT_URL=endpoint, S3_REGION="us-east-1")
        services(app).storage.client.create_bucket(Bucket=bucket)
    live = LiveApp(app)
    yield Harness(request.param, app, live)
    live.close()


@pytest.fixture
def audio_file(tmp_path):
    path = tmp_path / "My Song (final).mp3"
    path.write_bytes(AUDIO)
    return path


def _put(target, data):
    return requests.request(target["method"], target["upload_url"], data=data, headers=target["headers"], timeout=30)


# -- the contract ---------------------------------------------------------------------------------------------


def test_new_key_never_holds_the_users_file_name(backend):
    key = backend.storage.new_key("../../My Song (final).MP3")
    assert key.endswith(".mp3")
    assert "My Song" not in key and ".." not in key
    assert backend.storage.new_key("a.mp3") != backend.storage.new_key("a.mp3")


def test_put_file_then_read_back_and_delete(backend, audio_file):
    storage = backend.storage
    key = storage.new_key(audio_file.name)
    assert not storage.exists(key)
    storage.put_file(audio_file, key, "audio/mpeg")
    assert storage.exists(key)
    assert storage.size(key) == len(AUDIO)
    with storage.local_copy(key) as path:
        assert path.read_bytes() == AUDIO
        assert path.suffix == ".mp3"  # decoders tell the format from it
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting twice is fine


def test_missing_object_errors_name_the_key(backend):
    storage = backend.storage
    key = storage.new_key("gone.wav")
    with pytest.raises(StorageError, match=key):
        storage.size(key)
    with pytest.raises(StorageError, match=key):
        with storage.local_copy(key):
            pass


def test_presigned_upload_from_an_http_client(backend):
    storage = backend.storage
    key = storage.new_key("take 1.flac")
    target = backend.url("upload_target", key, "audio/flac", len(AUDIO))
    assert target["method"] == "PUT"
    assert target["headers"] == {"Content-Type": "audio/flac"}
    response = _put(target, AUDIO)
    assert response.status_code in (200, 201), response.text
    assert storage.verify_upload(key, len(AUDIO)) == len(AUDIO)
    with storage.local_copy(key) as path:
        assert path.read_bytes() == AUDIO


def test_upload_larger_than_announced_is_not_kept(backend):
    storage = backend.storage
    key = storage.new_key("big.wav")
    target = backend.url("upload_target", key, "audio/wav", 1000)
    response = _put(target, AUDIO)  # 10240 bytes against 1000 announced
    # The local route refuses it outright; an S3 server that does not check the signed length stores it,
    # and the check after the upload deletes it.
    if response.ok:
        assert backend.kind == "s3"
    with pytest.raises(StorageError):
        storage.verify_upload(key, 1000)
    assert not storage.exists(key)


def test_upload_target_refuses_files_over_the_limit(backend):
    backend.app.config["MAX_UPLOAD_BYTES"] = 5000
    key = backend.storage.new_key("x.mp3")
    with pytest.raises(StorageError, match="too large"):
        backend.url("upload_target", key, "audio/mpeg", 5001)


def test_playback_url_serves_the_bytes_with_ranges(backend, audio_file):
    storage = backend.storage
    key = storage.new_key(audio_file.name)
    storage.put_file(audio_file, key, "audio/mpeg")
    url = backend.url("playback_url", key)
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == AUDIO
    assert response.headers["Content-Type"].startswith("audio/mpeg")
    # <audio> seeks with Range requests.
    partial = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert partial.status_code == 206
    assert partial.content == AUDIO[100:200]


def test_check_passes_for_a_working_backend(backend):
    backend.storage.check()


# -- local signed URLs ---------------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path, redis_url):
    app = _make_app(tmp_path, redis_url)
    live = LiveApp(app)
    yield Harness("local", app, live)
    live.close()


def test_local_upload_refuses_another_content_type(local):
    key = local.storage.new_key("a.mp3")
    target = local.url("upload_target", key, "audio/mpeg", len(AUDIO))
    response = requests.put(target["upload_url"], data=AUDIO, headers={"Content-Type": "text/html"}, timeout=30)
    assert response.status_code == 415
    assert "audio/mpeg" in response.json()["message"]
    assert not local.storage.exists(key)


def test_local_upload_refuses_a_tampered_token(local):
    key = local.storage.new_key("a.mp3")
    target = local.url("upload_target", key, "audio/mpeg", len(AUDIO))
    forged = target["upload_url"][:-3] + ("aaa" if not target["upload_url"].endswith("aaa") else "bbb")
    response = requests.put(forged, data=AUDIO, headers=target["headers"], timeout=30)
    assert response.status_code == 403
    assert not local.storage.exists(key)


def test_local_links_expire(local, audio_file):
    key = local.storage.new_key(audio_file.name)
    local.storage.put_file(audio_file, key)
    upload = local.url("upload_target", local.storage.new_key("b.mp3"), "audio/mpeg", len(AUDIO))
    play = local.url("playback_url", key)
    local.app.config["UPLOAD_URL_EXPIRES"] = -1  # every link is now older than allowed
    local.app.config["PLAYBACK_URL_EXPIRES"] = -1
    response = _put(upload, AUDIO)
    assert response.status_code == 403 and "expired" in response.json()["message"]
    response = requests.get(play, timeout=30)
    assert response.status_code == 403 and "expired" in response.json()["message"]


def test_local_upload_link_cannot_play_and_play_link_cannot_upload(local, audio_file):
    key = local.storage.new_key(audio_file.name)
    local.storage.put_file(audio_file, key)
    play = local.url("playback_url", key)
    upload = local.url("upload_target", key, "audio/mpeg", len(AUDIO))
    token_of = lambda url: url.rsplit("/", 1)[1]  # noqa: E731
    assert requests.get(f"{local.live.base}/storage/audio/{token_of(upload['upload_url'])}", timeout=30).status_code == 403
    assert requests.put(f"{local.live.base}/storage/upload/{token_of(play)}", data=b"x",
                        headers={"Content-Type": "audio/mpeg"}, timeout=30).status_code == 403


def test_local_playback_of_a_deleted_file_is_404(local, audio_file):
    key = local.storage.new_key(audio_file.name)
    local.storage.put_file(audio_file, key)
    play = local.url("playback_url", key)
    local.storage.delete(key)
    assert requests.get(play, timeout=30).status_code == 404


def test_local_keys_cannot_escape_the_audio_folder(local):
    with pytest.raises(StorageError, match="invalid storage key"):
        local.storage.path("../secret_key")


# -- S3 specifics ------------------------------------------------------------------------------------------


@pytest.fixture
def s3(tmp_path, s3_endpoint):
    bucket = f"audiofind-{uuid.uuid4().hex[:12]}"
    app = _make_app(tmp_path, STORAGE="s3", S3_BUCKET=bucket, S3_ENDPOINT_URL=s3_endpoint, S3_REGION="us-east-1")
    storage = services(app).storage
    storage.client.create_bucket(Bucket=bucket)
    return storage


def test_s3_objects_are_private_and_keep_the_name_as_metadata_only(s3, audio_file):
    key = s3.new_key(audio_file.name)
    s3.put_file(audio_file, key, "audio/mpeg", filename=audio_file.name)
    acl = s3.client.get_object_acl(Bucket=s3.bucket, Key=key)
    grantees = [g["Grantee"].get("URI", "") for g in acl["Grants"]]
    assert not any("AllUsers" in uri or "AuthenticatedUsers" in uri for uri in grantees)
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert head["ContentType"] == "audio/mpeg"
    assert head["Metadata"]["filename"] == "My%20Song%20%28final%29.mp3"
    assert "My Song" not in key


def test_s3_presigned_put_signs_type_and_length_and_get_expires_soon(s3):
    s3.config["PLAYBACK_URL_EXPIRES"] = 120
    key = s3.new_key("a.mp3")
    target = s3.upload_target(key, "audio/mpeg", 1234)
    query = parse_qs(urlparse(target["upload_url"]).query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert urlparse(target["upload_url"]).path.endswith(key)
    play = parse_qs(urlparse(s3.playback_url(key)).query)
    assert play["X-Amz-Expires"] == ["120"]


def test_s3_local_copy_is_removed_after_use_and_on_failure(s3, audio_file):
    key = s3.new_key(audio_file.name)
    s3.put_file(audio_file, key)
    with s3.local_copy(key) as path:
        assert path.exists()
    assert not path.exists()
    with pytest.raises(RuntimeError, match="worker failed"):
        with s3.local_copy(key) as path:
            raise RuntimeError("worker failed")
    assert not path.exists()


def test_s3_check_names_the_problem(tmp_path, s3_endpoint):
    app = _make_app(tmp_path, STORAGE="s3", S3_BUCKET="no-such-bucket-here", S3_ENDPOINT_URL=s3_endpoint)
    with pytest.raises(StorageError, match="does not exist"):
        services(app).storage.check()
    app = _make_app(tmp_path, STORAGE="s3", S3_BUCKET="any-bucket", S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StorageError, match="cannot reach"):
        services(app).storage.check()


def test_s3_without_a_bucket_says_which_setting(tmp_path):
    app = _make_app(tmp_path, STORAGE="s3", S3_BUCKET="")
    with pytest.raises(StorageError, match="AUDIOFIND_S3_BUCKET"):
        services(app).storage


def test_local_chunked_upload_is_counted_while_streaming(local):
    """Without a Content-Length the route counts the bytes it writes and drops the partial file."""
    key = local.storage.new_key("a.mp3")
    target = local.url("upload_target", key, "audio/mpeg", 1000)
    response = requests.put(target["upload_url"], data=iter([AUDIO[:600], AUDIO[600:]]), headers=target["headers"],
                            timeout=30)
    assert response.status_code == 413
    assert not local.storage.exists(key)
    assert not list(local.storage.root.rglob("*.part"))
    target = local.url("upload_target", key, "audio/mpeg", len(AUDIO))
    response = requests.put(target["upload_url"], data=iter([AUDIO[:600], AUDIO[600:]]), headers=target["headers"],
                            timeout=30)
    assert response.status_code == 200 and response.json()["size"] == len(AUDIO)
    assert local.storage.path(key).read_bytes() == AUDIO
