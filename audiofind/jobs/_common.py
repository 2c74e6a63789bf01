"""What both job functions share: the worker's app, progress in job.meta, failures users can read."""

import contextlib
import logging

logger = logging.getLogger("audiofind.jobs")


def current_job():
    from rq import get_current_job

    return get_current_job()


def set_stage(stage):
    job = current_job()
    if job is not None:
        job.meta["stage"] = stage
        job.save_meta()


@contextlib.contextmanager
def user_errors():
    """A bad file (AudioError) or a bad request (ValueError) fails the job at once, without retries,
    with its message in job.meta["error"] for the page and the API; anything else may be retried."""
    try:
        yield
    except _user_error_types() as error:
        if not _is_final(error):
            raise
        job = current_job()
        if job is not None:
            job.retries_left = 0  # read by the worker's failure handling right after this raise
            job.meta["error"] = _message(error, job.meta.get("file"))
            job.meta["stage"] = "failed"
            job.save_meta()
        raise


@contextlib.contextmanager
def upload_copy(app, key):
    """A local copy of the upload under ``key`` for the job to read. The upload is released (deleted) when the
    job is done with it: after the block, or after a failure that no retry will follow (a retry needs it)."""
    from audiofind import uploads
    from audiofind.app import services
    from audiofind.jobs.queue import redis_connection

    storage = services(app).storage
    try:
        with storage.local_copy(key) as path:
            yield path
    except Exception as error:
        if not will_retry(error):
            uploads.release(redis_connection(app), storage, key)
        raise
    uploads.release(redis_connection(app), storage, key)


def _message(error, filename=None):
    """The message for people: the user's file name, never our storage key, temporary path, bucket or host
    (those go to the worker's log)."""
    from pathlib import Path

    from audiofind.audio import AudioError
    from audiofind.index.base import IndexUnavailable
    from audiofind.storage.base import StorageError

    if isinstance(error, KeyError):
        return f"unknown track {error.args[0]}" if error.args else "unknown track"
    if isinstance(error, AudioError) and filename:
        reason = error.reason.replace(error.path, filename).replace(Path(error.path).name, filename)
        return f"{filename}: {reason}"
    if isinstance(error, StorageError):
        logger.warning("storage error: %s", error)
        return f"{filename or 'the file'}: it could not be read from storage; please upload it again"
    if isinstance(error, IndexUnavailable):
        logger.warning("index unavailable: %s", error)
        return "the catalog cannot be reached right now; please try again later"
    if isinstance(error, UnicodeDecodeError):
        return f"{filename or 'the file'}: is not UTF-8 text ({error.reason} at byte {error.start})"
    return str(error)


def _user_error_types():
    from audiofind.audio import AudioError
    from audiofind.index.base import IndexUnavailable
    from audiofind.storage.base import StorageError

    return (AudioError, ValueError, KeyError, StorageError, IndexUnavailable)


def will_retry(error):
    """Whether the worker will run this job again after ``error`` (so its upload must be kept)."""
    job = current_job()
    return not _is_final(error) and bool(job and job.retries_left)


def _is_final(error):
    """Retrying cannot help: the file, the request or the configuration is wrong (a storage outage is not)."""
    from audiofind.storage.base import StorageError

    return isinstance(error, _user_error_types()) and not (isinstance(error, StorageError) and error.transient)
