"""Time of the local index's filter mask (index/filters.py over the snapshot's columns) on a large catalog.

    python bench/bench_filter_mask.py [--tracks 1000000]

Builds a snapshot of synthetic rows (2000 albums, 500 artists, 16 tags with two per track, bpm unknown
for 10 %) without vectors, then times ``Snapshot.mask`` for the filters the app sends (best of 5, after one
call that builds the lazy tag index). Prints JSON: the build time and, per filter, ms and tracks kept.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiofind.index.base import Filters  # noqa: E402
from audiofind.index.local.snapshot import COLUMNS, Snapshot  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    n = parser.parse_args().tracks
    rng = np.random.default_rng(0)
    values = {
        "track_id": [f"t{i:07d}" for i in range(n)],
        "file": [f"f{i}.mp3" for i in range(n)],
        "album": [f"album{i % 2000}" for i in range(n)],
        "artist": [f"artist{i % 500}" for i in range(n)],
        "tags": [json.dumps([f"tag{i % 16}", f"tag{(i * 7) % 16}"]) for i in range(n)],
        "duration": rng.uniform(30, 300, n).tolist(),
        "bpm": [None if i % 10 == 0 else float(x) for i, x in enumerate(rng.uniform(60, 180, n))],
    }
    rows = list(zip(range(1, n + 1), range(n), range(n), [1] * n, *(values[name] for name in COLUMNS)))
    start = time.perf_counter()
    snap = Snapshot().extended(rows)
    report = {"tracks": n, "build_s": round(time.perf_counter() - start, 2)}
    ids, files = values["track_id"], values["file"]
    cases = {
        "exclude 5 ids + bpm 90-130": Filters(exclude_track_ids=ids[:5], min_bpm=90, max_bpm=130),
        "more like this (exclude its id and file)": Filters(exclude_files=[files[3]], exclude_track_ids=[ids[3]]),
        "one tag": Filters(tags=["tag7"]),
        "artist": Filters(artist="artist42"),
        "album + 2 tags + min duration": Filters(album="album7", tags=["tag7", "tag1"], min_duration=60),
    }
    for name, filters in cases.items():
        snap.mask(filters)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            kept = snap.mask(filters)
            best = min(best, time.perf_counter() - start)
        report[name] = {"ms": round(best * 1000, 1), "kept": int(kept.sum())}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
