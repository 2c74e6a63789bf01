"""PANNs Cnn14 embedder: 2048-d window embeddings and AudioSet tags from the official checkpoint.

Each second of audio goes through the convolution trunk once: the log-mel spectrogram is computed as
the audio streams in, the trunk runs over chunks of it (with a margin for its receptive field), and
every ~10 s window is pooled from the resulting feature sequence, the way Cnn14's own forward pools a clip.

The package: checkpoint.py (download, layout check, derived-weight caches), reference.py (panns_inference's
Cnn14, for tests and the baseline), frontend.py (log-mel filter bank, clip head), stream.py (streaming,
chunking, windows), engines.py and convolutions.py (what runs the trunk), choice.py and autotune.py (which of
them runs), int8.py (calibration and its self-check), memory.py (pages back to the OS). This module: the
embedder and its plugin hook; the names other modules import from here are re-exported.
"""

import json
import threading
from pathlib import Path

import numpy as np

from audiofind.embedders.base import Embedder, EmbedderUnavailable, Embedding, l2_normalise, track_vector
from audiofind.embedders.panns import choice
from audiofind.embedders.panns.checkpoint import (CHECKPOINT_BYTES, CHECKPOINT_NAME, CheckpointState, cache_path,
                                                  checkpoint_path, converted, download_checkpoint, missing_message,
                                                  read_checkpoint)
from audiofind.embedders.panns.choice import AUTO_MIN_COSINE, cpu_identity, resolve_device
from audiofind.embedders.panns.engines import (FastTrunk, cpu_has_bf16, export_trunk, fold_trunk, folded_trunk,
                                               onnx_runner, torch_runner)
from audiofind.embedders.panns.frontend import FrontEnd, pool_windows
from audiofind.embedders.panns.int8 import Int8Trunk
from audiofind.embedders.panns.memory import release_free_memory
from audiofind.embedders.panns.reference import MODEL_ARGS, build_cnn14, load_cnn14, load_models_module
from audiofind.embedders.panns.stream import (CHUNK_FRAMES, HOP_STEPS, STEP_SECONDS, WINDOW_STEPS, ChunkedTrunk,
                                              LogmelStream, window_spans)
from audiofind.hookspecs import hookimpl
from audiofind.labels import audioset_labels

__all__ = [
    "AUTO_MIN_COSINE", "CHECKPOINT_BYTES", "CHECKPOINT_NAME", "CHUNK_FRAMES", "MODEL_ARGS", "ChunkedTrunk",
    "FastTrunk", "FrontEnd", "LogmelStream", "PannsEmbedder", "build_cnn14", "cache_path", "checkpoint_path",
    "cpu_has_bf16", "cpu_identity", "download_checkpoint", "export_trunk", "fold_trunk", "folded_trunk",
    "load_cnn14", "load_models_module", "onnx_runner", "pool_windows", "read_checkpoint",
    "register_embedders", "torch_runner", "window_spans",
]

TOP_TAGS = 5


