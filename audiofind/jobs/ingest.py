"""The ingest job: add an uploaded file to the catalog; the file stays in storage (track.storage_key)."""

from audiofind.jobs._common import set_stage, user_errors, will_retry
from audiofind.jobs.queue import worker_app


def run_ingest(key, filename, metadata=None):
    """Ingest the file stored under ``key`` (``filename`` is the user's name for it).

    Returns {status: added|duplicate, track_id, file, title, version_of}."""
    from audiofind.app import get_catalog, services

    app = worker_app()
    with app.app_context(), user_errors():
        catalog, storage = get_catalog(app), services(app).storage
        set_stage("analyzing")
        try:
            with storage.local_copy(key) as path:
                outcome = catalog.ingest(path, file=filename, storage_key=key, metadata=metadata or {})
        except Exception as error:
            if not will_retry(error):
                storage.delete(key)
            raise
        if outcome.status != "added":  # the same audio is already in the catalog under its own key
            storage.delete(key)
        track = outcome.track
        return {
            "status": outcome.status,
            "track_id": track.track_id,
            "file": track.file,
            "title": track.title,
            "version_of": outcome.version_of,
        }
