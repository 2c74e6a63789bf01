"""Pick the fastest inference path by timing it on this machine, as cuDNN's benchmark mode or FFTW's plans do.

Which engine and precision is fastest depends on the CPU in ways its flags do not tell (bfloat16 is much faster
than float32 on a CPU with AMX, and slower on one with only AVX512-BF16), so every applicable candidate is
built, run on the same probe input and timed; the fastest whose output stays close enough to the float32
reference's wins, and the reference itself is always a candidate, so the choice is never slower than it.
The decision is written to a JSON file with the key it was measured under (CPU, checkpoint, library versions,
candidates) and reused while the key matches; a file lock keeps two processes starting at once from timing
against each other, and the second one reads the first one's decision.
"""

import fcntl
import json
import math
import os
import tempfile
import time
from pathlib import Path

from audiofind.embedders.base import EmbedderUnavailable

ROUNDS = 3  # timed runs per candidate after one warm-up run, interleaved; the fastest run counts
VERSION = 2  # of the measurement and of the engines it times: a change makes every cached decision stale


def measure(label, run, probe) -> float:
    """Seconds one run of ``run`` on ``probe`` takes (tests replace this clock)."""
    started = time.perf_counter()
    run(probe)
    return time.perf_counter() - started


def read_decision(path: Path, key: dict):
    """The cached decision for ``key``, or None when there is none, it is unreadable or it was made under another key."""
    try:
        decision = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(decision, dict) or decision.get("key") != key or not isinstance(decision.get("chosen"), str):
        return None
    return decision


def _write(path: Path, decision: dict):
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(decision, out, indent=1)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def choose(path: Path, key: dict, candidates, reference: str, build, probe, similarity, min_similarity: float):
    """(label, runner, decision) of the fastest candidate whose ``similarity`` to the reference's output on
    ``probe`` is at least ``min_similarity``.

    ``candidates``: labels, ``reference`` among them; ``build(label)`` makes a runner (a candidate that cannot be
    built is left out, unless it is the reference); ``probe()`` makes the input (only when measuring);
    ``similarity(output, reference_output)`` -> float.
    ``decision["how"]`` is "measured" or "cached".
    """
    key = dict(key, candidates=sorted(candidates), reference=reference, min_similarity=min_similarity, version=VERSION)
    lock = None
    try:
        lock = open(path.with_name(path.name + ".lock"), "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError:  # a read-only folder: measure without a lock and without caching
        lock = None
    try:
        cached = read_decision(path, key)
        if cached is not None and cached["chosen"] in candidates:
            return cached["chosen"], build(cached["chosen"]), dict(cached, how="cached")
        decision = _measure(key, candidates, reference, build, probe, similarity, min_similarity)
        runner = decision.pop("runner")
        try:
            _write(path, decision)
        except OSError:
            pass
        return decision["chosen"], runner, dict(decision, how="measured")
    finally:
        if lock is not None:
            lock.close()


def _measure(key, candidates, reference, build, probe, similarity, min_similarity):
    probe = probe()
    runners, errors = {}, {}
    for label in [reference] + [c for c in candidates if c != reference]:
        try:
            runners[label] = build(label)
        except EmbedderUnavailable as exc:
            if label == reference:
                raise
            errors[label] = str(exc)
    outputs = {label: run(probe) for label, run in runners.items()}  # the warm-up run, and what is compared
    seconds = {label: math.inf for label in runners}
    for _ in range(ROUNDS):
        for label, run in runners.items():  # interleaved, so a change in the machine's load hits all alike
            seconds[label] = min(seconds[label], measure(label, run, probe))
    similarities = {label: float(similarity(out, outputs[reference])) for label, out in outputs.items()}
    passing = [label for label in runners if label == reference or similarities[label] >= min_similarity]
    chosen = min(passing, key=lambda label: seconds[label])
    return {"key": key, "chosen": chosen, "seconds": seconds, "similarity": similarities,
            "min_similarity": min_similarity, "errors": errors, "runner": runners[chosen],
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load": os.getloadavg()[0]}
