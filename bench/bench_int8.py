"""Does int8 (or bfloat16) change what "more like this" returns? Top-10 overlap with float32 on a real catalog.

    python bench/bench_int8.py [--seconds 120] [--precisions bfloat16,int8]

Catalog: every wesnoth track of at least 20 s (Debian's wesnoth-1.16-music re-encoded at 192 kbps), the first
--seconds of each. Each precision embeds the whole catalog; for every track, its 10 nearest other tracks by
track vector (what "more like this" ranks by) are compared with float32's: the overlap of the two top-10 sets
(1.0: the same ten tracks) and whether the first result is the same. int8 is calibrated first, as in the
product, on the first 60 s of 8 catalog tracks. The timings come from the same run, precision by precision
in turn per track. Random weights (bench/common.py): this measures the engines' numerical agreement on real
audio, not the quality of the rankings.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, cpu_model, duration_seconds, random_checkpoint, wesnoth_mp3s  # noqa: E402

from audiofind import audio  # noqa: E402
from audiofind.embedders import panns  # noqa: E402


def top10(vectors):
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1)[:, :10]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--precisions", default="bfloat16,int8")
    args = parser.parse_args()

    checkpoint = random_checkpoint()
    tracks = [p for p in wesnoth_mp3s() if duration_seconds(p) >= 20]
    embedders = {}
    for precision in ["float32"] + args.precisions.split(","):
        if precision == "int8":
            for kind in ("trunk-int8.onnx", "trunk-int8.json"):
                panns.cache_path(checkpoint, kind).unlink(missing_ok=True)
        e = panns.PannsEmbedder({"DATA_DIR": tempfile.mkdtemp(), "PANNS_CHECKPOINT": str(checkpoint),
                                 "PANNS_PRECISION": precision, "DEVICE": "cpu"})
        e.check()
        if precision == "int8":
            e.calibrate_int8(audio.stream(p, e.sample_rate, end=60) for p in tracks[::5][:8])
        embedders[precision] = e
    vectors = {label: [] for label in embedders}
    seconds = {label: 0.0 for label in embedders}
    for path in tracks:
        for label, e in embedders.items():
            started = time.perf_counter()
            vectors[label].append(e.embed(audio.stream(path, e.sample_rate, end=args.seconds)).vector)
            seconds[label] += time.perf_counter() - started
    reference = top10(np.stack(vectors["float32"]))
    report = {"machine": cpu_model(), "load": os.getloadavg()[0], "tracks": len(tracks), "seconds_each": args.seconds,
              "command": "python " + " ".join(sys.argv), "precisions": {}}
    for label in embedders:
        ours = top10(np.stack(vectors[label]))
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(ours, reference)]
        cosine = [float(a @ b) for a, b in zip(vectors[label], vectors["float32"])]
        report["precisions"][label] = {
            "top10_overlap_mean": float(np.mean(overlap)), "top10_overlap_min": float(np.min(overlap)),
            "same_first": float(np.mean(ours[:, 0] == reference[:, 0])), "cosine_mean": float(np.mean(cosine)),
            "cosine_min": float(np.min(cosine)), "embed_seconds": round(seconds[label], 1),
            "int8_heldout_cosine": getattr(embedders[label]._run, "cosine", None),
        }
    (DATA.parent / "out").mkdir(exist_ok=True)
    (DATA.parent / "out" / "int8.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
