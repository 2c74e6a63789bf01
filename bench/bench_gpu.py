"""The GPU path once for real: throughput, memory and cosine to CPU float32, per precision, batched chunks.

    python bench/bench_gpu.py [--tracks 8] [--minutes 4] [--batch-sizes 1,4,8] [--out bench/out/gpu.json]

Ready to run in one call on a CUDA machine with nothing else set up: a random-weight checkpoint of the real
size is made if bench/data has none, and the audio is synthetic music (chords with a beat) made in memory, so
decoding is not timed and nothing is downloaded. For each precision (float32, float16, bfloat16) and batch
size (PANNS_BATCH_SIZE: 60 s chunks per forward pass) it embeds every track after a warm-up track and reports
audio seconds per second, peak GPU memory (torch.cuda.max_memory_allocated) and the cosine of each track
vector to the CPU float32 engine's. Last, the `auto` choice on this GPU (timed as on a CPU).
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

from bench.common import DATA, ROOT, cpu_model, random_checkpoint  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
import audiogen  # noqa: E402  (the test suite's synthetic music)

from audiofind.embedders import panns  # noqa: E402

SR = 32000


def blocks(signal, size=30 * SR):
    return (signal[i:i + size] for i in range(0, len(signal), size))


def embedder(checkpoint, **config):
    e = panns.PannsEmbedder({"DATA_DIR": tempfile.mkdtemp(), "PANNS_CHECKPOINT": str(checkpoint), **config})
    e.check()
    return e


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=4)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--out", type=Path, default=DATA.parent / "out" / "gpu.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")

    checkpoint = random_checkpoint()
    tracks = [audiogen.music(args.minutes * 60, SR, seed=seed) for seed in range(args.tracks)]
    audio_seconds = len(tracks) * args.minutes * 60
    cpu = embedder(checkpoint, DEVICE="cpu", PANNS_PRECISION="float32")
    reference = [cpu.embed(blocks(t)).vector for t in tracks[:2]]  # two tracks: the CPU is slow
    report = {"gpu": torch.cuda.get_device_name(0), "cpu": cpu_model(), "torch": torch.__version__,
              "audio_seconds": audio_seconds, "command": "python " + " ".join(sys.argv), "runs": []}
    for precision in ("float32", "float16", "bfloat16"):
        for batch in map(int, args.batch_sizes.split(",")):
            e = embedder(checkpoint, DEVICE="cuda", PANNS_PRECISION=precision, PANNS_BATCH_SIZE=batch)
            e.embed(blocks(tracks[0]))  # warm-up (cuDNN picks its kernels)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            vectors = [e.embed(blocks(t)).vector for t in tracks]
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            cosines = [float(a @ b) for a, b in zip(vectors, reference)]
            run = {"precision": precision, "batch_size": batch, "seconds": round(seconds, 2),
                   "audio_s_per_s": round(audio_seconds / seconds, 1),
                   "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20),
                   "cosine_to_cpu_float32_min": round(min(cosines), 6)}
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
            del e
            torch.cuda.empty_cache()
    auto = embedder(checkpoint, DEVICE="cuda")
    report["auto"] = auto.summary()
    print(json.dumps(report["auto"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu.json").write_text(json.dumps(report, indent=2))
    print(f"\n{report['gpu']}, {len(tracks)} x {args.minutes} min synthetic tracks")
    print("| precision | batch | audio s/s | peak GPU MB | cosine to CPU float32 (min) |\n| --- | --- | --- | --- | --- |")
    for r in report["runs"]:
        print(f"| {r['precision']} | {r['batch_size']} | {r['audio_s_per_s']} | {r['peak_gpu_mb']} | "
              f"{r['cosine_to_cpu_float32_min']} |")


if __name__ == "__main__":
    main()
