"""Faults as they happen to a running `audiofind serve`: its worker processes killed mid-job, Redis restarted,
storage failing (a full disk; S3 answering 500)."""

import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import audiogen
from serving import WORKERS, RedisServer, Served, free_port, wait_for

SR = 22050
KILLS = 10


@pytest.fixture(scope="module")
def long_tracks(tmp_path_factory):
    """Distinct four-minute tracks: long enough to be caught mid-ingest."""
    folder = tmp_path_factory.mktemp("long")
    return [audiogen.write(folder / f"long{i}.flac", audiogen.music(240, SR, seed=200 + i), SR) for i in range(KILLS)]


def test_workers_killed_mid_ingest_lose_and_duplicate_nothing(served, long_tracks):
    before = served.total()
    jobs = []
    for path in long_tracks:
        status_path = served.start("tracks", served.upload(path))
        job_id = status_path.rsplit("/", 1)[1]
        # The worker running this job, once it is decoding and embedding (not before it began, not after).
        victim = wait_for(lambda: _running(served, status_path, job_id), 120, f"a worker to start {path.name}",
                          interval=0.02)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in served.workers(), 30, "the killed worker to be gone")
        served.back_to_full_strength()
        jobs.append((path.name, status_path))
    outcomes = [served.finish(status_path, timeout=300) for _, status_path in jobs]
    assert [o["status"] for o in outcomes] == ["finished"] * KILLS, outcomes
    assert [o["result"]["status"] for o in outcomes] == ["added"] * KILLS
    assert served.total() == before + KILLS  # none lost, none twice
    assert len({o["result"]["track_id"] for o in outcomes}) == KILLS
    assert served.stored_files("uploads") == [] and len(served.stored_files("audio")) == served.total()
    restarts = [line for line in served.lines if "starting another" in line]
    assert len(restarts) >= KILLS and not any(" in " in line for line in restarts)  # at once, no back-off


def _running(served, status_path, job_id):
    """The pid of the worker running the job, or None while it waits; fails if the job ended uncaught."""
    found = next((pid for pid, job in served.workers().items() if job == job_id), None)
    if found is None:
        assert served.call("GET", status_path, admin=True).json()["status"] != "finished", "ended before the kill"
    return found


def test_redis_restarted_mid_run(served, redis_server, tmp_path):
    clips = [audiogen.write(tmp_path / f"q{i}.wav", audiogen.music(20, SR, seed=300 + i), SR) for i in range(6)]
    early = [served.start("searches", served.upload(clip)) for clip in clips[:3]]
    redis_server.stop()
    down = served.call("POST", "/api/v1/uploads", json={"filename": "a.wav", "content_type": "audio/wav", "size": 10})
    assert down.status_code == 503 and "try again" in down.json()["message"]
    assert "127.0.0.1" not in down.json()["message"]  # where Redis lives is for the log
    time.sleep(3)
    redis_server.start()
    for status_path in early:  # finished, or failed with a reason: never stuck
        status = served.finish(status_path, timeout=240)
        assert status["status"] == "finished" or status["error"], status
    late = [served.start("searches", served.upload(clip)) for clip in clips[3:]]
    assert [served.finish(p, timeout=240)["status"] for p in late] == ["finished"] * 3
    served.back_to_full_strength(timeout=120)
    assert served.process.poll() is None


def test_a_full_disk_fails_the_ingest_with_a_reason_and_leaves_nothing(served, tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.fail("needs root to mount a small tmpfs (CI runs as root)")
    catalog_audio = served.data_dir / "audio" / "audio"
    before, files_before = served.total(), len(served.stored_files("audio"))
    big = audiogen.write(tmp_path / "big.wav", audiogen.music(60, 44100, seed=400), 44100)  # ~5 MB
    catalog_audio.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(catalog_audio)], check=True)
    try:
        status = served.finish(served.start("tracks", served.upload(big)), timeout=240)  # retried, then failed
        leftovers = [p.name for p in catalog_audio.iterdir()]
    finally:
        subprocess.run(["umount", str(catalog_audio)], check=True)
    assert status["status"] == "failed" and "try again" in status["error"]
    assert leftovers == []  # no partial copy
    assert served.total() == before and len(served.stored_files("audio")) == files_before
    assert served.stored_files("uploads") == []
    again = served.finish(served.start("tracks", served.upload(big)))  # the disk has room again
    assert again["status"] == "finished" and served.total() == before + 1


