"""Cnn14's log-mel filter bank and clip head (window pooling, fc1, fc_audioset), from the checkpoint's tensors."""

import numpy as np


class FrontEnd:
    """What Cnn14 computes outside its convolution trunk, from its own weights: the log-mel filter bank and the
    clip head (fc1, fc_audioset).

    panns_inference builds these as torchlibrosa modules whose set-up (an STFT as a conv1d with 1024 kernels)
    takes seconds; the same arithmetic from the checkpoint's tensors needs none of it.
    """

    KEYS = ("logmel_extractor.melW", "fc1.weight", "fc1.bias", "fc_audioset.weight", "fc_audioset.bias")

    def __init__(self, tensors, device="cpu"):
        self.mel = tensors["logmel_extractor.melW"].float().to(device)  # (513, 64)
        self.fc1 = (tensors["fc1.weight"].to(device), tensors["fc1.bias"].to(device))
        self.fc_audioset = (tensors["fc_audioset.weight"].to(device), tensors["fc_audioset.bias"].to(device))

    @classmethod
    def tensors(cls, state) -> dict:
        return {key: state[key].float().clone() for key in cls.KEYS}

    def logmel(self, power):
        """torchlibrosa's LogmelFilterBank as Cnn14 sets it up (ref 1.0, amin 1e-10, no top_db): (n, 513) -> (n, 64)."""
        import torch

        return 10.0 * torch.log10(torch.clamp(power @ self.mel, min=1e-10))


def pool_windows(front, sequence: np.ndarray, spans):
    """Cnn14's clip head on each window: max + mean over time, fc1 + relu (embedding), fc_audioset + sigmoid.

    The pooling runs in NumPy: a window is too small for PyTorch's per-operation overhead (BENCHMARKS.md).
    """
    import torch
    import torch.nn.functional as F

    sequence = np.asarray(sequence, dtype=np.float32)
    pooled = np.stack([sequence[s:e].max(axis=0) + sequence[s:e].mean(axis=0) for s, e in spans])
    with torch.inference_mode():
        embedding = torch.relu(F.linear(torch.from_numpy(pooled).to(front.fc1[0].device), *front.fc1))
        scores = torch.sigmoid(F.linear(embedding, *front.fc_audioset))
    return embedding.cpu().numpy(), scores.cpu().numpy()

