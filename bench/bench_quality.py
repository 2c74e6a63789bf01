"""Search quality on real music: versions, excerpts in the default mode, and "more like this".

    python bench/bench_quality.py [--embedder dsp|aisfx] [--music soundtracks|development|held-out]
                                  [--cases versions,excerpts,similar] [--queries-per-track 2] [--json FILE]

The catalog: three game soundtracks from Debian packages, one album each (bench/common.SOUNDTRACKS: Wesnoth
41 tracks, Flare 12, Hedgewars 26; fetched with apt-get, not committed), ingested with their album names.
``--music development`` / ``held-out``: the sets of bench/common.MUSIC_SETS instead (dsp's features were
chosen on the first; the second reports on albums never used in development).
``aisfx`` is the trained sound-effects CNN of ``pip install --no-deps aisfx``, through the embedder plugin in
tests/trained_embedder.py. Reports:

- versions: for each track a 64 kbps MP3 re-encode, a 60 s cut-down at a random offset (tracks of 70 s or
  more; 1 s fade-out), and a copy 4 dB quieter through a 5 kHz low-pass (4th-order Butterworth): the share
  that ``Catalog.find_version`` groups with their original; distinct tracks grouped together, over every
  pair of catalog tracks and every pair of a version with another catalog track;
- excerpts: 20 s at random offsets, white noise at 30 dB SNR, 64 kbps MP3 (ffmpeg): recall@1 in the default
  mode and in each fixed mode, and how often the default mode places the match within 5 s (and 1 s) of the true offset
  (after the catalog calibrated itself, as ingest does: audiofind/calibration.py, whose degradations are
  other noises and bitrates than these);
- "more like this" (``Catalog.similar``, default options): album precision@5.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MUSIC_SETS, cpu_model, soundtracks  # noqa: E402

from audiofind import audio, calibration, versions  # noqa: E402
from audiofind.app import create_app, get_catalog  # noqa: E402
from audiofind.catalog import DEFAULT_MODE  # noqa: E402

EXCERPT_SECONDS = 20.0
SNR_DB = 30.0
CUT_DOWN_SECONDS = 60.0
SR = 44100


def mp3(signal, target: Path, bitrate="64k") -> Path:
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        sf.write(wav.name, signal, SR)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", wav.name, "-codec:a", "libmp3lame", "-b:a", bitrate,
                        str(target)], check=True)
    return target


def degraded_excerpt(source: Path, offset: float, target: Path, rng) -> Path:
    clip = audio.load(source, SR, start=offset, end=offset + EXCERPT_SECONDS)
    noise = rng.normal(0, 1, clip.shape).astype(np.float32)
    noise *= np.sqrt(np.mean(clip**2) / max(np.mean(noise**2), 1e-12) / 10 ** (SNR_DB / 10))
    return mp3(clip + noise, target)


def make_versions(source: Path, folder: Path, rng) -> dict:
    """{kind: path} of the versions of one track (see the module docstring)."""
    full = audio.load(source, SR)
    out = {"re-encode 64 kbps": mp3(full, folder / f"{source.stem}.reencode.mp3")}
    if len(full) / SR >= CUT_DOWN_SECONDS + 10:
        start = int(rng.uniform(0, len(full) / SR - CUT_DOWN_SECONDS) * SR)
        cut = full[start : start + int(CUT_DOWN_SECONDS * SR)].copy()
        cut[-SR:] *= np.linspace(1, 0, SR, dtype=np.float32)
        out["60 s cut-down"] = folder / f"{source.stem}.cutdown.flac"
        sf.write(out["60 s cut-down"], cut, SR)
    lowpass = scipy.signal.sosfilt(scipy.signal.butter(4, 5000, "low", fs=SR, output="sos"), full)
    out["-4 dB, 5 kHz low-pass"] = folder / f"{source.stem}.lowpass.flac"
    sf.write(out["-4 dB, 5 kHz low-pass"], (lowpass * 10 ** (-4 / 20)).astype(np.float32), SR)
    return out


def make_catalog(folder: Path, embedder: str):
    plugins = []
    if embedder == "aisfx":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import trained_embedder

        plugins.append(trained_embedder.Plugin())
    return get_catalog(create_app({"DATA_DIR": str(folder), "EMBEDDER": embedder}, plugins=plugins))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="dsp")
    parser.add_argument("--music", default="soundtracks", choices=sorted(MUSIC_SETS))
    parser.add_argument("--cases", default="versions,excerpts,similar", help="comma-separated subset to run")
    parser.add_argument("--queries-per-track", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    albums = soundtracks(args.music)
    cases = set(args.cases.split(","))
    figures = {"embedder": args.embedder, "cpu": cpu_model(), "music": args.music}
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        catalog = make_catalog(tmp / "instance", args.embedder)
        started = time.perf_counter()
        ids, album_of = {}, {}
        for album, paths in albums.items():
            for path in paths:
                ids[path] = catalog.ingest(path, metadata={"album": album}).track.track_id
                album_of[ids[path]] = album
        ingest_seconds = time.perf_counter() - started
        tracks = list(ids)
        if calibration.needs_calibration(catalog):  # what `audiofind ingest` and the ingest job do next
            figures["calibration_seconds"] = round(calibration.calibrate(catalog, np.random.default_rng(args.seed + 1)).seconds, 1)

        if "versions" in cases:
            # Versions.
            grouped, made, wrong = {}, {}, 0
            version_embeddings = []
            for path in tracks:
                for kind, version in make_versions(path, tmp, rng).items():
                    query = catalog.embed_query(version)
                    found = catalog.find_version(query.windows, query.window_vectors)
                    made[kind] = made.get(kind, 0) + 1
                    grouped[kind] = grouped.get(kind, 0) + bool(found and found.track_id == ids[path])
                    if found and found.track_id != ids[path]:
                        wrong += 1
                    if not found or found.track_id != ids[path]:
                        print(f"version not grouped ({kind}): {path.name} -> {found.file if found else None}",
                              file=sys.stderr)
                    version_embeddings.append((ids[path], query.windows, query.window_vectors))
            segments = {track_id: catalog.index.segments(track_id) for track_id in ids.values()}
            fallback = versions.median_self_similarity([vectors for _, vectors in segments.values()])
            false_pairs, pairs = 0, 0
            id_list = list(segments)
            for i, a in enumerate(id_list):
                for b in id_list[i + 1 :]:
                    pairs += 1
                    false_pairs += versions.is_version(*segments[a], *segments[b], fallback)
            for source_id, windows, vectors in version_embeddings:
                for other in id_list:
                    if other != source_id:
                        pairs += 1
                        false_pairs += versions.is_version(windows, vectors, *segments[other], fallback)
            groups_at_ingest = len({t["group_id"] for t in catalog.list(0, len(tracks))})

            figures.update({
                "versions_grouped": {k: f"{grouped[k]}/{made[k]}" for k in made},
                "versions_grouped_share": round(sum(grouped.values()) / sum(made.values()), 4),
                "versions_grouped_with_another_track": wrong,
                "distinct_pairs_grouped": f"{false_pairs}/{pairs}",
                "groups_at_ingest": groups_at_ingest,
            })

        if "excerpts" in cases:
            # Excerpts.
            correct = {"default": 0, "track": 0, "segment": 0}
            placed, placed_closely, total, query_seconds = 0, 0, 0, 0.0
            for path in tracks:
                duration = sf.info(path).duration
                for _ in range(args.queries_per_track):
                    offset = float(rng.uniform(0, max(0.0, duration - EXCERPT_SECONDS)))
                    query = degraded_excerpt(path, offset, tmp / f"query-{total}.mp3", rng)
                    total += 1
                    for mode in correct:
                        started = time.perf_counter()
                        best = catalog.search_file(query, limit=1, mode=DEFAULT_MODE if mode == "default" else mode)[0]
                        if mode == "default":
                            query_seconds += time.perf_counter() - started
                        hit = best["track_id"] == ids[path]
                        correct[mode] += hit
                        if mode == "default" and hit:
                            placed += abs(best["match_start"] - offset) <= 5.0
                            placed_closely += abs(best["match_start"] - offset) <= 1.0
                        if not hit and mode == "default":
                            print(f"excerpt miss: {path.name} @ {offset:.0f}s -> {best['file']}", file=sys.stderr)

            figures.update({
                "excerpt_queries": total,
                "excerpt_recall_at_1": {mode: round(n / total, 4) for mode, n in correct.items()},
                "excerpt_placed_within_5s": round(placed / total, 4),
                "excerpt_placed_within_1s": round(placed_closely / total, 4),
                "mean_query_seconds": round(query_seconds / total, 3),
            })

        if "similar" in cases:
            # More like this.
            precision = []
            for track_id, album in album_of.items():
                results = catalog.similar(track_id, limit=5)
                precision.append(np.mean([r["album"] == album for r in results]))
            by_album = {a: round(float(np.mean([p for p, t in zip(precision, album_of) if album_of[t] == a])), 3)
                        for a in albums}
            figures.update({
                "more_like_this_album_precision_at_5": round(float(np.mean(precision)), 3),
                "more_like_this_by_album": by_album,
            })

    figures.update({
        "tracks": len(tracks),
        "albums": {a: len(p) for a, p in albums.items()},
        "ingest_seconds": round(ingest_seconds, 1),
    })
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
