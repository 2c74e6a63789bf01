"""RQ jobs with a real worker against a real Redis, and `audiofind serve` as a user runs it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rq.job import Job

import audiogen
from audiofind import uploads
from audiofind.app import get_catalog, services
from audiofind.config import load_config
from audiofind.jobs import _common
from audiofind.jobs.queue import enqueue_ingest, enqueue_search, job_status
from audiofind.jobs.worker import run_worker
from audiofind.services import Services

pytestmark = pytest.mark.usefixtures("empty_queue")

SR = 32000


@pytest.fixture
def app_config(app_config):
    return {**app_config, "JOB_RETRIES": 2}


def stored(app, path):
    """Put a file in storage as an upload would (the jobs take storage keys)."""
    storage = services(app).storage
    key = uploads.new_key(storage, path.name)
    storage.put_file(path, key)
    return key


def piece(audio_dir, name, seconds=15, seed=0):
    path = audio_dir / name
    audiogen.write(path, audiogen.music(seconds, SR, seed=seed), SR, "WAV")
    return path


def test_ingest_then_search_jobs_report_stages_and_results(app, audio_dir, monkeypatch):
    stages = []
    real = _common.set_stage
    monkeypatch.setattr("audiofind.jobs.search.set_stage", lambda s: (stages.append(s), real(s)))

    keys = [stored(app, piece(audio_dir, f"p{seed}.wav", seed=seed)) for seed in range(3)]
    jobs = [enqueue_ingest(services(app), key, f"p{i}.wav", {"title": f"P{i}"}) for i, key in enumerate(keys)]
    assert Job.fetch(jobs[0].id, connection=services(app).redis).origin == "ingest"
    run_worker(services(app), burst=True)
    outcomes = [job_status(services(app), job.id, kind="ingest") for job in jobs]
    assert [o["result"]["status"] for o in outcomes] == ["added"] * 3
    storage = services(app).storage
    assert not any(storage.exists(key) for key in keys)  # the uploads are gone ...
    tracks = [get_catalog(app).get(o["result"]["track_id"]) for o in outcomes]
    assert all(t["storage_key"].startswith("audio/") and storage.exists(t["storage_key"]) for t in tracks)  # ... copied

    query = stored(app, piece(audio_dir, "query.wav", seed=1))
    job = enqueue_search(services(app), query, {"limit": 2, "filters": {"min_duration": 1}})
    assert job.origin == "search" and job_status(services(app), job.id)["stage"] == "queued"
    run_worker(services(app), burst=True)
    info = job_status(services(app), job.id, kind="search")
    assert info["status"] == "finished" and stages == ["analyzing", "searching"]
    assert [r["title"] for r in info["result"]][0] == "P1" and len(info["result"]) == 2
    json.dumps(info["result"])  # plain JSON
    assert not services(app).storage.exists(query)  # the reference is deleted after the search
    assert job_status(services(app), job.id, kind="ingest") is None  # a search id is not an ingest id


def test_duplicate_ingest_keeps_one_copy(app, audio_dir):
    path = piece(audio_dir, "same.wav")
    first, second = stored(app, path), stored(app, path)
    jobs = [enqueue_ingest(services(app), first, "same.wav"), enqueue_ingest(services(app), second, "copy.wav")]
    run_worker(services(app), burst=True)
    results = [job_status(services(app), j.id)["result"] for j in jobs]
    assert [r["status"] for r in results] == ["added", "duplicate"]
    assert results[0]["track_id"] == results[1]["track_id"]
    storage = services(app).storage
    assert not storage.exists(first) and not storage.exists(second)
    assert storage.exists(get_catalog(app).get(results[0]["track_id"])["storage_key"])
    assert get_catalog(app).count() == 1


def test_bad_audio_fails_at_once_without_retries(app, audio_dir):
    bad = audio_dir / "broken.wav"
    audiogen.text_file(bad)
    key = stored(app, bad)
    job = enqueue_search(services(app), key, {}, "broken.wav")
    assert job.retries_left == 2
    run_worker(services(app), burst=True)
    info = job_status(services(app), job.id)
    assert info["status"] == "failed" and "broken.wav" in info["error"]
    assert Job.fetch(job.id, connection=services(app).redis).retries_left == 0
    assert not services(app).storage.exists(key)


def test_transient_failure_is_retried_and_keeps_the_upload(app, audio_dir, monkeypatch):
    catalog = get_catalog(app)
    catalog.ingest(piece(audio_dir, "a.wav", seed=3))
    real, calls = catalog.embed_query, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("storage hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog, "embed_query", flaky)
    key = stored(app, piece(audio_dir, "q.wav", seed=3))
    job = enqueue_search(services(app), key, {})
    run_worker(services(app), burst=True)
    assert job_status(services(app), job.id)["status"] == "queued"  # waiting for its retry, as the page shows it
    assert services(app).storage.exists(key)
    time.sleep(2.5)  # the first retry is scheduled 2 s later
    run_worker(services(app), burst=True)
    info = job_status(services(app), job.id)
    assert info["status"] == "finished" and len(calls) == 2 and info["result"][0]["file"] == "a.wav"


def _worker_process(app_config):
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, json; from audiofind.config import load_config; from audiofind.services import Services; "
         "from audiofind.jobs.worker import run_worker; run_worker(Services(load_config(json.loads(sys.argv[1]))))",
         json.dumps(app_config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_job_of_a_killed_worker_is_not_lost(app, app_config, audio_dir, empty_queue):
    """A worker process killed mid-job: another worker finds the job abandoned (its heartbeat lapsed within
    seconds, not after the job's timeout) and runs it again."""
    catalog = get_catalog(app)
    catalog.ingest(piece(audio_dir, "a.wav", seed=4))
    key = stored(app, piece(audio_dir, "long.wav", seconds=600, seed=4))
    job = enqueue_search(services(app), key, {})
    worker = _worker_process(app_config)
    try:
        deadline = time.monotonic() + 60
        while job_status(services(app), job.id)["stage"] != "analyzing":
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
    assert job_status(services(app), job.id)["status"] == "started"
    second = _worker_process(app_config)
    try:
        deadline = time.monotonic() + 120
        while job_status(services(app), job.id)["status"] != "finished":
            assert job_status(services(app), job.id)["status"] != "failed", job_status(services(app), job.id)["error"]
            assert time.monotonic() < deadline, "the abandoned job was not run again"
            time.sleep(0.2)
    finally:
        second.terminate()
        second.wait(30)
    assert job_status(services(app), job.id)["result"][0]["file"] == "a.wav"


def test_jobs_under_a_plain_rq_worker_build_their_services_once_from_the_environment(app, monkeypatch):
    _common._services_from_environment.cache_clear()
    monkeypatch.setenv("AUDIOFIND_DATA_DIR", app.config["DATA_DIR"])
    monkeypatch.setenv("AUDIOFIND_EMBEDDER", "dsp")
    first = _common.job_services()
    assert _common.job_services() is first and first.config["DATA_DIR"] == app.config["DATA_DIR"]
    with _common.running_services(services(app)):  # inside audiofind's own worker: that worker's services
        assert _common.job_services() is services(app)
    _common._services_from_environment.cache_clear()


# -- audiofind serve


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data_dir, port, **env):
    environment = {**os.environ, "AUDIOFIND_EMBEDDER": "dsp", "AUDIOFIND_SECRET_KEY": "test", **env}
    environment.pop("AUDIOFIND_REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from audiofind.cli import main; main()", "--data-dir", str(data_dir),
         "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
    )


