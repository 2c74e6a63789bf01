"""The 527 AudioSet class names, shipped in the package (never downloaded at run time)."""

import csv
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def audioset_labels() -> tuple:
    """Display names in model output order: ``audioset_labels()[i]`` names Cnn14's output ``i``."""
    text = resources.files("audiofind").joinpath("data/audioset_class_labels.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    labels = [""] * len(rows)
    for row in rows:
        labels[int(row["index"])] = row["display_name"]
    return tuple(labels)
