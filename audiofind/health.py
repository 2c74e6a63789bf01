"""Liveness and readiness checks, for /healthz and /readyz (the routes answer 503 when not ready)."""


def liveness() -> dict:
    """The process is up and answering."""
    return {"ok": True}


def _part(check) -> dict:
    try:
        check()
    except Exception as exc:  # a readiness probe reports every failure, whatever raised it
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    return {"ok": True}


def _redis(app):
    url = app.config.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set: set AUDIOFIND_REDIS_URL, or run `audiofind serve`")
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _storage(app):
    from audiofind.app import services

    services(app).storage.check()


def _index(app):
    from audiofind.app import services

    services(app).index.check()


def _embedder(app) -> dict:
    from audiofind.app import services

    try:
        return services(app).embedder.summary()
    except Exception as exc:  # information only: it never makes the probe fail
        return {"error": str(exc) or type(exc).__name__}


def readiness(app) -> dict:
    """{"ok": all ready, "redis": {"ok", "error"?}, "storage": {...}, "index": {...}, "embedder": summary};
    never raises. The embedder part says which engine runs the model (it is not loaded in the web process)."""
    parts = {
        "redis": _part(lambda: _redis(app)),
        "storage": _part(lambda: _storage(app)),
        "index": _part(lambda: _index(app)),
    }
    return {"ok": all(part["ok"] for part in parts.values()), **parts, "embedder": _embedder(app)}
