"""Refining a search in the page: what keeping the reference's vectors costs, against running the search again.

    python bench/bench_refine_page.py [--tracks 60] [--json FILE]

A search's upload is deleted after its job, so a "more / less like this one" mark either re-runs the job on a
kept upload (decode + embed again) or re-scores the vectors the job kept (jobs/search.py keeps them in Redis as
npz, with the job's TTL). A catalog of generated 20 s pieces (tests/audiogen.py) with the dsp embedder; each
reference (30 s, 60 s, 240 s of generated music) is embedded (the re-run's cost), its vectors written to npz
and read back, and the refined search (one liked, one unliked track) run on the read vectors. Also the npz
bytes a Cnn14 query (2048-d windows) of the same number of windows takes.
"""

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import audiogen  # noqa: E402
from bench.common import cpu_model  # noqa: E402

from audiofind.app import create_app, get_catalog  # noqa: E402

SR = 32000
CNN14_DIM = 2048
RUNS = 5


def npz_bytes(vector, window_vectors, windows):
    out = io.BytesIO()
    np.savez(out, vector=vector, window_vectors=window_vectors, windows=windows)
    return out.getvalue()


def median_ms(run, runs=RUNS):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=60)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = {"cpu": cpu_model(), "tracks": args.tracks, "embedder": "dsp", "references": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = get_catalog(create_app({"DATA_DIR": str(tmp / "instance"), "EMBEDDER": "dsp"}))
        for seed in range(args.tracks):
            path = audiogen.write(tmp / f"t{seed}.wav", audiogen.music(20, SR, seed=seed, bpm=80 + seed % 60), SR)
            catalog.ingest(path, metadata={"title": f"T{seed}"})
        ids = [t["track_id"] for t in catalog.list(0, args.tracks)]
        for seconds in (30, 60, 240):
            reference = audiogen.write(tmp / f"ref{seconds}.wav", audiogen.music(seconds, SR, seed=1000 + seconds), SR)
            query = catalog.embed_query(reference)
            embed_ms = median_ms(lambda: catalog.embed_query(reference), runs=3)
            stored = npz_bytes(query.vector, query.window_vectors, query.windows)
            roundtrip_ms = median_ms(lambda: np.load(io.BytesIO(npz_bytes(query.vector, query.window_vectors,
                                                                          query.windows))))
            loaded = np.load(io.BytesIO(stored))
            vectors = (loaded["vector"], loaded["window_vectors"], loaded["windows"])
            unrefined_ms = median_ms(lambda: catalog.search_embedding(*vectors))
            refined_ms = median_ms(lambda: catalog.search_embedding(*vectors, like=[ids[3]], unlike=[ids[5]]))
            windows = len(query.windows)
            cnn14 = npz_bytes(np.zeros(CNN14_DIM, np.float32), np.zeros((windows, CNN14_DIM), np.float32),
                              query.windows)
            figures["references"].append({
                "seconds": seconds, "windows": windows, "embed_ms": embed_ms, "npz_bytes_dsp": len(stored),
                "npz_bytes_cnn14": len(cnn14), "npz_roundtrip_ms": roundtrip_ms, "search_ms": unrefined_ms,
                "refined_search_ms": refined_ms,
            })
            print(figures["references"][-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
