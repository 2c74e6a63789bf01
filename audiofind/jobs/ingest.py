"""The ingest job: add an uploaded file to the catalog (a copy of it, under the catalog's prefix), then drop the upload."""

from audiofind.jobs._common import current_job, set_stage, upload_copy, user_errors
from audiofind.jobs.queue import worker_app


def run_ingest(key, filename, metadata=None):
    """Ingest the upload stored under ``key`` (``filename`` is the user's name for it).

    Returns {status: added|duplicate, track_id, file, title, version_of}."""
    from audiofind.app import get_catalog

    app = worker_app()
    with app.app_context(), user_errors():
        job = current_job()
        set_stage("analyzing")
        with upload_copy(app, key) as path:
            outcome = get_catalog(app).ingest(path, file=filename, metadata=metadata or {},
                                              track_id=job.id.replace("-", "")[:16] if job else None)
        track = outcome.track
        return {
            "status": outcome.status,
            "track_id": track.track_id,
            "file": track.file,
            "title": track.title,
            "version_of": outcome.version_of,
        }
