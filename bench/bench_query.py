"""Query latency: a 4-minute MP3 dropped on the running app (API + worker, embedded defaults) until its results
are ready, against the article's get_embedding() on the same file.

    python bench/bench_query.py [--runs 5] [--baseline-runs 3] [--catalog 8] [--precision float32]

Ours: `audiofind serve` (gunicorn, one RQ worker, embedded Redis, PANNs Cnn14 at its default precision) on a
fresh instance folder holding a small catalog of other wesnoth tracks. Each run is what the page does: POST
/api/v1/uploads, PUT the bytes to the signed URL, POST /api/v1/searches, poll the status URL every 50 ms until
it is finished; the time is from the first request to the finished status (upload, queue, decode, embed,
search, result). The first run after start-up is reported apart (warm-up). Baseline: get_embedding() from
bench/baseline.py (loads the checkpoint, librosa at 44.1 kHz, one forward pass) on the same file, in this
process, median of --baseline-runs. Both use the same random-weight checkpoint of the real size.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cpu_model, duration_seconds, random_checkpoint, wesnoth_mp3s  # noqa: E402

QUERY = "weight_of_revenge.mp3"  # 243 s, the wesnoth track closest to four minutes
OUT = ROOT / "bench" / "out"


def _http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(data_dir, env):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from audiofind.cli import main; main()", "--data-dir", str(data_dir), "serve",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )
    while True:
        line = process.stdout.readline()
        if not line:
            raise SystemExit("audiofind serve exited before it was ready")
        if "running at" in line:
            break
    # keep draining its output so the pipe never fills
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, f"http://127.0.0.1:{port}"


def redis_url_of(data_dir):
    pid = int((Path(data_dir) / "redis" / "redis.pid").read_text())
    title = Path(f"/proc/{pid}/cmdline").read_bytes().decode()  # redis-server sets it to "redis-server HOST:PORT"
    port = re.search(r"127\.0\.0\.1:(\d+)", title).group(1)
    return f"redis://127.0.0.1:{port}/0"



def job_times(data_dir, job_id):
    """(seconds queued, seconds the worker ran the job) from the job's record in the embedded Redis."""
    import redis
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=redis.Redis.from_url(redis_url_of(data_dir)))
    except redis.exceptions.AuthenticationError:  # serve's embedded Redis has a password of its own each run
        return None, None
    return (job.started_at - job.enqueued_at).total_seconds(), (job.ended_at - job.started_at).total_seconds()


def one_query(base, path):
    data = path.read_bytes()
    started = time.perf_counter()
    target = _http("POST", f"{base}/api/v1/uploads",
                   {"filename": path.name, "content_type": "audio/mpeg", "size": len(data)})
    _http(target["method"], target["upload_url"], data, target["headers"])
    job = _http("POST", f"{base}/api/v1/searches", {"key": target["key"], "limit": 10})
    while True:
        status = _http("GET", base + job["status_url"])
        if status["status"] in ("finished", "failed"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if status["status"] != "finished":
        raise SystemExit(f"search failed: {status['error']}")
    return elapsed, len(status["results"]), job["id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--catalog", type=int, default=8, help="catalog tracks (other wesnoth files)")
    parser.add_argument("--precision", help="AUDIOFIND_PANNS_PRECISION for ours (default: the app's default)")
    args = parser.parse_args()
    result = measure(args.runs, args.baseline_runs, args.catalog, args.precision)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "query.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"\nquery latency, {result['query']} ({result['query_seconds']} s MP3): ours {result['ours_median_s']:.2f} s "
          f"(median of {len(result['ours_runs_s'])}), baseline {result['baseline_median_s']:.2f} s -> "
          f"{result['ratio']:.2f} of the baseline (target <= 0.25: {'met' if result['met'] else 'NOT met'})")


def _median(values):
    return None if None in values else round(statistics.median(values), 3)


def measure(runs=5, baseline_runs=3, catalog=8, precision=None) -> dict:
    checkpoint = random_checkpoint()
    mp3s = wesnoth_mp3s()
    query = next(p for p in mp3s if p.name == QUERY)
    others = [p for p in mp3s if p != query and 40 <= duration_seconds(p) <= 240][: catalog]

    data_dir = Path(tempfile.mkdtemp(prefix="bench-query-"))
    env = {**os.environ, "AUDIOFIND_PANNS_CHECKPOINT": str(checkpoint), "AUDIOFIND_DEVICE": "cpu",
           "AUDIOFIND_SECRET_KEY": "bench"}
    for name in ("AUDIOFIND_REDIS_URL", "AUDIOFIND_EMBEDDER", "AUDIOFIND_PANNS_PRECISION"):
        env.pop(name, None)
    if precision:
        env["AUDIOFIND_PANNS_PRECISION"] = precision
    subprocess.run(  # the catalog, through the real command
        [sys.executable, "-c", "from audiofind.cli import main; main()", "--data-dir", str(data_dir), "ingest",
         *map(str, others)], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    server, base = start_serve(data_dir, env)
    try:
        warmup, found, _ = one_query(base, query)
        ours, queued, worked = [], [], []
        for _ in range(runs):
            elapsed, _, job_id = one_query(base, query)
            wait, run = job_times(data_dir, job_id)
            ours.append(elapsed), queued.append(wait), worked.append(run)
    finally:
        server.send_signal(signal.SIGTERM)  # SIGINT is ignored when the bench runs in the background
        server.wait(60)

    from bench.baseline import get_embedding

    baseline = []
    for _ in range(baseline_runs):
        started = time.perf_counter()
        get_embedding(query, checkpoint)
        baseline.append(time.perf_counter() - started)

    ours_median, baseline_median = statistics.median(ours), statistics.median(baseline)
    result = {
        "machine": cpu_model(), "cpus": os.cpu_count(), "query": query.name,
        "query_seconds": round(duration_seconds(query), 1), "catalog_tracks": len(others), "results": found,
        "ours_runs_s": [round(t, 3) for t in ours], "ours_warmup_s": round(warmup, 3),
        "ours_median_s": round(ours_median, 3), "ours_job_run_median_s": _median(worked),
        "ours_queue_wait_median_s": _median(queued), "baseline_runs_s": [round(t, 3) for t in baseline],
        "baseline_median_s": round(baseline_median, 3), "ratio": round(ours_median / baseline_median, 3),
        "target_ratio": 0.25, "load_average_after": os.getloadavg(), "precision": precision or "default",
    }
    result["met"] = result["ratio"] <= result["target_ratio"]
    return result


if __name__ == "__main__":
    main()