def _http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


def test_serve_runs_redis_worker_and_web_and_stops_them(tmp_path, audio_dir):
    data_dir, port = tmp_path / "instance", _free_port()
    server = _serve(data_dir, port)
    try:
        line = ""
        while "running at" not in line:
            line = server.stdout.readline()
            assert line, "serve exited before it was ready"
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/" in line

        reference = piece(audio_dir, "ref.wav", seed=1)
        data = reference.read_bytes()
        target = _http("POST", f"{base}/api/v1/uploads", {"filename": "ref.wav", "content_type": "audio/wav",
                                                          "size": len(data)})
        _http(target["method"], target["upload_url"], data, target["headers"])
        job = _http("POST", f"{base}/api/v1/searches", {"key": target["key"]})
        deadline = time.monotonic() + 60
        while (status := _http("GET", base + job["status_url"]))["status"] not in ("finished", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status["status"] == "finished" and status["results"] == []  # an empty catalog answers, empty
        assert (data_dir / "redis" / "appendonlydir").exists() or (data_dir / "redis").exists()
        redis_pid = int((data_dir / "redis" / "redis.pid").read_text())
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2  # the worker and the web server (Redis runs in its own session)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out
    for pid in [redis_pid, *map(int, children)]:
        assert not _alive(pid), Path(f"/proc/{pid}/cmdline").read_bytes()


def _alive(pid, wait=5.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if "zombie" in Path(f"/proc/{pid}/status").read_text():
                return False
        except FileNotFoundError:
            return False
        time.sleep(0.1)
    return True


def test_serve_says_when_the_embedder_cannot_load(tmp_path):
    missing = tmp_path / "nowhere" / "Cnn14.pth"
    server = _serve(tmp_path / "instance", _free_port(), AUDIOFIND_EMBEDDER="panns",
                    AUDIOFIND_PANNS_CHECKPOINT=str(missing), AUDIOFIND_PANNS_CHECKPOINT_URL="")
    out, _ = server.communicate(timeout=120)
    assert server.returncode != 0
    assert "embedder cannot load" in out and str(missing) in out and "AUDIOFIND_EMBEDDER=dsp" in out
    assert "running at" not in out


def test_worker_without_redis_says_what_to_do(app_config):
    with pytest.raises(SystemExit, match="AUDIOFIND_REDIS_URL"):
        run_worker(Services(load_config({**app_config, "REDIS_URL": ""})), burst=True)
    with pytest.raises(SystemExit, match="cannot reach Redis at redis://127.0.0.1:1/0"):
        run_worker(Services(load_config({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})), burst=True)
