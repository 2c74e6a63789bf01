"""The ingest job: add an uploaded file to the catalog (a copy of it, under the catalog's prefix), then drop the upload."""

from audiofind import uploads
from audiofind.jobs._common import current_job, set_stage, user_errors, will_retry
from audiofind.jobs.queue import redis_connection, worker_app


def run_ingest(key, filename, metadata=None):
    """Ingest the upload stored under ``key`` (``filename`` is the user's name for it).

    Returns {status: added|duplicate, track_id, file, title, version_of}."""
    from audiofind.app import get_catalog, services

    app = worker_app()
    with app.app_context(), user_errors():
        catalog, storage = get_catalog(app), services(app).storage
        job = current_job()
        set_stage("analyzing")
        try:
            with storage.local_copy(key) as path:
                outcome = catalog.ingest(path, file=filename, metadata=metadata or {},
                                         track_id=job.id.replace("-", "")[:16] if job else None)
        except Exception as error:
            if not will_retry(error):
                uploads.release(redis_connection(app), storage, key)
            raise
        uploads.release(redis_connection(app), storage, key)
        track = outcome.track
        return {
            "status": outcome.status,
            "track_id": track.track_id,
            "file": track.file,
            "title": track.title,
            "version_of": outcome.version_of,
        }
