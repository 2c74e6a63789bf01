"""Accuracy of audiofind.musicfacts on audio whose facts are known, and what it says about real tracks.

- key: chord progressions (two cycles of a four-bar progression, 19.2 s) in all 24 keys, five timbres,
  each clean, with drums, and with drums and white noise at 10 dB SNR; exact key, relative, fifth and
  parallel errors, mode accuracy, accuracy above the median confidence;
- vocals: formant-synthesised sung vowels with vibrato over an accompaniment (at 0, -6 and -12 dB to it)
  against the accompaniment alone, a voice without vibrato, and the accompaniment with a second (saw) chord
  part. An instrument played with vibrato is not among the cases (it would be heard as a voice).
  The threshold is chosen on seeds 0-3 (balanced accuracy) and measured on seeds 10-15;
- energy: stems (chords, bass, drums) mixed at known levels; Spearman correlation of energy with the level,
  and the fraction of pairs ordered as the levels are;
- the Wesnoth tracks (bench/data): how many the signal estimate calls vocal, key confidences, speed.

Usage: python bench/bench_facts.py [--quick]
"""

import argparse
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audiofind import audio, musicfacts  # noqa: E402
from bench.common import cpu_model, wesnoth_tracks  # noqa: E402
from tests import musicgen  # noqa: E402

SR = 22050
SECONDS = 19.2  # two cycles of a four-bar progression at 100 BPM


def key_error(found, tonic, mode):
    if found is None:
        return "none"
    if (found.tonic, found.mode) == (tonic, mode):
        return "exact"
    if found.mode != mode and found.camelot[:-1] == musicfacts.camelot(tonic, mode)[:-1]:
        return "relative"
    if found.mode == mode and (found.tonic - tonic) % 12 in (5, 7):
        return "fifth"
    if found.tonic == tonic:
        return "parallel"
    return "other"


def bench_key(quick):
    timbres = list(musicgen.TIMBRES)[:2] if quick else list(musicgen.TIMBRES)
    conditions = {"clean": {}, "drums": {"drums": True}, "drums+noise 10 dB": {"drums": True, "noise_db": 10}}
    rows = []
    for timbre, (condition, options), mode, tonic in itertools.product(
        timbres, conditions.items(), ("major", "minor"), range(12)
    ):
        x = musicgen.progression(tonic, mode, SECONDS, SR, timbre, seed=tonic, **options)
        key = musicfacts.analyse(x, SR).key
        rows.append((timbre, condition, mode, key_error(key, tonic, mode), key.confidence if key else 0.0,
                     key is not None and key.mode == mode))
    return rows


def summarise_key(rows):
    lines = []
    n = len(rows)
    errors = Counter(r[3] for r in rows)
    lines.append(f"- all {n} clips: exact **{errors['exact'] / n:.1%}**, relative {errors['relative'] / n:.1%}, "
                 f"fifth {errors['fifth'] / n:.1%}, parallel {errors['parallel'] / n:.1%}, other {errors['other'] / n:.1%}; "
                 f"mode right {np.mean([r[5] for r in rows]):.1%}; exact or a Camelot neighbour "
                 f"{(errors['exact'] + errors['relative'] + errors['fifth']) / n:.1%}")
    median = np.median([r[4] for r in rows])
    confident = [r for r in rows if r[4] >= median]
    lines.append(f"- confidence >= its median ({median:.3f}): exact {np.mean([r[3] == 'exact' for r in confident]):.1%} "
                 f"of {len(confident)}; below: {np.mean([r[3] == 'exact' for r in rows if r[4] < median]):.1%}")
    for column, name in ((0, "timbre"), (1, "condition"), (2, "mode")):
        values = sorted({r[column] for r in rows}, key=[r[column] for r in rows].index)
        parts = [f"{v} {np.mean([r[3] == 'exact' for r in rows if r[column] == v]):.0%}" for v in values]
        lines.append(f"- exact by {name}: " + ", ".join(parts))
    return lines


def vocal_cases(seeds):
    """[(case, is_vocal, score)]."""
    out = []
    timbres = list(musicgen.TIMBRES)
    for seed in seeds:
        tonic, mode = seed % 12, ("major", "minor")[seed % 2]
        timbre = timbres[seed % len(timbres)]
        accompaniment = musicgen.progression(tonic, mode, SECONDS, SR, timbre, seed=seed, drums=seed % 3 != 0)
        voice = musicgen.sung(tonic, mode, SECONDS, SR, seed=seed, low=seed % 2 == 1)

        def score(x):
            return musicfacts.analyse(x, SR).vocal_score

        out.append(("accompaniment alone", False, score(accompaniment)))
        for db in (0, -6, -12):
            out.append((f"voice at {db} dB", True, score(musicgen.mix((accompaniment, 0), (voice, db)))))
        straight = musicgen.sung(tonic, mode, SECONDS, SR, seed=seed, vibrato_cents=0)
        out.append(("voice without vibrato, 0 dB", True, score(musicgen.mix((accompaniment, 0), (straight, 0)))))
        lead = musicgen.progression(tonic, mode, SECONDS, SR, "saw", seed=seed + 50)
        out.append(("accompaniment + a second chord part", False, score(musicgen.mix((accompaniment, 0), (lead, -6)))))
    return out


