"""End to end, as a user runs it: cold processes on both sides, the defaults only, and the ratio table.

    python bench/bench_e2e.py [--small 3] [--large 20] [--skip-query] [--before DIR]

- cold start: `audiofind ingest` of a 1 s WAV in a fresh instance folder (start-up, model load and one tiny
  track: an upper bound on "from the command to the first track being embedded"), and `audiofind serve` until
  it prints its address; median of 3 each, page cache warm.
- ingest: `audiofind ingest` of N real MP3s (3-5 min wesnoth tracks re-encoded at 192 kbps) in a fresh instance
  folder, against `python bench/baseline.py` on the same files (the article's get_embedding() once per file);
  each is one cold process, timed from its start to its exit.
- query: bench_query.py's measurement (a 4-minute MP3 dropped on `audiofind serve` until results).
- with --before DIR (another source tree of Audio Find, e.g. `git archive <commit> | tar -x -C DIR`): the cold
  start and the small ingest of that code too, each right before ours, for a before/after in the same run.

Before timing, one `audiofind info` makes the choices a new machine makes once (the engine timing, the
converted weights beside the checkpoint); its time is reported apart. Every figure has the load average
with it: on a shared machine, read the ratios, which come from sides run one right after the other.
"""

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cpu_model, duration_seconds, random_checkpoint, wesnoth_mp3s  # noqa: E402

OUT = ROOT / "bench" / "out"
AUDIOFIND = [sys.executable, "-c", "from audiofind.cli import main; main()"]


def environment(checkpoint):
    env = {**os.environ, "AUDIOFIND_PANNS_CHECKPOINT": str(checkpoint), "AUDIOFIND_SECRET_KEY": "bench"}
    for name in list(env):  # the defaults only
        if name.startswith("AUDIOFIND_") and name not in ("AUDIOFIND_PANNS_CHECKPOINT", "AUDIOFIND_SECRET_KEY"):
            del env[name]
    return env


CPU_SECONDS = {}  # command -> CPU seconds of its last run (its process and the children it waited for)


