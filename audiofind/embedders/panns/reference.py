"""panns_inference's own Cnn14, imported without its package __init__: the reference the tests and the article's
baseline run (the embedder runs only the checkpoint's tensors, see frontend.py and engines.py)."""

import importlib
import importlib.util
import sys
import types
from pathlib import Path

from audiofind.embedders.base import EmbedderUnavailable
from audiofind.embedders.panns.checkpoint import read_checkpoint

MODEL_ARGS = dict(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527)


def load_models_module():
    """panns_inference.models without running the package __init__.

    The package __init__ imports config.py, which downloads a label CSV into ~/panns_data with wget at
    import time. We give Python a bare package module whose __path__ is the installed folder, so only
    models.py and pytorch_utils.py run. models.py also imports matplotlib.pyplot, which Cnn14 never uses;
    stand-ins (removed again afterwards) keep that slow import and its config folder under $HOME away.
    """
    if "panns_inference.models" in sys.modules:
        return sys.modules["panns_inference.models"]
    if "panns_inference" not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None or not spec.submodule_search_locations:
            raise EmbedderUnavailable("the panns-inference package is not installed: pip install panns-inference")
        package = types.ModuleType("panns_inference")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["panns_inference"] = package
    stubs = {}
    if "matplotlib.pyplot" not in sys.modules:
        if "matplotlib" not in sys.modules:
            stubs["matplotlib"] = types.ModuleType("matplotlib")
        stubs["matplotlib.pyplot"] = types.ModuleType("matplotlib.pyplot")
        sys.modules.update(stubs)
    try:
        return importlib.import_module("panns_inference.models")
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
        parent = sys.modules.get("matplotlib")
        if stubs and parent is not None and getattr(parent, "pyplot", None) is stubs["matplotlib.pyplot"]:
            del parent.pyplot


def build_cnn14():
    """A Cnn14 with the official construction arguments (random weights until a state_dict is loaded)."""
    return load_models_module().Cnn14(**MODEL_ARGS)


def load_cnn14(path: Path, device="cpu"):
    """panns_inference's whole Cnn14 with the checkpoint's weights, in eval mode: the reference that tests and the
    article's baseline run (the embedder itself runs only FrontEnd and a trunk engine)."""
    model = build_cnn14().to("meta")  # its random initial weights are freed before the checkpoint's are read
    model.load_state_dict(read_checkpoint(path), assign=True)
    return model.eval().to(device)

