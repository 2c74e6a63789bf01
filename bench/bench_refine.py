"""Refining a search on real music: "more like these two" and "less like that one".

    python bench/bench_refine.py [--embedder dsp|aisfx] [--json FILE] [--catalog DIR]

The catalog of bench/bench_quality.py: three game soundtracks from Debian packages, one album each
(bench/common.SOUNDTRACKS), ingested with their album names. Every catalog track is the start once
(``Catalog.similar``, default options, in the default mode and in segment mode):

- more like these: of the start's 10 results, the first two of the start's album are marked "more like this";
  album precision@10 of the refined list against the unrefined one, both without the two marked tracks (they
  are the user's own picks; counting them would flatter the refined list). Starts with fewer than two results
  of their album in the top 10 are skipped (counted). For several weights of the liked tracks' mean.
- less like that: the start's first result is marked "less like this"; whether it, and its 3 nearest catalog
  tracks (its own "more like this" by whole tracks, the start excluded) that were in the unrefined top 10, are
  still in the refined top 10; with the vector shift alone (Rocchio, two weights) and with the neighbours left out (the default).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_quality import make_catalog  # noqa: E402
from bench.common import cpu_model, soundtracks  # noqa: E402

from audiofind.index.base import Filters  # noqa: E402
from audiofind.refine import DEFAULT_WEIGHTS, Weights  # noqa: E402

TOP = 10
LIKE_WEIGHTS = (0.5, 1.0, 2.0)
UNLIKE_VARIANTS = {
    "shift 0.5, neighbours kept": Weights(unlike=0.5, neighbours=0),
    "shift 1.0, neighbours kept": Weights(unlike=1.0, neighbours=0),
    "default: shift 0.5, 3 neighbours left out": DEFAULT_WEIGHTS,
}


def precision(results, album, leave_out=()):
    kept = [r for r in results if r["track_id"] not in leave_out][:TOP]
    return float(np.mean([r["album"] == album for r in kept]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="dsp")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--catalog", type=Path, help="keep the ingested catalog in this folder (reused when there)")
    args = parser.parse_args()

    albums = soundtracks()
    figures = {"embedder": args.embedder, "cpu": cpu_model(), "albums": {a: len(p) for a, p in albums.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = make_catalog((args.catalog or Path(tmp)) / "instance", args.embedder)
        started = time.perf_counter()
        album_of = {}
        for album, paths in albums.items():
            for path in paths:  # a kept catalog has them already: duplicates, at the cost of a hash
                album_of[catalog.ingest(path, metadata={"album": album}).track.track_id] = album
        figures["tracks"] = len(album_of)
        figures["ingest_seconds"] = round(time.perf_counter() - started, 1)

        for mode in ("auto", "segment"):
            # More like these two.
            base_p, refined_p, skipped, seconds, base_seconds = [], {w: [] for w in LIKE_WEIGHTS}, 0, [], []
            for start, album in album_of.items():
                t0 = time.perf_counter()
                base = catalog.similar(start, limit=TOP + 2, mode=mode)
                base_seconds.append(time.perf_counter() - t0)
                liked = [r["track_id"] for r in base[:TOP] if r["album"] == album][:2]
                if len(liked) < 2:
                    skipped += 1
                    continue
                base_p.append(precision(base, album, liked))
                for weight in LIKE_WEIGHTS:
                    t0 = time.perf_counter()
                    refined = catalog.similar(start, like=liked, limit=TOP + 2, mode=mode, weights=Weights(like=weight))
                    seconds.append(time.perf_counter() - t0)
                    refined_p[weight].append(precision(refined, album, liked))
            figures[f"more_like_these_{mode}"] = {
                "starts": len(base_p),
                "skipped_fewer_than_two_of_album_in_top10": skipped,
                "album_precision_at_10_unrefined": round(float(np.mean(base_p)), 3),
                "album_precision_at_10_refined": {str(w): round(float(np.mean(p)), 3) for w, p in refined_p.items()},
                "starts_improved_same_worse": {
                    str(w): [int(np.sum(np.array(p) > base_p)), int(np.sum(np.array(p) == base_p)),
                             int(np.sum(np.array(p) < base_p))] for w, p in refined_p.items()},
                "mean_unrefined_query_ms": round(1000 * float(np.mean(base_seconds)), 1),
                "mean_refined_query_ms": round(1000 * float(np.mean(seconds)), 1),
            }

            # Less like that one.
            unlike = {name: {"unliked_in_top10": 0, "neighbours_in_top10": 0, "precision": []} for name in UNLIKE_VARIANTS}
            neighbours_before, base_p = 0, []
            for start, album in album_of.items():
                base = [r["track_id"] for r in catalog.similar(start, limit=TOP, mode=mode)]
                base_p.append(precision(catalog.similar(start, limit=TOP, mode=mode), album))
                unliked = base[0]
                nearest = [r["track_id"] for r in catalog.similar(unliked, limit=3, mode="track",
                                                                   filters=Filters(exclude_track_ids=[start]))]
                shown = [t for t in nearest if t in base]
                neighbours_before += len(shown)
                for name, weights in UNLIKE_VARIANTS.items():
                    refined = catalog.similar(start, unlike=[unliked], limit=TOP, mode=mode, weights=weights)
                    after = [r["track_id"] for r in refined]
                    unlike[name]["unliked_in_top10"] += unliked in after
                    unlike[name]["neighbours_in_top10"] += len([t for t in shown if t in after])
                    unlike[name]["precision"].append(precision(refined, album))
            for counts in unlike.values():
                counts["album_precision_at_10"] = round(float(np.mean(counts.pop("precision"))), 3)
            figures[f"less_like_that_{mode}"] = {
                "starts": len(album_of),
                "neighbours_in_unrefined_top10": neighbours_before,
                "album_precision_at_10_unrefined": round(float(np.mean(base_p)), 3),
                **unlike,
            }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
