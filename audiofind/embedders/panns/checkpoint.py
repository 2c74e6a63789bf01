"""The Cnn14 checkpoint: where it lives, its download, its layout check, and the files derived from it
(converted weights, exported graphs) kept beside it."""

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from audiofind.config import data_dir
from audiofind.embedders.base import EmbedderUnavailable
from audiofind.embedders.panns.frontend import FrontEnd
from audiofind.embedders.panns.memory import release_free_memory

CHECKPOINT_NAME = "Cnn14_mAP=0.431.pth"
# Size of the official file (Zenodo record 3987831). No published sha256 is known to us, so only the size is checked.
CHECKPOINT_BYTES = 327_428_481


def checkpoint_path(config) -> Path:
    if config.get("PANNS_CHECKPOINT"):
        return Path(config["PANNS_CHECKPOINT"]).expanduser().resolve()
    return data_dir(config) / "models" / CHECKPOINT_NAME


def missing_message(path: Path, url: str, reason: str) -> str:
    return (
        f"PANNs checkpoint not found at {path} and it could not be downloaded ({reason}). "
        f"Download {url} and save it as {path} (or set AUDIOFIND_PANNS_CHECKPOINT to where it is), "
        f"or use AUDIOFIND_EMBEDDER=dsp."
    )


def download_checkpoint(url: str, path: Path, expected_bytes: int = None) -> Path:
    """Download to a temporary file beside ``path`` with a progress bar, check the size, then rename into place."""
    from tqdm import tqdm  # only a download needs it

    expected_bytes = CHECKPOINT_BYTES if expected_bytes is None else expected_bytes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise EmbedderUnavailable(missing_message(path, url, f"cannot write to {path.parent}: {exc}")) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {path.name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        size = tmp.stat().st_size
        if size != expected_bytes:
            raise EmbedderUnavailable(
                missing_message(path, url, f"the download has {size:,} bytes, expected {expected_bytes:,}")
            )
        os.replace(tmp, path)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise EmbedderUnavailable(missing_message(path, url, str(getattr(exc, "reason", exc)))) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path) -> dict:
    """The state dict of an official-layout checkpoint ``{"model": state_dict}``, memory-mapped (nothing is read
    until a tensor is used)."""
    import torch

    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
        state = checkpoint["model"] if isinstance(checkpoint, dict) and "model" in checkpoint else None
        if state is None:
            raise ValueError('not the official layout {"model": state_dict}')
        missing = [key for key in FrontEnd.KEYS + ("conv_block6.conv2.weight",) if key not in state]
        if missing:
            raise ValueError(f"no {', '.join(missing)}: not a Cnn14 checkpoint")
    except Exception as exc:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise EmbedderUnavailable(f"cannot load the PANNs checkpoint {path}: {exc}") from exc
    return state


class CheckpointState:
    """The checkpoint's state dict, read (memory-mapped) on first use only: a cached load needs none of it."""

    def __init__(self, path: Path):
        self.path = path
        self.state = None

    def __call__(self) -> dict:
        if self.state is None:
            self.state = read_checkpoint(self.path)
        return self.state

    def release(self):
        self.state = None


def cache_path(checkpoint: Path, kind: str) -> Path:
    """A file beside the checkpoint, keyed by its size and mtime so a replaced checkpoint is never stale."""
    stat = checkpoint.stat()
    return checkpoint.with_name(f"{checkpoint.stem}.{stat.st_size}-{stat.st_mtime_ns}.{kind}")


def atomic_write(target: Path, write):
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


# Raise when a conversion changes: every converted-weights file of an older version is then made again.
CONVERTER_VERSION = 1


def converted(checkpoint: Path, kind: str, convert) -> dict:
    """Tensors derived from the checkpoint (``convert()`` -> dict), computed once, saved beside it and
    memory-mapped on every later load: worker processes share their pages, and a restart converts nothing.

    An unreadable file is converted again; where the folder is read-only the tensors stay in memory.
    """
    import torch

    path = cache_path(checkpoint, f"{kind}.v{CONVERTER_VERSION}.pt")
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # truncated or foreign: made again below
            pass
    tensors = convert()
    try:
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    except OSError:
        return tensors
    del tensors
    release_free_memory()
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)

