"""The ingest job: add an uploaded file to the catalog (a copy of it, under the catalog's prefix), then drop the upload."""

import logging

from audiofind import calibration
from audiofind.jobs import queue
from audiofind.jobs._common import job_services, current_job, set_stage, upload_copy, user_errors

logger = logging.getLogger(__name__)


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
        _calibrate_when_needed(services)
        return {
            "status": outcome.status,
            "track_id": track.track_id,
            "file": track.file,
            "title": track.title,
            "version_of": outcome.version_of,
        }


def _calibrate_when_needed(services):
    """Enqueue the calibration job once the catalog needs one; a failure here never fails the ingest."""
    try:
        if calibration.needs_calibration(services.catalog):
            queue.enqueue_calibration(services)
    except Exception:
        logger.exception("could not enqueue the calibration job")


def run_calibration():
    """Learn the catalog's nuisance direction (audiofind/calibration.py). Returns {tracks, seconds}."""
    services = job_services()
    with user_errors():
        set_stage("calibrating")
        learned = calibration.calibrate(services.catalog)
        return {"tracks": learned.tracks, "seconds": round(learned.seconds, 1)}
