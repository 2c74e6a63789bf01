"""Production as its operators run it, from the installed wheel (not the checkout): gunicorn with the shipped
config, two `audiofind worker` processes, a Redis server with a password, S3 (moto's server) and a local index
in a folder shared by web and workers, all configured by environment variables only."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest
import redis
import requests

import audiogen
import production
from serving import TOKEN, RedisServer, Served, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SR = 22050
BUCKET = "audiofind-topology"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment holding the wheel built from this checkout; its dependencies come from the project's
    environment (a .pth file), so nothing is downloaded."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"  # the build writes build/ and *.egg-info next to the sources: not in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "instance", "build", "*.egg-info", "__pycache__", "tests", "bench"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(folder / "dist")], check=True)
    (wheel,) = (folder / "dist").glob("audiofind-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # gunicorn is a dependency: its command, as pip would have made it in this environment
    gunicorn = venv / "bin" / "gunicorn"
    gunicorn.write_text(f"#!{python}\nimport sys\nfrom gunicorn.app.wsgiapp import run\nsys.exit(run())\n")
    gunicorn.chmod(0o755)
    return venv


def _run(venv, *args, cwd):
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_wheel_carries_the_package(installed, tmp_path):
    version = _run(installed, "audiofind", "--version", cwd=tmp_path)
    assert version.returncode == 0 and "0.1.0" in version.stdout, version
    helped = _run(installed, "audiofind", "migrate", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "indexes" in helped.stdout, helped
    probe = _run(installed, "python", "-c", (
        "import audiofind, audiofind.wsgi\n"
        "from importlib import resources\n"
        "from audiofind.migrate import MIGRATIONS_DIR, load_definitions\n"
        "print(audiofind.__file__)\n"
        "print(MIGRATIONS_DIR)\n"
        "print(sorted(d['name'] for d in load_definitions({'dim': 4, 'window_dim': 2})))\n"
        "files = resources.files('audiofind')\n"
        "print(all(files.joinpath(p).is_file() for p in ('templates/base.html', 'static/app.css',"
        " 'data/audioset_class_labels.csv')))\n"), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    package, migrations, names, data = probe.stdout.splitlines()[-4:]
    assert package.startswith(str(installed)) and migrations.startswith(str(installed))
    assert names == "['segments_vector', 'tracks_vector']"
    assert data == "True"


class Production(Served):
    """The processes of a production deployment, started from the installed wheel; Served's HTTP helpers."""

    def __init__(self, venv, folder: Path, redis_server: RedisServer, s3_endpoint):
        self.venv, self.folder, self.redis = venv, folder, redis_server
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.lines = []
        values = {
            "AUDIOFIND_REDIS_URL": redis_server.url,
            "AUDIOFIND_STORAGE": "s3",
            "AUDIOFIND_S3_BUCKET": BUCKET,
            "AUDIOFIND_S3_ENDPOINT_URL": s3_endpoint,
            "AUDIOFIND_S3_REGION": "us-east-1",
            "AUDIOFIND_ADMIN_TOKEN": TOKEN,
            "AUDIOFIND_SECRET_KEY": "topology",
            "AUDIOFIND_DATA_DIR": str(folder / "instance"),
            "AUDIOFIND_LOG_FORMAT": "json",
        }
        assert sorted(values) == sorted(production.ENVIRONMENT)
        self.env = {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(folder), "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            **values,
            # for the test only: no model download, the limits per address off (one loopback address)
            "AUDIOFIND_EMBEDDER": "dsp", "AUDIOFIND_RATE_LIMIT_UPLOADS": "", "AUDIOFIND_RATE_LIMIT_SEARCHES": "",
            "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2",
        }
        self.processes = []
        self.web = self._start(production.WEB, "web")
        self.workers_started = [self._start(production.WORKER, f"worker{i}") for i in range(2)]
        self.http = requests.Session()
        wait_for(self._ready, 120, "/readyz to answer 200")
        wait_for(lambda: len(self.workers()) == 2, 120, "two live workers")

    def _start(self, command, name):
        process = subprocess.Popen(command, cwd=self.folder, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, args=(process, name), daemon=True).start()
        self.processes.append(process)
        return process

    def _read(self, process, name):
        for line in process.stdout:
            self.lines.append(f"{name}: {line}")

    def _ready(self):
        try:
            return self.call("GET", "/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def add_worker(self):
        self.workers_started.append(self._start(production.WORKER, f"worker{len(self.workers_started)}"))
        wait_for(lambda: len(self.workers()) == 2, 120, "two live workers again")

    def workers(self):
        """{pid: current job id or None} of this deployment's live RQ workers."""
        from rq import Worker

        ours = {p.pid for p in self.workers_started if p.poll() is None}
        return {w.pid: w.get_current_job_id() for w in Worker.all(connection=self.redis.client()) if w.pid in ours}

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # a scheduler left behind
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def deployment(installed, tmp_path_factory):
    from moto.server import ThreadedMotoServer

    folder = tmp_path_factory.mktemp("topology")
    redis_server = RedisServer(folder)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
    (folder / "run").mkdir()
    running = Production(installed, folder / "run", redis_server, endpoint)
    yield running
    running.stop()
    moto.stop()
    redis_server.stop()


def test_uploads_searches_and_ingests_survive_worker_stops(deployment, tmp_path):
    d = deployment
    assert d.call("GET", "/").status_code == 200 and d.call("GET", "/static/app.css").status_code == 200
    tracks = [audiogen.write(tmp_path / f"t{i}.wav", audiogen.music(30, SR, seed=500 + i), SR) for i in range(3)]
    long = [audiogen.write(tmp_path / f"long{i}.flac", audiogen.music(240, SR, seed=600 + i), SR) for i in range(2)]
    # a request id sent by the client (or made by the web app) is on the web's and the worker's log lines
    started = d.call("POST", "/api/v1/tracks", admin=True, json={"key": d.upload(tracks[0])},
                     headers={"X-Request-ID": "topology-ingest-0"})
    assert started.status_code == 202 and started.headers["X-Request-ID"] == "topology-ingest-0"
    outcomes = [d.finish(started.json()["status_url"])]
    outcomes += [d.finish(d.start("tracks", d.upload(path))) for path in tracks[1:]]
    assert [o["result"]["status"] for o in outcomes] == ["added"] * 3, outcomes
    # uploads went to S3, not through the web server
    found = d.finish(d.start("searches", d.upload(tracks[1], filename="reference.wav")))
    assert found["status"] == "finished" and found["results"][0]["file"] == "t1.wav", found

    # a worker stopped with SIGTERM mid-ingest stops warm: its job completes; one killed: its job is requeued
    for path, signum in zip(long, (signal.SIGTERM, signal.SIGKILL)):
        status_path = d.start("tracks", d.upload(path))
        job_id = status_path.rsplit("/", 1)[1]
        victim = wait_for(lambda: next((pid for pid, job in d.workers().items() if job == job_id), None), 120,
                          f"a worker to start {path.name}", interval=0.02)
        os.kill(victim, signum)
        outcome = d.finish(status_path, timeout=300)
        assert outcome["status"] == "finished" and outcome["result"]["status"] == "added", (signum, outcome)
        wait_for(lambda: victim not in d.workers(), 60, "the stopped worker to be gone")
        d.add_worker()  # what the supervisor does

    listed = d.call("GET", "/api/v1/tracks?limit=100").json()
    assert listed["total"] == 5
    files = [t["file"] for t in listed["tracks"]]
    assert sorted(files) == sorted(p.name for p in tracks + long)  # none lost, none twice
    assert d.call("GET", "/readyz").status_code == 200
    logged = [(line.split(": ", 1)[0], json.loads(line.split(": ", 1)[1])) for line in d.lines]  # JSON, each
    assert any(who == "web" and '"GET /readyz' in entry["message"] for who, entry in logged), "an access log"
    tagged = {who[:3] for who, entry in logged if entry.get("request_id") == "topology-ingest-0"}
    assert tagged == {"web", "wor"}, logged[-20:]
