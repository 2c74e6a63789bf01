"""What every embedder gives the catalog, whatever model is behind it."""

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot run on this machine; the message says how to fix it."""


@dataclass
class Embedding:
    vector: np.ndarray  # (dim,) float32, L2-normalised track vector
    windows: np.ndarray  # (n, 2) float32: start and end of each window, seconds
    window_vectors: np.ndarray  # (n, window_dim) float32, each row L2-normalised
    tags: list = field(default_factory=list)  # [(label, score)], best first; empty when the model has no labels


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def track_vector(window_vectors: np.ndarray) -> np.ndarray:
    """concat(mean, max) of the window embeddings, L2-normalised: twice the window dimension."""
    return l2_normalise(np.concatenate([window_vectors.mean(axis=0), window_vectors.max(axis=0)]))


def describe(summary: dict) -> str:
    """One line for people from Embedder.summary(): the engine, how it was chosen, and the timings behind it."""
    text = summary.get("name", "?")
    if "precision" in summary:
        how = {"configured": "as configured", "measured": "measured fastest on this machine",
               "cached": "measured fastest on this machine (cached decision)"}.get(summary.get("how"), "")
        text += f": {summary['precision']}, {summary['engine']} engine, {how}"
        seconds = summary.get("seconds") or {}
        if seconds:
            text += " (" + ", ".join(f"{label} {s:.2f} s" for label, s in sorted(seconds.items(), key=lambda i: i[1]))
            text += " on the probe)"
    return text


class Embedder:
    """Base class. A subclass sets the class attributes and implements ``embed``.

    ``config`` is the app's config mapping (keys without the AUDIOFIND_ prefix).
    The instance is created once per process and reused for every file.
    """

    name: str = ""
    version: str = ""
    sample_rate: int = 32000
    window_dim: int = 0
    window_seconds: float = 10.0
    hop_seconds: float = 5.0

    def __init__(self, config):
        self.config = config

    @property
    def dim(self) -> int:
        return 2 * self.window_dim

    @property
    def identity(self) -> dict:
        return {"name": self.name, "version": self.version, "dim": self.dim, "window_dim": self.window_dim}

    def check(self) -> None:
        """Raise EmbedderUnavailable (with the fix) when the embedder cannot run here."""

    def summary(self) -> dict:
        """What runs the model, for `audiofind info`, /readyz and the serve banner; must not load the model."""
        return {"name": self.name}

    def embed(self, blocks: Iterable[np.ndarray]) -> Embedding:
        """Embed one track given as consecutive mono float32 blocks at ``sample_rate``."""
        raise NotImplementedError
