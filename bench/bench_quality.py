"""Search quality on real music: can a degraded 20-second excerpt find its source track, and where?

    python bench/bench_quality.py [--embedder dsp] [--queries-per-track 1]

Indexes Debian's wesnoth-1.16-music (41 orchestral tracks, fetched with apt-get, not committed), then queries
with 20-second excerpts taken at random offsets, mixed with white noise at 30 dB SNR and re-encoded as 64 kbps
MP3 with ffmpeg. Reports recall@1 (the source track ranked first) for track-level and segment-level search, and
how often segment search places the match within 5 s of the excerpt's true offset.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import wesnoth_tracks  # noqa: E402

from audiofind import audio  # noqa: E402
from audiofind.app import create_app, get_catalog  # noqa: E402

EXCERPT_SECONDS = 20.0
SNR_DB = 30.0


def degraded_excerpt(source: Path, offset: float, target: Path, rng) -> None:
    sr = 44100
    clip = audio.load(source, sr, start=offset, end=offset + EXCERPT_SECONDS)
    noise = rng.normal(0, 1, clip.shape).astype(np.float32)
    noise *= np.sqrt(np.mean(clip**2) / np.mean(noise**2) / 10 ** (SNR_DB / 10))
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        sf.write(wav.name, clip + noise, sr)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", wav.name, "-codec:a", "libmp3lame", "-b:a", "64k", str(target)],
            check=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="dsp")
    parser.add_argument("--queries-per-track", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    tracks = wesnoth_tracks()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = get_catalog(create_app({"DATA_DIR": str(tmp / "instance"), "EMBEDDER": args.embedder}))
        started = time.perf_counter()
        ids = {}
        for path in tracks:
            ids[path] = catalog.ingest(path).track.track_id
        ingest_seconds = time.perf_counter() - started
        groups = len({track["group_id"] for track in catalog.list(0, len(tracks))})

        correct = {"track": 0, "segment": 0}
        placed, total, query_seconds = 0, 0, 0.0
        for path in tracks:
            duration = sf.info(path).duration
            for _ in range(args.queries_per_track):
                offset = float(rng.uniform(0, max(0.0, duration - EXCERPT_SECONDS)))
                query = tmp / f"query-{total}.mp3"
                degraded_excerpt(path, offset, query, rng)
                total += 1
                for mode in correct:
                    started = time.perf_counter()
                    best = catalog.search_file(query, limit=1, mode=mode, collapse_versions=False)[0]
                    query_seconds += time.perf_counter() - started
                    hit = best["track_id"] == ids[path]
                    correct[mode] += hit
                    if mode == "segment" and hit and abs(best["match_start"] - offset) <= 5.0:
                        placed += 1
                    if not hit:
                        print(f"miss ({mode}): {path.name} @ {offset:.0f}s -> {best['file']}", file=sys.stderr)

    figures = {
        "embedder": args.embedder,
        "tracks": len(tracks),
        "version_groups": groups,
        "queries": total,
        "recall_at_1_track": correct["track"] / total,
        "recall_at_1_segment": correct["segment"] / total,
        "segment_placed_within_5s": placed / total,
        "ingest_seconds": round(ingest_seconds, 1),
        "mean_query_seconds": round(query_seconds / (2 * total), 3),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