def best_threshold(cases):
    """The balanced-accuracy threshold on cases the detector is meant for: voices with vibrato (the straight
    voice is reported, not aimed at)."""
    cases = [c for c in cases if "without vibrato" not in c[0]]
    scores = sorted({s for _, _, s in cases})
    candidates = [(a + b) / 2 for a, b in zip(scores, scores[1:])] or scores

    def balanced(t):
        positives = [s >= t for _, v, s in cases if v]
        negatives = [s < t for _, v, s in cases if not v]
        return (np.mean(positives) + np.mean(negatives)) / 2

    return max(candidates, key=balanced)


def bench_energy():
    """[(series, levels, energies)]: one changing level at a time, the rest fixed."""
    chords = musicgen.progression(0, "major", SECONDS, SR, "piano", seed=1)
    bass = musicgen.progression(0, "major", SECONDS, SR, "sine", seed=2)
    drums = musicgen.drum_track(SECONDS, SR, seed=3) * 0.7
    out = []
    gains = [-30, -24, -18, -12, -6, 0]
    full = musicgen.mix((chords, 0), (bass, -6), (drums, -3))
    out.append(("master gain of a full mix (dB)", gains, [musicfacts.analyse(full * 10 ** (g / 20), SR).energy for g in gains]))
    drum_levels = [-40, -24, -18, -12, -6, 0]
    out.append(("drums level under fixed chords + bass (dB)", drum_levels,
                [musicfacts.analyse(musicgen.mix((chords, -6), (bass, -10), (drums, g)), SR).energy for g in drum_levels]))
    stems = [("chords", [(chords, -6)]), ("+ bass", [(chords, -6), (bass, -8)]),
             ("+ drums", [(chords, -6), (bass, -8), (drums, -6)]),
             ("+ saw lead", [(chords, -6), (bass, -8), (drums, -6),
                             (musicgen.progression(0, "major", SECONDS, SR, "saw", seed=4), -6)])]
    out.append(("stems added one by one", [name for name, _ in stems],
                [musicfacts.analyse(musicgen.mix(*parts), SR).energy for _, parts in stems]))
    return out


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def bench_real(quick):
    tracks = wesnoth_tracks()[: 6 if quick else None]
    rows, seconds, audio_seconds = [], 0.0, 0.0
    for path in tracks:
        facts = musicfacts.MusicFacts(SR)
        start = time.perf_counter()
        samples = sum(len(b) for b in facts.tap(audio.stream(path, SR)))
        result = facts.finish()
        seconds += time.perf_counter() - start
        audio_seconds += samples / SR
        rows.append((path.stem, result))
    return rows, seconds, audio_seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    start = time.perf_counter()
    key_rows = bench_key(args.quick)
    print("## Key and mode")
    print(*summarise_key(key_rows), sep="\n")
    print(f"({time.perf_counter() - start:.0f} s)")

    train = vocal_cases(range(4) if not args.quick else range(2))
    threshold = best_threshold(train)
    test = vocal_cases(range(10, 16) if not args.quick else range(10, 12))
    print(f"\n## Vocals (signal estimate)\nthreshold chosen on seeds 0-3: {threshold:.3f} "
          f"(module constant: {musicfacts.SIGNAL_VOCAL_THRESHOLD})")
    for t_name, t in (("chosen", threshold), ("module", musicfacts.SIGNAL_VOCAL_THRESHOLD)):
        right = [(s >= t) == v for _, v, s in test]
        print(f"- test seeds, {t_name} threshold {t:.3f}: accuracy {np.mean(right):.1%} of {len(test)}")
        for case in dict.fromkeys(c for c, _, _ in test):
            sel = [(v, s) for c, v, s in test if c == case]
            print(f"  - {case}: {np.mean([(s >= t) == v for v, s in sel]):.0%} right, "
                  f"scores {min(s for _, s in sel):.3f}-{max(s for _, s in sel):.3f}")

    print("\n## Energy")
    for series, levels, energies in bench_energy():
        ordered = [energies[j] > energies[i] for i, j in itertools.combinations(range(len(levels)), 2)]
        print(f"- {series}: {', '.join(f'{lv}: {e:.3f}' for lv, e in zip(levels, energies))}; "
              f"Spearman {spearman(list(range(len(levels))), energies):.2f}, pairs ordered {np.mean(ordered):.0%}")

    print("\n## Wesnoth tracks (bench/data)")
    rows, seconds, audio_seconds = bench_real(args.quick)
    vocal = [name for name, f in rows if f.vocal]
    print(f"- {len(rows)} tracks, {audio_seconds / 60:.0f} min of audio in {seconds:.1f} s "
          f"({audio_seconds / seconds:.0f}x real time, decoding included)")
    print(f"- called vocal by the signal estimate: {len(vocal)} ({', '.join(vocal) or 'none'})")
    scores = np.array([f.vocal_score for _, f in rows])
    print(f"- vocal scores: median {np.median(scores):.3f}, max {scores.max():.3f}")
    print(f"- key confidence: median {np.median([f.key.confidence for _, f in rows if f.key]):.3f}; modes "
          f"{dict(Counter(f.key.mode for _, f in rows if f.key))}")
    energies = sorted((f.energy, name) for name, f in rows)
    print(f"- energy: lowest {energies[0][1]} {energies[0][0]:.2f}, highest {energies[-1][1]} {energies[-1][0]:.2f}")
    for name, f in rows:
        print(f"  {name}: {f.key.name if f.key else '-'} ({f.key.confidence if f.key else 0:.3f}) "
              f"vocal {f.vocal_score:.3f} energy {f.energy:.2f}")


if __name__ == "__main__":
    main()
