"""The catalog map (audiofind.catalog_map, audiofind.map_svg): time, memory and meaning, per method.

- synthetic: clustered 2048-d unit vectors (a cluster per 100 tracks, each a 4-d patch of its own plus noise)
  at 1k / 10k / 100k; per method (pca, umap, tsne = openTSNE) in a fresh process: seconds (numba's
  compilation, paid once per process, reported apart), peak resident memory, neighbour preservation
  (of each track's 10 nearest in the full space, the share that are among its 10 nearest on the map; on a
  1,000-track sample above 1k);
- placement (3,000 synthetic tracks, and the real music): a map fitted on 90 % of the tracks, the other
  10 % placed by catalog_map.place (k-NN weighted)
  and by the method's own transform (umap.transform, openTSNE's prepare_partial + optimize); neighbour
  preservation of the placed tracks among all;
- real music: the Wesnoth tracks (bench/data) cut into ~35 s pieces (6 windows of 10 s), each piece a point
  (its windows' track vector), embedded with dsp and, with --aisfx, the trained aisfx CNN;
- the SVG: size and render time at 100k tracks (full view with density, and a zoomed view).

Usage: python bench/bench_map.py [--sizes 1000,10000,100000] [--methods pca,umap,tsne]
                                [--placement-size 3000] [--aisfx] [--skip-synthetic] [--skip-music]
"""

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiofind import catalog_map  # noqa: E402
from bench.common import DATA, cpu_model, peak_rss_mb, wesnoth_tracks  # noqa: E402

THREADS = 2  # for t-SNE; umap-learn runs single-threaded when seeded
SAMPLE = 1000