class PannsEmbedder(Embedder):
    name = "panns"
    version = "cnn14-1"
    sample_rate = 32000
    window_dim = 2048
    window_seconds = WINDOW_STEPS * STEP_SECONDS
    hop_seconds = HOP_STEPS * STEP_SECONDS

    def __init__(self, config):
        super().__init__(config)
        self.front = None
        self.device = None
        self.choice = None  # how the engine was chosen: see summary()
        self._run = None
        self._state = None
        self._lock = threading.Lock()

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.config)

    def check(self) -> None:
        self._load()

    def _load(self):
        with self._lock:
            if self.front is not None:
                return self.front
            path = self.checkpoint
            if not path.is_file():
                url = self.config.get("PANNS_CHECKPOINT_URL") or ""
                if not url:
                    raise EmbedderUnavailable(missing_message(path, "the official Cnn14 checkpoint", "no URL set"))
                download_checkpoint(url, path)
            self.device = resolve_device(self.config.get("DEVICE", "auto"))
            self._state = CheckpointState(path)
            front = FrontEnd(converted(path, "front", lambda: FrontEnd.tensors(self._state())), self.device)
            self._run, self.choice = self._make_runner(front)
            if not isinstance(self._run, Int8Trunk):  # int8 exports the trunk again when it calibrates
                self._state.release()
            release_free_memory()
            self.front = front
            return front

    def candidates(self, engine: str) -> list:
        """The (precision-engine) labels ``auto`` times here, the float32 reference first."""
        return choice.candidates(self.device, engine, self.checkpoint)

    def _make_runner(self, front):
        return choice.choose(self, front)

    def _build(self, label):
        return choice.build(self, label)

    def summary(self) -> dict:
        """What runs the model and why: {name, device, precision, engine, how, seconds?, similarity?}.

        ``how``: "configured" (AUDIOFIND_PANNS_PRECISION set), "measured" (timed at this load) or "cached" (timed
        at an earlier load on this machine). Before the model is loaded in this process, the cached decision, if
        any, without loading anything.
        """
        choice = self.choice
        if choice is None:
            try:
                choice = json.loads(cache_path(self.checkpoint, "engine.json").read_text())
                choice = dict(choice, how="cached", precision=choice["chosen"].split("-")[0],
                              engine=choice["chosen"].split("-")[1])
            except (OSError, ValueError, KeyError):
                return {"name": self.name, "loaded": False}
        keep = ("precision", "engine", "how", "seconds", "similarity", "min_similarity")
        return {"name": self.name, "loaded": self.front is not None,
                "device": self.device.type if self.device is not None else None,
                **{k: choice[k] for k in keep if k in choice},
                **({"cpu": choice["key"]["cpu"]} if "key" in choice else {})}

    def calibrate_int8(self, tracks) -> float:
        """Build the int8 trunk from ``tracks`` (an iterable of block iterables, the catalog's own audio).

        Returns the mean cosine to float32 on held-out clips; raises EmbedderUnavailable when it is too low.
        """
        self._load()
        if not isinstance(self._run, Int8Trunk):
            raise EmbedderUnavailable("calibrate_int8 needs AUDIOFIND_PANNS_PRECISION=int8")
        for blocks in tracks:
            self.feature_sequence(blocks)
            self._run.track_done()
            if self._run.session is not None:
                return self._run.cosine
        return self._run.build()

    def feature_sequence(self, blocks):
        """The trunk's 2048-channel sequence for a track (one row per 0.32 s) and its duration in seconds."""
        front = self._load()
        stream = LogmelStream(front, self.device)
        # Chunks per forward: on CPU one, since batching 60 s chunks gains no speed there and costs an extra
        # chunk's activations each (BENCHMARKS.md, peak memory); on a GPU, PANNS_BATCH_SIZE.
        batch = int(self.config.get("PANNS_BATCH_SIZE", 4)) if self.device.type == "cuda" else 1
        chunks = ChunkedTrunk(self._run, CHUNK_FRAMES, batch)
        for block in blocks:
            chunks.push(stream.push(block))
        chunks.push(stream.finish())
        sequence = chunks.finish()
        return sequence, stream.samples / self.sample_rate

    def embed(self, blocks) -> Embedding:
        sequence, duration = self.feature_sequence(blocks)
        if isinstance(self._run, Int8Trunk):
            self._run.track_done()  # may calibrate now, and refuse (raise) if int8 is not accurate enough
        spans = window_spans(len(sequence))
        embeddings, scores = pool_windows(self.front, sequence, spans)
        window_vectors = l2_normalise(embeddings)
        windows = np.array([(s * STEP_SECONDS, min(e * STEP_SECONDS, duration)) for s, e in spans], np.float32)
        windows[-1, 1] = duration  # the last window reaches the end (the trunk drops a tail under 0.32 s)
        mean_scores = scores.mean(axis=0)
        labels = audioset_labels()
        top = np.argsort(-mean_scores)[:TOP_TAGS]
        return Embedding(
            vector=track_vector(window_vectors),
            windows=windows,
            window_vectors=window_vectors,
            tags=[(labels[i], float(mean_scores[i])) for i in top],
        )


@hookimpl
def register_embedders():
    return [PannsEmbedder]
