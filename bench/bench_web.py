"""Web under load: status polling and results pages with 50 concurrent clients against `audiofind serve` (wrk).

    python bench/bench_web.py [--tracks 1000] [--clients 50] [--seconds 20]

`audiofind serve` runs with its embedded defaults (gunicorn, one worker, embedded Redis, PANNs) on a
catalog of --tracks synthetic tracks at PANNs' dimensions (4096-d track vectors, 12 window vectors of
2048-d each, a 300-point loudness envelope), loaded straight into the local index. Every request is an
htmx request (HX-Request: true), as the page makes them:

  status-running   GET /searches/<id> of a search waiting for a worker (the partial that polls itself)
  status-finished  GET /searches/<id> of a finished search: the last poll, carrying the 10 results
  results-similar  GET /tracks/<id>/similar ("More like this": index search + 10 results rendered),
                   a different track on each request
  results-page     GET /searches/<id> without HX-Request: the full results page of a finished search

Three load shapes, each with --clients connections: "polling" (each client sends a request 500 ms after
its last answer, as the status partial does, at its own phase: the latency a user sees), "polling in
lockstep" (the same, but all clients start at the same instant and stay in step: every 500 ms a burst of
--clients requests at once, the worst case), and "saturated" (each client sends its next request as soon
as the last is answered: the server's capacity). wrk reports latency percentiles and errors
(socket errors and non-2xx answers). Needs wrk (apt-get install wrk).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_query import _http, redis_url_of, start_serve  # noqa: E402
from bench.common import ROOT, cpu_model, random_checkpoint, wesnoth_mp3s  # noqa: E402

OUT = ROOT / "bench" / "out"
LUA = """
wrk.headers["HX-Request"] = "%(hx)s"
if wrk.headers["HX-Request"] == "" then wrk.headers["HX-Request"] = nil end
local paths = {%(paths)s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "p50_ms": %%.2f, "p90_ms": %%.2f, "p99_ms": %%.2f, '
    .. '"max_ms": %%.2f, "socket_errors": %%d, "non_2xx": %%d, "seconds": %%.1f}\\n',
    summary.requests, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status,
    summary.duration / 1e6))
end
"""
# Each connection's first wait is stretched by a random part of the period, so that the clients poll
# at their own phases, as users who opened the page at different moments do; then every `delay` ms.
PHASED = """
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local started = 0
delay = function()
  if started < %(connections)d then
    started = started + 1
    return %(delay)d + math.random(0, %(delay)d)
  end
  return %(delay)d
