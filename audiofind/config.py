"""Every setting, its type and its default; loaded without Flask: defaults → the instance folder's config.py →
AUDIOFIND_<KEY> environment variables → the caller's overrides, then checked, with a message naming the variable."""

import os
import runpy
from pathlib import Path

DEFAULTS = {
    # Where the embedded catalog, its vectors and the uploaded audio live.
    "DATA_DIR": "instance",
    # Backends, chosen by name (see plugins.py).
    "EMBEDDER": "panns",
    "INDEX": "local",
    "STORAGE": "local",
    # PANNs Cnn14: the official checkpoint; empty means <DATA_DIR>/models/Cnn14_mAP=0.431.pth.
    "PANNS_CHECKPOINT": "",
    "PANNS_CHECKPOINT_URL": "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
    # Chunks of the feature map per forward pass: on GPU (on CPU batching gains nothing and costs memory).
    "PANNS_BATCH_SIZE": 4,
    # Inference engine on CPU: winograd (the fast trunk), onnx (ONNX Runtime for the whole float32 trunk), torch,
    # or auto (timed on this machine, see embedders/autotune.py).
    "PANNS_ENGINE": "auto",
    # Inference precision: auto (timed, like the engine), float32, bfloat16, float16 (GPU), int8 (opt-in, self-checked).
    "PANNS_PRECISION": "auto",
    "DEVICE": "auto",
    # Input limits: an audio file, any other request body (JSON, forms), a metadata CSV for admin.
    "MAX_UPLOAD_BYTES": 200 * 1024 * 1024,
    "MAX_REQUEST_BYTES": 1024 * 1024,
    "MAX_CSV_BYTES": 50 * 1024 * 1024,
    "MAX_DURATION": 2 * 60 * 60.0,
    "MIN_DURATION": 0.5,
    # Rate limits per client address (flask-limiter syntax; empty turns one off), shared by the page and the API.
    "RATE_LIMIT_UPLOADS": "60 per minute; 600 per hour",
    "RATE_LIMIT_SEARCHES": "60 per minute; 600 per hour",
    "RATE_LIMIT_SIMILAR": "300 per minute",
    "RATE_LIMIT_LOGIN": "10 per minute; 50 per hour",
    # How long an admin login lasts (logging out ends it at once, also for a copy of the cookie).
    "ADMIN_SESSION_SECONDS": 8 * 3600,
    # Queue and services.
    "REDIS_URL": "",
    "MONGODB_URI": "",
    "MONGODB_DATABASE": "audiofind",
    "S3_BUCKET": "",
    "S3_ENDPOINT_URL": "",
    "S3_REGION": "",
    "S3_PREFIX": "audio/",
    # Uploads (references to search for, files to ingest) live apart from the catalog's audio, in every storage;
    # what is left there is removed by the workers' sweeper (and on S3 by a lifecycle rule, `audiofind migrate`).
    "UPLOAD_PREFIX": "uploads/",
    "SECRET_KEY": "",
    "ADMIN_TOKEN": "",
    "WIDGET_ORIGINS": "",
    "UPLOAD_URL_EXPIRES": 900,
    "PLAYBACK_URL_EXPIRES": 3600,
    "SEARCH_JOB_TIMEOUT": 600,
    "INGEST_JOB_TIMEOUT": 3600,
    "JOB_RETRIES": 2,
    # MongoDB Atlas: candidates per result for $vectorSearch, query windows used by segment search, timeouts.
    "ATLAS_NUM_CANDIDATES_FACTOR": 20,
    "ATLAS_SEGMENT_QUERY_WINDOWS": 32,
    "ATLAS_INDEX_TIMEOUT": 600,
    "ATLAS_TIMEOUT_MS": 10000,
    # The "related songs" metadata plugin: a MongoDB collection joined to results by a key field.
    "RELATED_COLLECTION": "",
    "RELATED_KEY": "title",
    "RELATED_LIMIT": 20,
    "MOVE_UP_BATCH": 50,
    # Local index: exact search up to this many tracks (and window rows, for segment search), then HNSW.
    "ANN_THRESHOLD": 20000,
    # Load the plugins installed under the `audiofind` entry-point group (false: the built-ins only).
    "ENTRY_POINT_PLUGINS": True,
}

# Numbers that must be at least this (a zero timeout or a negative limit is a typo, not a choice).
MINIMUMS = {key: 1 for key, value in DEFAULTS.items() if type(value) is int} | {
    "JOB_RETRIES": 0, "MAX_DURATION": 1.0, "MIN_DURATION": 0.0,
}
CHOICES = {"PANNS_ENGINE": ("auto", "winograd", "onnx", "torch"),
           "PANNS_PRECISION": ("auto", "float32", "bfloat16", "float16", "int8")}


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the variable."""


def load_config(overrides=None, environ=None) -> dict:
    """The settings of one process: typed and checked (ConfigError otherwise)."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config = dict(DEFAULTS)
    config["DATA_DIR"] = overrides.get("DATA_DIR") or environ.get("AUDIOFIND_DATA_DIR") or DEFAULTS["DATA_DIR"]
    config["DATA_DIR"] = str(Path(config["DATA_DIR"]).expanduser().resolve())
    instance_file = Path(config["DATA_DIR"]) / "config.py"
    if instance_file.is_file():
        for key, value in runpy.run_path(str(instance_file)).items():
            if key.isupper():
                config[key] = _typed(key, value, f"{key} in {instance_file}")
    for key in DEFAULTS:
        if f"AUDIOFIND_{key}" in environ and key != "DATA_DIR":
            config[key] = _typed(key, environ[f"AUDIOFIND_{key}"], f"AUDIOFIND_{key}")
    config.update(overrides)
    check(config)
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _instance_secret(data_dir(config))
    return config


def _instance_secret(folder: Path) -> str:
    """A signing key kept in the instance folder, shared by every process of it, so signed URLs survive restarts."""
    path = folder / "secret_key"
    if not path.exists():
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()


def _typed(key, value, where):
    """``value`` as the type of the key's default; text (the environment) is parsed, never evaluated."""
    default = DEFAULTS.get(key)
    if default is None:
        return value  # not one of ours (a Flask or a plugin setting): as written
    kind = type(default)
    if kind is bool:
        text = str(value).strip().lower()
        if text not in BOOLEANS:
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return BOOLEANS[text]
    if isinstance(value, str) and kind is not str:
        try:
            return kind(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be {_kind_name(kind)}, not {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where} must be {_kind_name(kind)}, not {value!r}")
    return value


def _kind_name(kind):
    return {int: "a whole number", float: "a number", str: "text"}[kind]


def check(config) -> None:
    for key, low in MINIMUMS.items():
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"AUDIOFIND_{key} must be {_kind_name(type(DEFAULTS[key]))}, not {value!r}")
        if value != value or value < low:
            raise ConfigError(f"AUDIOFIND_{key} must be at least {low}, not {value!r}")
    for key, allowed in CHOICES.items():
        if str(config.get(key, "")).lower() not in allowed:
            raise ConfigError(f"AUDIOFIND_{key}={config.get(key)!r} is not one of {', '.join(allowed)}")
    if config["MIN_DURATION"] >= config["MAX_DURATION"]:
        raise ConfigError("AUDIOFIND_MIN_DURATION must be below AUDIOFIND_MAX_DURATION")


def data_dir(config) -> Path:
    path = Path(config["DATA_DIR"]).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
