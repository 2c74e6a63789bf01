"""Create or update the Atlas Vector Search indexes from the definitions in audiofind/migrations/atlas/.

Safe to run any number of times: an index that matches its definition is left alone.
"""

from audiofind.index.atlas import (  # noqa: F401 (MIGRATIONS_DIR, load_definitions: the definitions' public home)
    MIGRATIONS_DIR,
    connect,
    describe_error,
    ensure_indexes,
    load_definitions,
)
from audiofind.services import Services


def configured_identity(config) -> dict:
    """The identity of the configured embedder (dimensions only; the model is not loaded)."""
    return Services(config).embedder.identity


def migrate(config, wait=True, timeout=None) -> list:
    """Create/update the Atlas indexes of the catalog in config MONGODB_URI / MONGODB_DATABASE.

    Dimensions come from the catalog's recorded embedder, or, for a new catalog, from the configured
    one (AUDIOFIND_EMBEDDER). Returns ensure_indexes' report."""
    from pymongo.errors import PyMongoError

    client, db = connect(config)
    try:
        try:
            stored = db["meta"].find_one({"_id": "embedder"})
            identity = {k: v for k, v in stored.items() if k != "_id"} if stored else configured_identity(config)
            if timeout is None:
                timeout = float(config.get("ATLAS_INDEX_TIMEOUT") or 600)
            return ensure_indexes(db, identity, wait=wait, timeout=timeout)
        except PyMongoError as exc:
            raise describe_error(exc, config) from None
    finally:
        client.close()
