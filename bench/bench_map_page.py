"""The catalog map in the product: the map job (jobs/catalog_map.compute_map over the local index: reading every
vector, PCA, the layout, storing it), placing one new track after ingest (map_store.place_track), and the
/map page through the real route (Flask's test client: the stored map loaded, the tracks in view read, the SVG
rendered), its size raw and gzipped, at several catalog sizes. Tracks: synthetic clustered 256-d vectors with
album, tags and BPM (the page's cost does not depend on the vectors' width; the job's PCA does, linearly).

Usage: python bench/bench_map_page.py [--sizes 1000,10000,100000] [--layout-up-to 2000]
  (the t-SNE layout is computed up to --layout-up-to tracks; above, the job runs with method pca, and the
   page's cost is the same for either)
"""

import argparse
import gzip
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiofind import map_store  # noqa: E402
from audiofind.app import create_app  # noqa: E402
from audiofind.index.base import Track  # noqa: E402
from audiofind.index.local import LocalIndex  # noqa: E402
from audiofind.jobs.catalog_map import compute_map  # noqa: E402
from bench.common import cpu_model, peak_rss_mb  # noqa: E402

DIM = 256


def build(root: Path, n: int, seed: int = 0) -> LocalIndex:
    config = {"DATA_DIR": str(root), "ANN_THRESHOLD": 10**9}  # exact search: no HNSW build in the way
    index = LocalIndex(config)
    index.set_embedder_identity({"name": "dsp", "version": "bench", "dim": DIM, "window_dim": 8})
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), DIM)).astype(np.float32)
    for start in range(0, n, 2000):
        entries = []
        for i in range(start, min(n, start + 2000)):
            v = centres[i % len(centres)] + 0.3 * rng.standard_normal(DIM).astype(np.float32)
            track = Track(track_id=f"t{i:06d}", file=f"track{i}.mp3", content_hash=f"h{i}", duration=180.0,
                          embedder="dsp:bench", title=f"Track {i}", album=f"Album {i % 50}", tags=[f"tag{i % 12}"],
                          bpm=float(70 + i % 100), energy=float(i % 10) / 10, created_at=1000.0 + i)
            entries.append((track, v / np.linalg.norm(v), np.array([[0.0, 10.0]]), np.ones((1, 8), np.float32)))
        index.add_many(entries)
    return index


def timed(function, repeats=5):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--layout-up-to", type=int, default=2000)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}\n")
    print("| tracks | job method | job seconds | place one track, s | page | page ms (median of 5) | HTML KB | gzip KB "
          "| points drawn |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            index = build(Path(tmp), n)
            store = map_store.for_index(index)
            method = "tsne" if n <= args.layout_up_to else "pca"
            started = time.perf_counter()
            compute_map(index, store, method)
            job_seconds = time.perf_counter() - started
            placed, _ = timed(lambda: map_store.place_track(store, index, "t000001"), 3)
            app = create_app({"DATA_DIR": tmp, "EMBEDDER": "dsp", "SECRET_KEY": "bench", "ENTRY_POINT_PLUGINS": False,
                              "INDEX": "local", "ANN_THRESHOLD": 10**9})
            client = app.test_client()
            pages = {"whole, by album": "/map", "whole, by BPM band": "/map?colour=bpm",
                     "zoomed x8 (htmx view)": "/map?x0=0.4&y0=0.4&x1=0.525&y1=0.525"}
            for k, (name, url) in enumerate(pages.items()):
                headers = {"HX-Request": "true"} if "htmx" in name else {}
                client.get(url, headers=headers)  # warm: the stored map loaded once per process
                seconds, response = timed(lambda: client.get(url, headers=headers))
                assert response.status_code == 200, response.data[:300]
                body = response.data
                drawn = int(re.search(rb'data-shown="(\d+)"', body).group(1))
                first = (f"| {n:,} | {method} | {job_seconds:.1f} | {placed:.3f} " if k == 0 else "| | | | ")
                print(f"{first}| {name} | {seconds * 1000:.0f} | {len(body) / 1024:.0f} | "
                      f"{len(gzip.compress(body)) / 1024:.0f} | {drawn} |", flush=True)
            index.close()
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
