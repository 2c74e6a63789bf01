"""Defaults for every setting. Each key is read from the environment as AUDIOFIND_<KEY>."""

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
    # or auto (winograd if ONNX Runtime works).
    "PANNS_ENGINE": "auto",
    # Inference precision: auto (bfloat16 on a CPU with AVX512-BF16/AMX, else float32), float32, bfloat16,
    # float16 (GPU), int8 (opt-in, self-checked).
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
}


def data_dir(config) -> Path:
    path = Path(config["DATA_DIR"]).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path



def raw_strings_from_env(config, environ) -> None:
    """Text settings exactly as written in AUDIOFIND_<KEY>: from_prefixed_env parses values as JSON, which turns
    an all-digit token into a number and "1e3" into 1000.0."""
    for key, default in DEFAULTS.items():
        if isinstance(default, str) and f"AUDIOFIND_{key}" in environ:
            config[key] = environ[f"AUDIOFIND_{key}"]