def synthetic(n: int, dim: int = 2048, seed: int = 0):
    """(vectors (n, dim) float32 L2-normalised, cluster labels): a cluster per 100 tracks."""
    rng = np.random.default_rng(seed)
    clusters = max(5, n // 100)
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for c in range(clusters):
        rows = np.flatnonzero(labels == c)
        centre = rng.standard_normal(dim).astype(np.float32)
        basis = rng.standard_normal((4, dim)).astype(np.float32)
        latent = rng.standard_normal((len(rows), 4)).astype(np.float32)
        out[rows] = centre + 0.6 * latent @ basis + 0.3 * rng.standard_normal((len(rows), dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, labels


def warm_up(method):
    """Compile numba's functions on a small problem (a worker pays it once per process)."""
    if method == "pca":
        return 0.0
    start = time.perf_counter()
    catalog_map.fit_layout(synthetic(300, 64, seed=9)[0], method, threads=THREADS)
    return time.perf_counter() - start


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(method: str, n: int, save: str):
    vectors, _ = synthetic(n)
    compile_seconds = warm_up(method)
    before = peak_rss_mb()
    start, cpu = time.perf_counter(), cpu_seconds()
    coords = catalog_map.fit_layout(vectors, method, threads=THREADS)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    peak = peak_rss_mb()
    sample = None if n <= SAMPLE else np.random.default_rng(1).choice(n, SAMPLE, replace=False)
    score = catalog_map.neighbour_preservation(vectors, coords, sample=sample)
    if save:
        np.save(save, coords)
    print(json.dumps({"method": method, "n": n, "seconds": seconds, "cpu_seconds": cpu,
                      "compile_seconds": compile_seconds, "peak_mb": peak, "before_mb": before,
                      "vectors_mb": vectors.nbytes / 2**20, "preservation": score, "load": os.getloadavg()[0]}))


def run_child(method, n, save=""):
    done = subprocess.run([sys.executable, __file__, "--child", method, str(n), save], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"method": method, "n": n, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def placement(vectors, method, seed=0):
    """{how: neighbour preservation of the placed 10 %}: k-NN placement and the method's own transform."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vectors))
    cut = int(0.9 * len(vectors))
    old, new = order[:cut], order[cut:]
    projection = catalog_map.principal_components(vectors[old], catalog_map.PCA_DIMS, seed)
    reduced_old, reduced_new = projection(vectors[old]), projection(vectors[new])
    results = {}
    if method == "umap":
        import umap

        model = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1, low_memory=True, verbose=False)
        base = model.fit_transform(reduced_old)
        start = time.perf_counter()
        own = model.transform(reduced_new)
        own_seconds = time.perf_counter() - start
    else:
        from openTSNE import TSNE

        embedding = TSNE(perplexity=min(30.0, (cut - 1) / 3), initialization="pca", random_state=seed,
                         n_jobs=THREADS, verbose=False).fit(reduced_old)
        base = np.asarray(embedding)
        start = time.perf_counter()
        own = np.asarray(embedding.prepare_partial(reduced_new).optimize(250, learning_rate=0.1, momentum=0.8))
        own_seconds = time.perf_counter() - start
    coords = np.zeros((len(vectors), 2), np.float32)
    coords[old] = base
    start = time.perf_counter()
    coords[new] = catalog_map.place(vectors[new], vectors[old], base)
    knn_seconds = time.perf_counter() - start
    results["k-NN placement"] = (catalog_map.neighbour_preservation(vectors, coords, sample=new), knn_seconds)
    coords[new] = own
    results[f"{method}'s transform"] = (catalog_map.neighbour_preservation(vectors, coords, sample=new), own_seconds)
    coords[old] = base
    full = catalog_map.fit_layout(vectors, method, seed=seed, threads=THREADS)
    results["refit of all (reference)"] = (catalog_map.neighbour_preservation(vectors, full, sample=new), None)
    return results


def music_pieces(embedder_name):
    """(piece vectors, track index per piece), cached in bench/data."""
    cache = DATA / f"map_pieces_{embedder_name}.npz"
    if cache.exists():
        data = np.load(cache)
        return data["vectors"], data["tracks"]
    from audiofind import audio
    from audiofind.embedders.base import track_vector

    if embedder_name == "dsp":
        from audiofind.embedders.dsp import DspEmbedder as cls
    else:
        from tests.trained_embedder import AisfxEmbedder as cls
    embedder = cls({})
    vectors, tracks = [], []
    for i, path in enumerate(wesnoth_tracks()):
        windows = embedder.embed(audio.stream(path, embedder.sample_rate)).window_vectors
        for start in range(0, len(windows), 6):
            piece = windows[start : start + 6]
            if len(piece) >= 3 or start == 0:
                vectors.append(track_vector(piece))
                tracks.append(i)
    vectors, tracks = np.asarray(vectors, np.float32), np.asarray(tracks)
    np.savez(cache, vectors=vectors, tracks=tracks)
    return vectors, tracks


def bench_svg(coords):
    from audiofind import map_svg

    n = len(coords)
    ids = [f"t{i:06d}" for i in range(n)]
    categories = [f"album {i % 12}" for i in range(n)]
    out = []
    for name, viewport in (("whole map", (0, 0, 1, 1)), ("zoomed 1/16 of the area", (0.3, 0.3, 0.55, 0.55)),
                           ("zoomed 1/400 of the area", (0.45, 0.45, 0.5, 0.5))):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            svg = map_svg.render(coords, ids, viewport=viewport, categories=categories,
                                 url="/tracks/{id}", highlight={ids[0]: "reference", ids[1]: "result"})
            times.append(time.perf_counter() - start)
        shown = svg.count("<a ")
        out.append((name, len(svg.encode()), len(gzip.compress(svg.encode())), min(times), shown))
    start = time.perf_counter()
    catalog_map.density_grid(coords, (0, 0, 1, 1))
    grid_seconds = time.perf_counter() - start
    return out, grid_seconds


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--methods", default="pca,umap,tsne")
    parser.add_argument("--aisfx", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-music", action="store_true")
    parser.add_argument("--placement-size", type=int, default=3000)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; {THREADS} threads per method", flush=True)
    sizes = [int(n) for n in args.sizes.split(",")]
    methods = args.methods.split(",")
    header = ("| tracks | method | seconds (CPU seconds) | numba compile, once per process | peak RSS MB (vectors MB) "
              "| neighbour preservation @10 | load average |\n| --- | --- | --- | --- | --- | --- | --- |")

    def synthetic_rows(chosen):
        for n in chosen:
            for method in methods:
                save = str(DATA / f"map_coords_{method}_{n}.npy") if n >= 100000 and method != "tsne" else ""
                r = run_child(method, n, save)
                if "error" in r:
                    print(f"| {n:,} | {method} | failed: {r['error']} | | | | |", flush=True)
                    continue
                print(f"| {n:,} | {method} | {r['seconds']:.1f} ({r['cpu_seconds']:.0f}) "
                      f"| {r['compile_seconds']:.0f} s "
                      f"| {r['peak_mb']:.0f} ({r['vectors_mb']:.0f}) | {r['preservation']:.3f} | {r['load']:.1f} |",
                      flush=True)

    if not args.skip_synthetic:
        print("\n## Synthetic clustered 2048-d vectors\n" + header, flush=True)
        synthetic_rows([n for n in sizes if n < 100000])
        vectors, _ = synthetic(args.placement_size)
        print(f"\n## Placement of 10 % new tracks, synthetic {args.placement_size:,} "
              "(neighbour preservation of the placed; seconds)")
        for method in ("umap", "tsne"):
            for how, (score, seconds) in placement(vectors, method).items():
                print(f"- {method}: {how}: {score:.3f}" + (f" ({seconds:.2f} s)" if seconds is not None else ""),
                      flush=True)
    if not args.skip_music:
        for embedder in ["dsp"] + (["aisfx"] if args.aisfx else []):
            vectors, tracks = music_pieces(embedder)
            print(f"\n## Wesnoth, {embedder}: {len(vectors)} pieces of {tracks.max() + 1} tracks, "
                  f"{vectors.shape[1]}-d; chance = {10 / len(vectors):.3f}")
            for method in ("pca", "umap", "tsne"):
                scores = [catalog_map.neighbour_preservation(vectors, catalog_map.fit_layout(
                    vectors, method, seed=seed, threads=THREADS)) for seed in range(3)]
                print(f"- {method}: {np.mean(scores):.3f} (seeds 0-2: {', '.join(f'{s:.3f}' for s in scores)})",
                      flush=True)
            for method in ("umap", "tsne"):
                for how, (score, _) in placement(vectors, method).items():
                    print(f"- placement, {method}: {how}: {score:.3f}", flush=True)
    if not args.skip_synthetic and any(n >= 100000 for n in sizes):
        print("\n## Synthetic, 100k\n" + header, flush=True)
        synthetic_rows([n for n in sizes if n >= 100000])
    saved = [p for p in (DATA / "map_coords_umap_100000.npy", DATA / "map_coords_pca_100000.npy") if p.exists()]
    if saved:
        coords = np.load(saved[0])
        rows, grid_seconds = bench_svg(coords)
        print(f"\n## SVG at {len(coords):,} tracks, {saved[0].name} (density grid of the whole map: "
              f"{grid_seconds * 1000:.0f} ms)")
        for name, size, gzipped, seconds, shown in rows:
            print(f"- {name}: {size / 1024:.0f} KiB ({gzipped / 1024:.0f} KiB gzipped), {seconds * 1000:.0f} ms, "
                  f"{shown} points as links")


if __name__ == "__main__":
    main()