end
"""


def synthetic_catalog(data_dir, n, checkpoint):
    from audiofind.app import create_app, services
    from audiofind.embedders.base import l2_normalise
    from audiofind.embedders.panns import PannsEmbedder
    from audiofind.index.base import Track

    config = {"DATA_DIR": str(data_dir), "PANNS_CHECKPOINT": str(checkpoint), "SECRET_KEY": "bench"}
    app = create_app(config)
    index = services(app).index
    identity = PannsEmbedder(app.config).identity  # no model load: only its name and dimensions
    index.set_embedder_identity(identity)
    rng = np.random.default_rng(0)
    tags = ["Piano", "Guitar", "Drums", "Strings", "Ambient", "Electronic", "Orchestra", "Vocal"]
    for start in range(0, n, 250):
        entries = []
        for i in range(start, min(n, start + 250)):
            duration = float(rng.uniform(60, 300))
            windows_n = 12
            starts = np.linspace(0, duration - 10, windows_n, dtype=np.float32)
            wv = l2_normalise(rng.standard_normal((windows_n, identity["window_dim"]), dtype=np.float32))
            vector = l2_normalise(np.concatenate([wv.mean(0), wv.max(0)]))
            envelope = np.clip(0.5 + 0.3 * np.sin(np.linspace(0, 12, 300)) + 0.1 * rng.standard_normal(300), 0, 1)
            track = Track(
                track_id=f"t{i:06d}", file=f"track{i:06d}.mp3", content_hash=f"{i:064x}", duration=duration,
                embedder=f"{identity['name']}:{identity['version']}", title=f"Track {i}", artist=f"Artist {i % 97}",
                album=f"Album {i // 12}", tags=sorted(rng.choice(tags, 3, replace=False).tolist()),
                bpm=float(rng.uniform(60, 180)), group_id=f"t{i:06d}", envelope=[round(float(v), 3) for v in envelope],
                created_at=1.0 + i,
            )
            entries.append((track, vector, np.stack([starts, starts + 10], axis=1), wv))
        index.add_many(entries)
    index.close()
    return [f"t{i:06d}" for i in range(n)]


def run_wrk(base, paths, clients, seconds, hx=True, delay_ms=0, phased=False):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {
            "hx": "true" if hx else "",
            "paths": ", ".join(json.dumps(p) for p in paths),
            "delay": PHASED % {"connections": -(-clients // 2), "delay": delay_ms} if phased
            else (f"delay = function() return {delay_ms} end" if delay_ms else ""),
        })
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s", "-s", script.name, base],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    return json.loads(re.search(r"RESULT (\{.*\})", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench_web needs wrk: apt-get install wrk")

    checkpoint = random_checkpoint()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    track_ids = synthetic_catalog(data_dir, args.tracks, checkpoint)
    env = {**os.environ, "AUDIOFIND_PANNS_CHECKPOINT": str(checkpoint), "AUDIOFIND_DEVICE": "cpu",
           "AUDIOFIND_SECRET_KEY": "bench"}
    for name in ("AUDIOFIND_REDIS_URL", "AUDIOFIND_EMBEDDER"):
        env.pop(name, None)
    server, base = start_serve(data_dir, env)
    try:
        # a finished search: a real file through the API and the worker
        query = next(p for p in wesnoth_mp3s() if p.name == "sad.mp3")
        data = query.read_bytes()
        target = _http("POST", f"{base}/api/v1/uploads", {"filename": query.name, "content_type": "audio/mpeg",
                                                          "size": len(data)})
        _http(target["method"], target["upload_url"], data, target["headers"])
        finished = _http("POST", f"{base}/api/v1/searches", {"key": target["key"]})
        while _http("GET", base + finished["status_url"])["status"] not in ("finished", "failed"):
            time.sleep(0.1)
        # a search that stays queued: workers suspended while we measure its status partial
        import redis
        from rq.suspension import resume, suspend

        from audiofind.app import create_app
        from audiofind.jobs.queue import enqueue_search

        url = redis_url_of(data_dir)
        conn = redis.Redis.from_url(url)
        suspend(conn)
        waiting = enqueue_search(create_app({"DATA_DIR": str(data_dir), "REDIS_URL": url}), "audio/none.mp3", {},
                                 "waiting.mp3")

        rng = np.random.default_rng(1)
        cases = {
            "status-running": ([f"/searches/{waiting.id}"], True),
            "status-finished": ([f"/searches/{finished['id']}"], True),
            "results-similar": ([f"/tracks/{t}/similar" for t in rng.choice(track_ids, 200, replace=False)], True),
            "results-page": ([f"/searches/{finished['id']}"], False),
        }
        results = {}
        shapes = (("polling", 500, True), ("polling in lockstep", 500, False), ("saturated", 0, False))
        for shape, delay, phased in shapes:
            for name, (paths, hx) in cases.items():
                results[f"{name} {shape}"] = run_wrk(base, paths, args.clients, args.seconds, hx, delay, phased)
                print(name, shape, results[f"{name} {shape}"], flush=True)
        resume(conn)
    finally:
        server.send_signal(signal.SIGTERM)  # SIGINT is ignored when the bench runs in the background
        server.wait(60)
    report = {"machine": cpu_model(), "cpus": os.cpu_count(), "load_average_after": os.getloadavg(), "clients": args.clients, "seconds": args.seconds,
              "catalog_tracks": args.tracks, "target_p99_ms": 50, "results": results}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "web.json").write_text(json.dumps(report, indent=2))
    print(f"\n{'case':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        errors = r["socket_errors"] + r["non_2xx"]
        print(f"{name:40} {r['requests'] / r['seconds']:8.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {errors:7d}")


if __name__ == "__main__":
    main()