def timed(command, env, tree=ROOT):
    """(wall seconds, load average) of one cold process; its CPU time goes to CPU_SECONDS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = dict(env, PYTHONPATH=str(tree))
    subprocess.run(command, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS[tuple(command)] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - started, os.getloadavg()[0]


def fresh():
    return tempfile.mkdtemp(prefix="bench-e2e-")


def ours(files, env, tree=ROOT):
    command = AUDIOFIND + ["--data-dir", fresh(), "ingest", *map(str, files)]
    wall, load = timed(command, env, tree)
    return wall, load, CPU_SECONDS[tuple(command)]


def baseline(files, env):
    command = [sys.executable, str(ROOT / "bench" / "baseline.py"), *map(str, files)]
    wall, load = timed(command, env)
    return wall, load, CPU_SECONDS[tuple(command)]


def serve_ready(env):
    """Seconds from `audiofind serve` to its address line, then stopped."""
    from bench.bench_query import _free_port

    started = time.perf_counter()
    process = subprocess.Popen(AUDIOFIND + ["--data-dir", fresh(), "serve", "--port", str(_free_port())], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "running at" in line:
                return time.perf_counter() - started, os.getloadavg()[0]
        raise SystemExit("audiofind serve exited before it was ready")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def tiny_wav(folder: Path) -> Path:
    path = folder / "one_second.wav"
    t = np.arange(32000) / 32000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(32000)
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return path


def median_of(function, n=3):
    runs = [function() for _ in range(n)]
    return {"median_s": statistics.median(r[0] for r in runs), "runs_s": [round(r[0], 2) for r in runs],
            "load": [round(r[1], 2) for r in runs]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=3)
    parser.add_argument("--large", type=int, default=20)
    parser.add_argument("--skip-query", action="store_true")
    parser.add_argument("--before", type=Path, help="another source tree, timed right before ours")
    args = parser.parse_args()

    checkpoint = random_checkpoint()
    env = environment(checkpoint)
    mp3s = [p for p in wesnoth_mp3s() if 120 <= duration_seconds(p) <= 300]
    small = [p for p in mp3s if duration_seconds(p) >= 180][: args.small]
    large = mp3s[: args.large]
    report = {"machine": cpu_model(), "command": "python " + " ".join(sys.argv), "rows": []}

    started = time.perf_counter()
    info = subprocess.run(AUDIOFIND + ["--data-dir", fresh(), "info", "--json"], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True)
    report["first_load"] = {"seconds": round(time.perf_counter() - started, 2), "embedder": json.loads(info.stdout)}
    print(f"first load on this machine: {report['first_load']['seconds']} s, {report['first_load']['embedder']}",
          file=sys.stderr)
    wav = tiny_wav(Path(fresh()))
    ours([wav], env)  # warm the page cache

    def row(name, target, ours_s, baseline_s=None, load=None, higher_is_better=True):
        entry = {"name": name, "ours_s": round(ours_s, 2), "baseline_s": baseline_s and round(baseline_s, 2),
                 "target": target, "load": load}
        if baseline_s:
            entry["ratio"] = round(baseline_s / ours_s, 2) if higher_is_better else round(ours_s / baseline_s, 3)
        report["rows"].append(entry)
        print(json.dumps(entry), file=sys.stderr)

    ready = median_of(lambda: timed(AUDIOFIND + ["--data-dir", fresh(), "info"], env))
    row("cold start: `audiofind info` (start-up and model load, no audio), start to exit", "<= 3 s", ready["median_s"],
        load=ready["load"])
    if args.before:
        ours([wav], env, args.before)  # its own one-time conversions first
        for files, name in (([wav], "cold start: `audiofind ingest` of a 1 s WAV"), (small, f"`audiofind ingest` of {len(small)} MP3s")):
            before, after, loads = [], [], []
            for _ in range(2):
                before.append(ours(files, env, args.before)[0])
                seconds, load, _ = ours(files, env)
                after.append(seconds), loads.append(round(load, 2))
            row(f"{name}: before ({args.before.name}) / after, best of 2 each", "-", min(after), min(before), load=loads)
    cold = median_of(lambda: ours([wav], env))
    row("cold start: `audiofind ingest` of a 1 s WAV, start to exit", "<= 3 s", cold["median_s"], load=cold["load"])
    ready = median_of(lambda: serve_ready(env))
    row("cold start: `audiofind serve` until ready", "<= 5 s", ready["median_s"], load=ready["load"])
    for files, target, order in ((small, ">= 2.5x", ("baseline", "ours")), (large, ">= 4x", ("ours", "baseline"))):
        audio = sum(duration_seconds(p) for p in files) / 60
        times, loads, cpu = {}, {}, {}
        for side in order:
            times[side], loads[side], cpu[side] = (baseline if side == "baseline" else ours)(files, env)
        row(f"`audiofind ingest` of {len(files)} MP3s ({audio:.1f} min), cold process", target, times["ours"],
            times["baseline"], load={k: round(v, 2) for k, v in loads.items()})
        report["rows"][-1]["cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
        report["rows"][-1]["cpu_ratio"] = round(cpu["baseline"] / cpu["ours"], 2)
    if not args.skip_query:
        from bench import bench_query

        query = bench_query.measure()
        row(f"query latency, {query['query']} dropped on `audiofind serve` (median of {len(query['ours_runs_s'])})",
            "<= 0.25", query["ours_median_s"], query["baseline_median_s"], load=query["load_average_after"][0],
            higher_is_better=False)

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "e2e.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def markdown(report):
    first = report["first_load"]
    lines = [f"Machine: {report['machine']}. Command: `{report['command']}`. The run's first `audiofind info`: "
             f"{first['seconds']} s (engine decision {first['embedder'].get('how')}: "
             f"{first['embedder'].get('precision')}, {first['embedder'].get('engine')} engine).", "",
             "| comparison | ours | baseline (article) | ratio (wall) | ratio (CPU time) | target | load average |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rows"]:
        ratio = f"{r['ratio']}{'x' if not r['target'].startswith('<= 0') else ''}" if "ratio" in r else "-"
        base = f"{r['baseline_s']} s" if r["baseline_s"] else "-"
        cpu = f"{r['cpu_ratio']}x ({r['cpu_s']['ours']} / {r['cpu_s']['baseline']} s)" if "cpu_ratio" in r else "-"
        lines.append(f"| {r['name']} | {r['ours_s']} s | {base} | {ratio} | {cpu} | {r['target']} | {r['load']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
