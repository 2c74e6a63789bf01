"""A track as a stream: log-mel frames computed block by block as the audio decodes, the trunk run over chunks
of them with a margin for its receptive field, and the overlapping windows that are pooled from its output."""

import numpy as np

N_FFT = 1024
HOP = 320
FRAMES_PER_STEP = 32  # log-mel frames per trunk output frame: five 2x2 average poolings
STEP_SECONDS = FRAMES_PER_STEP * HOP / 32000  # 0.32 s
# The trunk's receptive field reaches 126 log-mel frames beyond its own 32-frame block on each side
# (two 3x3 convs per block at strides 1..32, plus the pooling windows); 128 keeps the pooling grid aligned.
MARGIN = 128
CHUNK_FRAMES = 6016  # ~60 s of log-mel frames per chunk (a multiple of 32): the margins add 4 %
WINDOW_STEPS = 32  # 10.24 s windows
HOP_STEPS = 16  # 5.12 s hop
MIN_SAMPLES = 32000  # shorter tracks are padded with silence to 1 s


class LogmelStream:
    """Cnn14's log-mel frames computed block by block, equal to its whole-file spectrogram.

    Cnn14 reflect-pads the signal by n_fft/2 at both ends (center=True); we pad only at the real track
    edges and carry the overlap between blocks, then apply the same STFT (hann, 1024, hop 320) and the
    model's own mel filter bank (FrontEnd).
    """

    def __init__(self, front, device):
        self.front = front
        self.device = device
        self.buffer = np.zeros(0, dtype=np.float32)
        self.samples = 0
        self.started = False
        self.window = None

    def push(self, block) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples += len(block)
        self.buffer = np.concatenate([self.buffer, block])
        if not self.started and len(self.buffer) > N_FFT // 2:
            self._pad_start()
        return self._frames() if self.started else np.zeros((0, 64), np.float32)

    def finish(self) -> np.ndarray:
        if self.samples < MIN_SAMPLES:
            self.buffer = np.concatenate([self.buffer, np.zeros(MIN_SAMPLES - self.samples, np.float32)])
        if not self.started:
            self._pad_start()
        self.buffer = np.concatenate([self.buffer, self.buffer[-N_FFT // 2 - 1:-1][::-1]])
        return self._frames()

    def _pad_start(self):
        self.buffer = np.concatenate([self.buffer[1:N_FFT // 2 + 1][::-1], self.buffer])
        self.started = True

    def _frames(self) -> np.ndarray:
        import torch

        n = (len(self.buffer) - N_FFT) // HOP + 1 if len(self.buffer) >= N_FFT else 0
        if n <= 0:
            return np.zeros((0, 64), np.float32)
        used = self.buffer[: (n - 1) * HOP + N_FFT]
        self.buffer = self.buffer[n * HOP:]
        if self.window is None:  # torchlibrosa's STFT is a conv1d with hann-windowed cos/sin kernels; an FFT
            self.window = torch.hann_window(N_FFT, periodic=True, device=self.device)  # is the same, faster
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(used)).to(self.device)
            spectrum = torch.stft(x, N_FFT, HOP, window=self.window, center=False, return_complex=True)
            power = torch.view_as_real(spectrum).square_().sum(dim=-1)  # (513, n)
            logmel = self.front.logmel(power.T)  # (n, 64)
        return logmel.float().cpu().numpy()


class ChunkedTrunk:
    """Runs the trunk over chunks of streamed log-mel frames, each with a margin on both sides.

    Chunk c yields trunk frames [c*K, (c+1)*K) (K = chunk/32) from log-mel frames
    [c*chunk - MARGIN, (c+1)*chunk + MARGIN); the first chunk takes its whole margin on the right so that
    every chunk but the last has the same length and they batch together. Chunk starts are multiples of
    32 frames, so the 2x2 pooling grid is the whole-track grid and the frames equal one whole-track pass.
    """

    def __init__(self, run, chunk_frames=CHUNK_FRAMES, batch_size=4):
        if chunk_frames % FRAMES_PER_STEP:
            raise ValueError("chunk_frames must be a multiple of 32")
        self.run = run  # (batch, 1, frames, 64) float32 ndarray -> (batch, 2048, frames // 32) ndarray
        self.chunk = chunk_frames
        self.batch_size = max(1, int(batch_size))
        self.frames = np.zeros((0, 64), np.float32)
        self.offset = 0  # absolute index of self.frames[0]
        self.next_chunk = 0
        self.pending = []  # (input frames, first output frame to keep, how many)
        self.outputs = []

    def _start(self, c):
        return max(0, c * self.chunk - MARGIN)

    def push(self, logmel: np.ndarray):
        self.frames = np.concatenate([self.frames, logmel])
        length = self.chunk + 2 * MARGIN
        while True:
            start = self._start(self.next_chunk)
            if self.offset + len(self.frames) < start + length:
                break
            keep_from = self.next_chunk * self.chunk - start
            self.pending.append((self.frames[start - self.offset:start - self.offset + length], keep_from, self.chunk))
            self.next_chunk += 1
            self._trim()
            if len(self.pending) >= self.batch_size:
                self._flush()

    def finish(self) -> np.ndarray:
        total = self.offset + len(self.frames)
        first = self.next_chunk * self.chunk
        steps = total // FRAMES_PER_STEP - first // FRAMES_PER_STEP
        if steps > 0:
            start = self._start(self.next_chunk)
            self.pending.append((self.frames[start - self.offset:], first - start, steps * FRAMES_PER_STEP))
        self._flush()
        if not self.outputs:
            return np.zeros((0, 2048), np.float32)
        return np.concatenate(self.outputs)

    def _trim(self):
        drop = self._start(self.next_chunk) - self.offset
        if drop > 0:
            self.frames = self.frames[drop:]
            self.offset += drop

    def _flush(self):
        groups = {}
        for i, (frames, _, _) in enumerate(self.pending):
            groups.setdefault(len(frames), []).append(i)
        results = [None] * len(self.pending)
        for indices in groups.values():
            batch = np.stack([self.pending[i][0] for i in indices])[:, None]
            out = self.run(batch)
            for row, i in zip(out, indices):
                results[i] = row
        for (_, keep_from, keep), out in zip(self.pending, results):
            a = keep_from // FRAMES_PER_STEP
            self.outputs.append(np.ascontiguousarray(out[:, a:a + keep // FRAMES_PER_STEP].T, dtype=np.float32))
        self.pending = []


def window_spans(steps: int):
    """(start, end) trunk-frame spans of the overlapping windows; the last one ends at the track's end."""
    if steps <= WINDOW_STEPS:
        return [(0, max(steps, 1))]
    starts = list(range(0, steps - WINDOW_STEPS + 1, HOP_STEPS))
    if starts[-1] + WINDOW_STEPS < steps:
        starts.append(steps - WINDOW_STEPS)
    return [(s, s + WINDOW_STEPS) for s in starts]

