"""The ingest job: add an uploaded file to the catalog (a copy of it, under the catalog's prefix), then drop the upload."""

from audiofind.jobs._common import job_services, current_job, set_stage, upload_copy, user_errors


def run_ingest(key, filename, metadata=None):
    """Ingest the upload stored under ``key`` (``filename`` is the user's name for it).

    Returns {status: added|duplicate, track_id, file, title, version_of}."""
    services = job_services()
    with user_errors():
        job = current_job()
        set_stage("analyzing")
        with upload_copy(services, key) as path:
            outcome = services.catalog.ingest(path, file=filename, metadata=metadata or {},
                                              track_id=job.id.replace("-", "")[:16] if job else None)
        track = outcome.track
        return {
            "status": outcome.status,
            "track_id": track.track_id,
            "file": track.file,
            "title": track.title,
            "version_of": outcome.version_of,
        }
