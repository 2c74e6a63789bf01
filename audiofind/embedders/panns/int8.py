"""int8: the trunk quantised by ONNX Runtime, calibrated on the catalog's own audio and checked against float32
on held-out tracks before it is used."""

import json
import tempfile
from pathlib import Path

import numpy as np

from audiofind.embedders.base import EmbedderUnavailable
from audiofind.embedders.panns.checkpoint import atomic_write, cache_path
from audiofind.embedders.panns.engines import export_trunk, onnx_session
from audiofind.embedders.panns.frontend import pool_windows
from audiofind.embedders.panns.stream import FRAMES_PER_STEP

INT8_MIN_COSINE = 0.99
CALIBRATION_TRACKS = 8  # int8: catalog tracks whose audio calibrates the quantisation (every third is held out)
CALIBRATION_CLIP = 1024  # log-mel frames per calibration clip (~10 s)


def passed_report(checkpoint: Path):
    """The calibration report of ``checkpoint``'s int8 model if it passed its self-check and the model exists, else None."""
    report = cache_path(checkpoint, "trunk-int8.json")
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    model = cache_path(checkpoint, "trunk-int8.onnx")
    return data if data.get("cosine", 0) >= INT8_MIN_COSINE and model.exists() else None


class Int8Trunk:
    """ONNX Runtime static int8 (QDQ, per-channel weights), calibrated on the user's own catalog audio.

    Until a calibrated model exists, tracks are embedded in float32 and a few clips of each are kept;
    after CALIBRATION_TRACKS tracks the model is quantised and compared with float32 on the held-out
    tracks' clips. Below INT8_MIN_COSINE it refuses (EmbedderUnavailable with the figure), now and in every
    later process, until the report file is deleted.
    """

    def __init__(self, embedder, float_run):
        self.embedder = embedder
        self.float_run = float_run
        checkpoint = embedder.checkpoint
        self.model_path = cache_path(checkpoint, "trunk-int8.onnx")
        self.report_path = cache_path(checkpoint, "trunk-int8.json")
        self.tracks = []  # calibration clips, one list per track
        self.current = []  # clips of the track being embedded
        self.session = None
        self.cosine = None
        if self.report_path.exists():
            self._use(json.loads(self.report_path.read_text()))

    def _use(self, report):
        self.cosine = report["cosine"]
        if self.cosine < INT8_MIN_COSINE:
            raise EmbedderUnavailable(
                f"int8 Cnn14 refused: its embeddings reach cosine {self.cosine:.4f} to float32 on "
                f"{report['held_out_clips']} held-out clips of your catalog (minimum {INT8_MIN_COSINE}). "
                f"Use AUDIOFIND_PANNS_PRECISION=float32 (or bfloat16), or delete {self.report_path} to calibrate again."
            )
        if self.session is None and self.model_path.exists():
            self.session = onnx_session(self.model_path, arena=True)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {"logmel": np.ascontiguousarray(batch, dtype=np.float32)})[0]
        for chunk in batch:  # keep up to 3 clips of ~10 s from the middle of this track's chunks
            frames = chunk.shape[1] // FRAMES_PER_STEP * FRAMES_PER_STEP
            size = min(CALIBRATION_CLIP, frames)
            start = (frames - size) // 2 // FRAMES_PER_STEP * FRAMES_PER_STEP
            if size and len(self.current) < 3:
                self.current.append(np.ascontiguousarray(chunk[None, :, start:start + size]))
        return self.float_run(batch)

    def track_done(self):
        if self.session is None and self.current:
            self.tracks.append(self.current)
            self.current = []
            if len(self.tracks) >= CALIBRATION_TRACKS:
                self.build()

    def build(self) -> float:
        # onnx and the quantisation tools are needed here only, and only with int8: imported on first use
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if len(self.tracks) < 2:
            raise EmbedderUnavailable("int8 calibration needs the audio of at least 2 catalog tracks")
        held = [i % 3 == 2 or (len(self.tracks) == 2 and i == 1) for i in range(len(self.tracks))]
        held_out = [clip for t, h in zip(self.tracks, held) if h for clip in t]
        calibration = [clip for t, h in zip(self.tracks, held) if not h for clip in t]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.clips = iter(calibration)

            def get_next(self):
                clip = next(self.clips, None)
                return None if clip is None else {"logmel": clip}

        float_model = export_trunk(self.embedder.checkpoint, self.embedder._state)

        def write(tmp):
            with tempfile.TemporaryDirectory(dir=self.model_path.parent) as work:
                prepared, embedded = Path(work) / "prepared.onnx", Path(work) / "embedded.onnx"
                onnx.save_model(onnx.load(str(float_model)), str(embedded))  # the pre-processor wants one file
                quant_pre_process(str(embedded), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared), tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                )

        atomic_write(self.model_path, write)
        session = onnx_session(self.model_path, arena=True)
        cosines = []
        front = self.embedder.front
        for clip in held_out:
            ours = session.run(None, {"logmel": clip})[0][0].T
            reference = self.float_run(clip)[0].T
            a = pool_windows(front, reference, [(0, len(reference))])[0][0]
            b = pool_windows(front, ours, [(0, len(ours))])[0][0]
            cosines.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        report = {"cosine": float(np.mean(cosines)), "min_cosine": float(np.min(cosines)),
                  "held_out_clips": len(held_out), "calibration_clips": len(calibration),
                  "tracks": len(self.tracks)}
        self.report_path.write_text(json.dumps(report))
        self.tracks = []
        self._use(report)
        return report["cosine"]
