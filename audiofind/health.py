"""Liveness and readiness checks, for /healthz and /readyz (the routes answer 503 when not ready)."""

from redis import Redis


def liveness() -> dict:
    """The process is up and answering."""
    return {"ok": True}


def _part(check) -> dict:
    try:
        check()
    except Exception as exc:  # a readiness probe reports every failure, whatever raised it
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    return {"ok": True}


def _redis(services):
    url = services.config.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set: set AUDIOFIND_REDIS_URL, or run `audiofind serve`")
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _storage(services):
    services.storage.check()


def _index(services):
    services.index.check()


def _embedder(services) -> dict:
    try:
        return services.embedder.summary()
    except Exception as exc:  # information only: it never makes the probe fail
        return {"error": str(exc) or type(exc).__name__}


def readiness(services) -> dict:
    """{"ok": all ready, "redis": {"ok", "error"?}, "storage": {...}, "index": {...}, "embedder": summary};
    never raises. The embedder part says which engine runs the model (it is not loaded in the web process)."""
    parts = {
        "redis": _part(lambda: _redis(services)),
        "storage": _part(lambda: _storage(services)),
        "index": _part(lambda: _index(services)),
    }
    return {"ok": all(part["ok"] for part in parts.values()), **parts, "embedder": _embedder(services)}
