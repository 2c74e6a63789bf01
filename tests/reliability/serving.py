"""A real `audiofind serve` (gunicorn, two RQ workers) on loopback, with a Redis server of its own that the
tests can restart, driven over real HTTP the way a browser or an API client drives it."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

TOKEN = "reliability-admin-token"
WORKERS = 2
MAX_DURATION = 300  # seconds: the tests' long tracks fit, the "too long" files do not


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """redis-server with a password and an append-only file, so that a restart keeps the queue."""

    def __init__(self, folder: Path):
        from audiofind.serve import redis_binary

        self.binary, self.folder, self.port, self.password = redis_binary(), folder, free_port(), "reliability-pw"
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "-", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--save", ""],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.process.stdin.write(f"requirepass {self.password}\n".encode())
        self.process.stdin.close()
        wait_for(self._pings, 20, "redis-server to start")

    def _pings(self):
        try:
            return self.client().ping()
        except redis.RedisError:
            return False

    def client(self):
        return redis.Redis.from_url(self.url, socket_connect_timeout=2)

    def stop(self):
        self.process.terminate()  # saves the append-only file
        self.process.wait(20)


class Served:
    """One `audiofind serve` process and what the tests ask of it."""

    def __init__(self, data_dir: Path, redis_server: RedisServer, **env):
        self.data_dir, self.redis = data_dir, redis_server
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "AUDIOFIND_EMBEDDER": "dsp",
            "AUDIOFIND_ENTRY_POINT_PLUGINS": "false",
            "AUDIOFIND_SECRET_KEY": "reliability",
            "AUDIOFIND_ADMIN_TOKEN": TOKEN,
            "AUDIOFIND_REDIS_URL": redis_server.url,
            "AUDIOFIND_MAX_DURATION": str(MAX_DURATION),
            # 50 users behind one loopback address: the per-address limits are tested on their own
            "AUDIOFIND_RATE_LIMIT_UPLOADS": "",
            "AUDIOFIND_RATE_LIMIT_SEARCHES": "",
            "AUDIOFIND_RATE_LIMIT_SIMILAR": "",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from audiofind.cli import main; main()", "--data-dir", str(data_dir),
             "serve", "--port", str(self.port), "--workers", str(WORKERS)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
        )
        self.lines = []
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        if not ready.wait(120) or self.process.poll() is not None:
            self.process.kill()
            raise AssertionError("serve did not start:\n" + "".join(self.lines[-30:]))
        self.http = requests.Session()

    def _read_output(self, ready):
        for line in self.process.stdout:
            self.lines.append(line)
            if "running at" in line:
                ready.set()
        ready.set()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    # -- HTTP
    def call(self, method, path, admin=False, timeout=30, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        if admin:
            headers["Authorization"] = f"Bearer {TOKEN}"
        return self.http.request(method, self.base + path, headers=headers, timeout=timeout, **kwargs)

    def upload(self, path: Path, filename=None, content_type="audio/wav"):
        """The upload key for the file, or the refusing response when the upload itself is refused."""
        data = path.read_bytes()
        asked = self.call("POST", "/api/v1/uploads", json={"filename": filename or path.name,
                                                            "content_type": content_type, "size": len(data)})
        if asked.status_code != 201:
            return asked
        target = asked.json()
        sent = requests.request(target["method"], target["upload_url"], data=data, headers=target["headers"], timeout=60)
        assert sent.status_code in (200, 201), sent.text
        return target["key"]

    def start(self, kind, key, **fields):
        """Start an ingest ("tracks", as admin) or a search ("searches"); returns its status path."""
        answer = self.call("POST", f"/api/v1/{kind}", admin=kind == "tracks", json={"key": key, **fields})
        assert answer.status_code == 202, answer.text
        return answer.json()["status_url"]

    def finish(self, status_path, timeout=180):
        last = {}

        def done():
            last.update(self.call("GET", status_path, admin=True).json())
            return dict(last) if last["status"] in ("finished", "failed") else None

        try:
            return wait_for(done, timeout, f"{status_path} to finish")
        except AssertionError as error:
            raise AssertionError(f"{error}; last status {last}; serve said:\n{''.join(self.lines[-25:])}") from None

    def total(self):
        return self.call("GET", "/api/v1/tracks?limit=1").json()["total"]

    # -- what is on disk
    def stored_files(self, prefix):
        folder = self.data_dir / "audio" / prefix
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    # -- the worker processes this serve supervises, as RQ knows them
    def workers(self):
        """{pid: current job id or None} of the live RQ workers whose parent is this serve process."""
        from rq import Worker

        found = {}
        for worker in Worker.all(connection=self.redis.client()):
            if worker.pid and _parent(worker.pid) == self.process.pid:
                found[worker.pid] = worker.get_current_job_id()
        return found

    def back_to_full_strength(self, timeout=60):
        return wait_for(lambda: len(self.workers()) == WORKERS, timeout, f"{WORKERS} live workers")


def _parent(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]) if fields[0] != "Z" else None
