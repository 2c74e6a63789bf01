"""Readiness: Redis, storage and index each report ok or the reason they are not."""

import socket

from audiofind.app import create_app, services
from audiofind.health import liveness, readiness


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_with_redis_and_the_local_backends(app, client, redis_url):
    app.config["REDIS_URL"] = redis_url
    assert liveness() == {"ok": True}
    assert readiness(services(app)) == {"ok": True, "redis": {"ok": True}, "storage": {"ok": True}, "index": {"ok": True},
                              "embedder": {"name": "dsp"}}
    assert client.get("/healthz").json == {"ok": True}
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["ok"] is True


def test_each_failing_part_says_why(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "i"), "EMBEDDER": "dsp", "SECRET_KEY": "t",
                      "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
                      "STORAGE": "s3", "S3_BUCKET": "", "INDEX": "atlas", "MONGODB_URI": ""})
    report = readiness(services(app))
    assert report["ok"] is False
    assert report["redis"]["ok"] is False and "127.0.0.1" in report["redis"]["error"]
    assert report["storage"] == {"ok": False, "error": "STORAGE is s3 but no bucket is set: set AUDIOFIND_S3_BUCKET"}
    assert report["index"]["ok"] is False and "AUDIOFIND_MONGODB_URI" in report["index"]["error"]
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json == report


def test_redis_url_missing_is_reported(app):
    app.config["REDIS_URL"] = ""
    assert "AUDIOFIND_REDIS_URL" in readiness(services(app))["redis"]["error"]
