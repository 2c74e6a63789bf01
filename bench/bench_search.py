"""Search latency and recall of the local index against catalog size (issue 5, item 4).

    python bench/bench_search.py --tracks 10000 100000 1000000 --segments-up-to 100000

Synthetic catalogs: track vectors (4096-d) and window vectors (2048-d, 15-25 per track) drawn around
cluster centres in a 64-d latent space, projected to the embedding space with isotropic noise and
L2-normalised, so that neighbourhoods exist and recall means something (uniform random vectors in
4096-d have no near neighbours). Queries are fresh draws from the same distribution (track search)
and three consecutive windows of a catalog track plus noise, i.e. a ~20 s excerpt (segment search).

For each size: bulk load (add_many), HNSW build (build_ann), then p50/p99 latency of search() and
search_segments() as the app runs them, with and without filters, recall@10 against exact search
(computed in one pass over the vector files), memory and disk. Writes JSON to bench/out/ and prints
a Markdown table.
"""

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiofind.index.base import Filters, Track
from audiofind.index.local import LocalIndex

DIM, WDIM, LATENT = 4096, 2048, 64
TAGS = [f"tag{i}" for i in range(50)]


class Generator:
    def __init__(self, seed=0, clusters=2000):
        self.rng = np.random.default_rng(seed)
        self.project = self.rng.standard_normal((LATENT, DIM)).astype(np.float32)
        self.project_w = self.rng.standard_normal((LATENT, WDIM)).astype(np.float32)
        self.centres = 2.0 * self.rng.standard_normal((clusters, LATENT)).astype(np.float32)

    def latent(self, n):
        picks = self.rng.integers(0, len(self.centres), n)
        return self.centres[picks] + self.rng.standard_normal((n, LATENT)).astype(np.float32)

    def embed(self, z, project, noise=3.0):
        x = z @ project
        x += noise * self.rng.standard_normal(x.shape, dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def windows(self, z):
        """15-25 window latents around a track latent."""
        counts = self.rng.integers(15, 26, len(z))
        wz = np.repeat(z, counts, axis=0) + 0.7 * self.rng.standard_normal((int(counts.sum()), LATENT), dtype=np.float32)
        return counts, wz


def make_tracks(start, n, rng):
    tracks = []
    for i in range(start, start + n):
        tracks.append(
            Track(
                track_id=f"t{i:07d}",
                file=f"track{i:07d}.mp3",
                content_hash=f"{i:064x}",
                duration=float(rng.uniform(30, 400)),
                embedder="synthetic:1",
                title=f"Track {i}",
                artist=f"artist{i % 500}",
                album=f"album{i // 12}",
                tags=sorted(rng.choice(TAGS, 3, replace=False).tolist()),
                bpm=float(rng.uniform(60, 180)),
                created_at=1.0 + i,
            )
        )
    return tracks


def load(index, n, with_segments, gen, batch=5000):
    meta_rng = np.random.default_rng(1)
    segment_truth = {}  # for a few tracks: their window vectors, to build excerpt queries
    for start in range(0, n, batch):
        size = min(batch, n - start)
        z = gen.latent(size)
        vectors = gen.embed(z, gen.project)
        tracks = make_tracks(start, size, meta_rng)
        if with_segments:
            counts, wz = gen.windows(z)
            window_vectors = gen.embed(wz, gen.project_w, noise=3.0)
            offsets = np.concatenate([[0], np.cumsum(counts)])
        entries = []
        for i, track in enumerate(tracks):
            if with_segments:
                wv = window_vectors[offsets[i] : offsets[i + 1]]
                times = np.stack([np.arange(len(wv)) * 5.0, np.arange(len(wv)) * 5.0 + 10.0], axis=1)
                if (start + i) % max(1, n // 200) == 0 and len(segment_truth) < 200:
                    segment_truth[track.track_id] = wv.copy()
            else:
                wv, times = np.zeros((0, WDIM), np.float32), np.zeros((0, 2), np.float32)
            entries.append((track, vectors[i], times, wv))
        index.add_many(entries)
        print(f"  loaded {start + size}/{n}", file=sys.stderr, flush=True)
    return segment_truth


def exact_top(index, queries, masks, k=10):
    """Exact top-k track positions per query for each mask, in one pass over the track vector file."""
    snap = index._refresh()
    vectors = snap.maps[0]
    row_pos = snap.row_positions("tracks")
    best = {name: [(np.full(0, -np.inf), np.zeros(0, np.int64))] * len(queries) for name in masks}
    for a in range(0, len(vectors), 32768):
        sims = np.asarray(vectors[a : a + 32768]) @ queries.T  # rows x queries
        pos = row_pos[a : a + len(sims)]
        live = pos >= 0
        for name, mask in masks.items():
            keep = live if mask is None else live & mask[pos]
            s, p = sims[keep], pos[keep]
            for q in range(len(queries)):
                scores = np.concatenate([best[name][q][0], s[:, q]])
                ids = np.concatenate([best[name][q][1], p])
                top = np.argpartition(-scores, min(k, len(scores) - 1))[:k] if len(scores) > k else np.arange(len(scores))
                best[name][q] = (scores[top], ids[top])
    return {name: [set(snap.track_ids[ids]) for _, ids in rows] for name, rows in best.items()}


def exact_segment_top(index, query_sets, k=10):
    """Exact segment-search top-k per query (mean over query windows of the best window), one pass."""
    snap = index._refresh()
    windows = snap.maps[1]
    allq = np.concatenate(query_sets)
    owner = np.repeat(np.arange(len(query_sets)), [len(q) for q in query_sets])
    order = np.argsort(snap.win_row)
    starts, counts = snap.win_row[order], snap.win_count[order]
    scores = np.empty((len(snap), len(query_sets)), np.float32)
    # Chunks end at track boundaries, so every track's windows lie in one chunk.
    i = 0
    while i < len(order):
        j = min(len(order), i + 2000)
        a, b = starts[i], starts[j - 1] + counts[j - 1]
        sims = np.asarray(windows[a:b]) @ allq.T
        best = np.maximum.reduceat(sims, starts[i:j] - a, axis=0)  # tracks x all query windows
        per_query = np.zeros((j - i, len(query_sets)), np.float32)
        np.add.at(per_query.T, owner, best.T)
        scores[order[i:j]] = per_query / np.bincount(owner)
        i = j
    return [set(snap.track_ids[np.argsort(-scores[:, q])[:k]]) for q in range(len(query_sets))]


def timed(fn, items):
    times, results = [], []
    for item in items:
        t = time.perf_counter()
        results.append(fn(item))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return results, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def recall(results, truth):
    return float(np.mean([len({h.track_id for h in r} & t) / max(1, min(10, len(t))) for r, t in zip(results, truth)]))


def disk_mb(root, pattern):
    return sum(p.stat().st_size for p in Path(root).glob(pattern)) / 1e6


def run_size(n, with_segments, root, n_queries, seg_queries):
    print(f"== {n} tracks, segments: {with_segments}", file=sys.stderr, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    identity = {"name": "synthetic", "version": "1", "dim": DIM, "window_dim": WDIM}
    loader = LocalIndex({"DATA_DIR": str(root), "ANN_THRESHOLD": 0})
    loader.set_embedder_identity(identity)
    gen = Generator()
    t = time.perf_counter()
    segment_truth = load(loader, n, with_segments, gen)
    load_s = time.perf_counter() - t
    loader.close()

    index = LocalIndex({"DATA_DIR": str(root), "ANN_THRESHOLD": 20000})
    t = time.perf_counter()
    built = index.build_ann()
    build_s = time.perf_counter() - t
    print(f"  HNSW build {build_s:.0f} s", file=sys.stderr, flush=True)
    snap = index._refresh()
    rng = np.random.default_rng(2)
    queries = gen.embed(gen.latent(n_queries), gen.project)
    some_ids = list(snap.track_ids[rng.integers(0, len(snap), 5)])
    filters = {
        "none": Filters(),
        "exclude 5 ids + bpm 90-130 (33%)": Filters(exclude_track_ids=some_ids, min_bpm=90, max_bpm=130),
        "one tag (6%)": Filters(tags=["tag7"]),
        "artist (0.2%)": Filters(artist="artist42"),
    }
    masks = {name: snap.mask(f) for name, f in filters.items()}
    t = time.perf_counter()
    truth = exact_top(index, queries, masks)
    reference_s = time.perf_counter() - t
    out = {
        "tracks": n,
        "load_s": round(load_s, 1),
        "hnsw_build_s": round(build_s, 1),
        "hnsw_size": {k: v["size"] for k, v in built.items() if v},
        "mode": {
            kind: "HNSW (int8) + exact re-scoring" if index._use_ann(snap, kind) else "exact (below ANN_THRESHOLD)"
            for kind in ("tracks", "windows")
        },
        "track_search": {},
    }
    for name, f in filters.items():
        results, p50, p99 = timed(lambda q, f=f: index.search(q, 10, f), queries)
        out["track_search"][name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "recall@10": recall(results, truth[name])}
        print(f"  track {name}: {out['track_search'][name]}", file=sys.stderr, flush=True)
    _, p50, p99 = timed(lambda q: index.search(q, 10, Filters(), exact=True), queries[: 20 if n <= 100000 else 3])
    out["track_search"]["exact reference, no filter"] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "recall@10": 1.0}
    if with_segments:
        seg_rng = np.random.default_rng(3)
        excerpts, sources = [], []
        for track_id, wv in list(segment_truth.items())[:seg_queries]:
            s = int(seg_rng.integers(0, len(wv) - 3))
            q = wv[s : s + 3] + 0.02 * seg_rng.standard_normal((3, WDIM), dtype=np.float32)
            excerpts.append(q / np.linalg.norm(q, axis=1, keepdims=True))
            sources.append(track_id)
        t = time.perf_counter()
        seg_truth = exact_segment_top(index, excerpts)
        reference_s += time.perf_counter() - t
        out["segment_search"] = {}
        for name in ("none", "exclude 5 ids + bpm 90-130 (33%)"):
            results, p50, p99 = timed(lambda q, f=filters[name]: index.search_segments(q, 10, f), excerpts)
            entry = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}
            if name == "none":
                entry["recall@10"] = recall(results, seg_truth)
                entry["source_ranked_first"] = float(np.mean([r[0].track_id == s for r, s in zip(results, sources)]))
            out["segment_search"][name] = entry
            print(f"  segments {name}: {entry}", file=sys.stderr, flush=True)
        _, p50, p99 = timed(lambda q: index.search_segments(q, 10, Filters(), exact=True), excerpts[:5])
        out["segment_search"]["exact reference"] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}
    out["reference_pass_s"] = round(reference_s, 1)
    hnsw = {k: v.memory_usage / 1e6 for k, (_, v) in index._ann_views.items()}
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    out["memory"] = {
        # Peak of the whole process so far (load, build and exact reference passes included): run one size
        # per process for a per-size figure. RssAnon is the index's own heap (snapshot arrays, HNSW loaded
        # by the writer); RssFile the resident pages of the memory-mapped vector and HNSW files.
        "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_anon_mb_after_search": round(int(status["RssAnon"].split()[0]) / 1024),
        "rss_file_mb_after_search": round(int(status["RssFile"].split()[0]) / 1024),
        "hnsw_mb": {k: round(v) for k, v in hnsw.items()},
    }
    out["disk_mb"] = {
        "sqlite": round(disk_mb(root, "catalog.sqlite3*")),
        "track_vectors": round(disk_mb(root, "track_vectors.*")),
        "window_vectors": round(disk_mb(root, "window_vectors.*")),
        "hnsw_tracks": round(disk_mb(root, "tracks.*.usearch")),
        "hnsw_windows": round(disk_mb(root, "windows.*.usearch")),
    }
    index.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--segments-up-to", type=int, default=100000, help="window vectors only up to this size")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--segment-queries", type=int, default=100)
    parser.add_argument("--data", default="bench/data/search", help="scratch folder (deleted per size)")
    parser.add_argument("--keep", action="store_true", help="keep the last catalog on disk")
    args = parser.parse_args()
    results = []
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    for n in args.tracks:
        root = Path(args.data) / str(n)
        results.append(run_size(n, n <= args.segments_up_to, root, args.queries, args.segment_queries))
        Path(f"bench/out/search_{n}.json").write_text(json.dumps(results[-1], indent=2))
        print(json.dumps(results[-1], indent=2), flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
