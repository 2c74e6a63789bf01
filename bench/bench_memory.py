"""Peak memory of a process embedding a 60-minute WAV: our worker path against the article's get_embedding().

    python bench/bench_memory.py [--minutes 60] [--baseline-limit-gb 12] [--all-paths]

The WAV (44.1 kHz stereo, 16-bit: wesnoth-1.16-music tracks joined with ffmpeg) is written once to bench/data.
Each side runs in a fresh process; the figure is its peak resident set (VmHWM). Ours streams the file
(audio.stream at 32 kHz, the tempo/loudness analysis tap, embed), as the worker does. The baseline loads the
whole file with librosa and runs one forward pass; it runs under an address-space limit so that it fails
with an error instead of calling the kernel's OOM killer on a shared machine.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, cpu_model, peak_rss_mb, random_checkpoint, wesnoth_tracks  # noqa: E402


def long_wav(minutes: int) -> Path:
    target = DATA / f"wesnoth-{minutes}min.wav"
    if target.exists():
        return target
    tracks, total = [], 0.0
    import soundfile as sf

    while total < minutes * 60:
        for path in wesnoth_tracks():
            tracks.append(path)
            total += sf.info(path).duration
            if total >= minutes * 60:
                break
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.writelines(f"file '{p}'\n" for p in tracks)
    partial = target.with_suffix(".part.wav")
    subprocess.run(["ffmpeg", "-v", "fatal", "-y", "-f", "concat", "-safe", "0", "-i", listing.name,
                    "-t", str(minutes * 60), "-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le", str(partial)], check=True)
    Path(listing.name).unlink()
    partial.rename(target)
    return target


def child(side: str, wav: Path, checkpoint: Path, precision: str, engine: str) -> dict:
    started = time.perf_counter()
    if side == "baseline":
        from bench.baseline import get_embedding

        get_embedding(wav, checkpoint)
        return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}
    from audiofind import audio
    from audiofind.embedders.panns import PannsEmbedder

    config = {"DATA_DIR": tempfile.mkdtemp(prefix="bench-instance-"), "PANNS_CHECKPOINT": str(checkpoint),
              "PANNS_PRECISION": precision, "PANNS_ENGINE": engine, "DEVICE": "cpu", "PANNS_BATCH_SIZE": 4}
    embedder = PannsEmbedder(config)
    if side == "prepare":  # the one-time ONNX export (and int8 calibration files) happen here, not in the timed run
        embedder.check()
        return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}
    analysis = audio.Analysis(embedder.sample_rate)
    result = embedder.embed(analysis.tap(audio.stream(wav, embedder.sample_rate)))
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb(),
            "windows": len(result.windows), "bpm": analysis.bpm}


def measure(side, wav, checkpoint, precision="float32", engine="auto", limit_gb=None) -> dict:
    def limit():
        if limit_gb:
            resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), int(limit_gb * 2**30)))

    command = [sys.executable, __file__, "--child", side, "--wav", str(wav), "--checkpoint", str(checkpoint),
               "--precision", precision, "--engine", engine]
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"failed": f"exit {done.returncode}: {lines[-1] if lines else 'killed'}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--baseline-limit-gb", type=float, default=12)
    parser.add_argument("--all-paths", action="store_true", help="also PyTorch float32 and int8")
    parser.add_argument("--child", choices=["ours", "baseline", "prepare"])
    parser.add_argument("--wav", type=Path)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--out", type=Path, default=DATA.parent / "out" / "memory.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.wav, args.checkpoint, args.precision, args.engine)))
        return

    wav = long_wav(args.minutes)
    checkpoint = random_checkpoint()
    report = {"machine": cpu_model(), "command": "python " + " ".join(sys.argv), "wav": wav.name,
              "wav_mb": wav.stat().st_size / 2**20, "runs": {}}
    paths = [("ours, defaults (precision auto: bfloat16 on a CPU with native bf16)", "auto", "auto"),
             ("ours float32 (ONNX Runtime + Winograd)", "float32", "auto")]
    if args.all_paths:  # int8 uses the calibration bench_ingest.py left beside the checkpoint, if any
        paths += [("ours float32 (ONNX Runtime)", "float32", "onnx"), ("ours float32 (PyTorch)", "float32", "torch"),
                  ("ours int8", "int8", "auto")]
    for engine in ("auto", "onnx"):
        report[f"first_run_export_{engine}"] = measure("prepare", wav, checkpoint, "float32", engine)
        print("one-time ONNX export", engine, report[f"first_run_export_{engine}"], file=sys.stderr)
    for label, precision, engine in paths:
        report["runs"][label] = measure("ours", wav, checkpoint, precision, engine)
        print(label, report["runs"][label], file=sys.stderr)
    report["runs"]["baseline"] = measure("baseline", wav, checkpoint, limit_gb=args.baseline_limit_gb)
    print("baseline", report["runs"]["baseline"], file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
