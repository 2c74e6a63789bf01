"""The reference article's pipeline, reproduced as the baseline every benchmark compares with.

Its get_embedding() builds panns_inference's AudioTagging (Cnn14 plus torch.load of the 327 MB checkpoint)
on every call, loads the file with librosa at 44.1 kHz (Cnn14 is trained at 32 kHz) and runs the whole
file through the model in one forward pass. AudioTagging itself lives in the panns_inference package,
whose __init__ downloads a label file at import time, so we rebuild it from the same pieces: the same
Cnn14 class with AudioTagging's arguments, the same torch.load and load_state_dict, the same forward.

    python bench/baseline.py FILE [FILE ...] [--checkpoint PATH]   # one call per file, as the article ingests
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import random_checkpoint  # noqa: E402

from audiofind.embedders.panns import build_cnn14  # noqa: E402


def get_embedding(path, checkpoint_path, device="cpu"):
    """(2048-d embedding, 527 clipwise scores) of the whole file, exactly as the article computes them."""
    import librosa
    import torch

    model = build_cnn14()  # AudioTagging: Cnn14(sample_rate=32000, window_size=1024, ...)
    checkpoint = torch.load(checkpoint_path, map_location=device)
    model.load_state_dict(checkpoint["model"])
    model.to(device)
    audio, _ = librosa.load(path, sr=44100, mono=True)
    audio = torch.from_numpy(audio[None, :]).to(device)
    with torch.no_grad():
        model.eval()
        output = model(audio, None)
    return output["embedding"][0].cpu().numpy(), output["clipwise_output"][0].cpu().numpy()


def main():
    parser = argparse.ArgumentParser(description="Run the article's get_embedding() on each file.")
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: a random-weight checkpoint in bench/data")
    args = parser.parse_args()
    checkpoint = args.checkpoint or random_checkpoint()
    for path in args.files:
        started = time.perf_counter()
        embedding, _ = get_embedding(path, checkpoint)
        print(f"{path}: {embedding.shape[0]}-d embedding in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