# -- S3 answering 500: serve on S3 (moto's server) behind a proxy that fails object writes on demand


class FlakyS3:
    """A loopback HTTP proxy in front of moto's S3 server; while ``failing``, writes of catalog audio get a 500."""

    def __init__(self, upstream):
        self.upstream, self.failing, self.failed = upstream, False, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.failing and self.command == "PUT" and "/audio/" in self.path:
                    proxy.failed += 1
                    payload = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                          timeout=60, allow_redirects=False)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def served_on_s3(tmp_path_factory):
    """A second serve, with its own Redis: the first one's workers must not take its jobs."""
    from moto.server import ThreadedMotoServer

    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    flaky = FlakyS3(f"http://127.0.0.1:{moto_port}")
    import boto3

    boto3.client("s3", endpoint_url=flaky.url, region_name="us-east-1", **{k.lower(): v for k, v in keys.items()
                                                                          if k != "AWS_DEFAULT_REGION"}
                 ).create_bucket(Bucket="catalog")
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-s3"))
    server = Served(tmp_path_factory.mktemp("served-s3") / "instance", redis_server, AUDIOFIND_STORAGE="s3",
                    AUDIOFIND_S3_BUCKET="catalog", AUDIOFIND_S3_ENDPOINT_URL=flaky.url, AUDIOFIND_S3_REGION="us-east-1",
                    **keys)
    server.flaky = flaky
    yield server
    server.stop()
    redis_server.stop()
    flaky.server.shutdown()
    moto.stop()


def _s3_keys(server, prefix):
    import boto3

    client = boto3.client("s3", endpoint_url=server.flaky.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return [o["Key"] for o in client.list_objects_v2(Bucket="catalog", Prefix=prefix).get("Contents", [])]


def test_s3_failing_mid_ingest_is_retried_then_the_track_is_added(served_on_s3, tmp_path):
    server = served_on_s3
    path = audiogen.write(tmp_path / "s3-a.wav", audiogen.music(15, SR, seed=500), SR)
    server.flaky.failing = True
    status_path = server.start("tracks", server.upload(path))
    wait_for(lambda: server.flaky.failed > 0, 60, "the copy into the catalog to hit the 500")
    wait_for(lambda: server.call("GET", status_path, admin=True).json()["status"] == "queued", 60,
             "the job to wait for its retry")
    assert server.total() == 0  # nothing half-written while it waits
    server.flaky.failing = False
    status = server.finish(status_path)
    assert status["status"] == "finished" and status["result"]["status"] == "added"
    assert server.total() == 1 and len(_s3_keys(server, "audio/")) == 1 and _s3_keys(server, "uploads/") == []


def test_s3_failing_for_good_fails_the_ingest_with_a_reason_and_leaves_nothing(served_on_s3, tmp_path):
    server = served_on_s3
    before = server.total()
    path = audiogen.write(tmp_path / "s3-b.wav", audiogen.music(15, SR, seed=501), SR)
    server.flaky.failing = True
    try:
        status = server.finish(server.start("tracks", server.upload(path)), timeout=240)
    finally:
        server.flaky.failing = False
    assert status["status"] == "failed" and "try again" in status["error"]
    assert "catalog" not in status["error"] and "127.0.0.1" not in status["error"]  # no bucket, no host
    assert server.total() == before and len(_s3_keys(server, "audio/")) == before
    assert _s3_keys(server, "uploads/") == []
    assert server.call("GET", "/readyz").json()["ok"] is True
    assert len(server.workers()) == WORKERS
