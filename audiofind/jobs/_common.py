"""What the job functions share: the worker's services, progress in job.meta, failures users can read."""

import contextlib
import contextvars
import functools
import logging
from pathlib import Path

from rq import get_current_job as current_job

from audiofind import uploads
from audiofind.audio import AudioError
from audiofind.config import load_config
from audiofind.index.base import IndexUnavailable
from audiofind.services import Services
from audiofind.storage.base import StorageError

logger = logging.getLogger("audiofind.jobs")
_running_services = contextvars.ContextVar("audiofind_running_services", default=None)


@contextlib.contextmanager
def running_services(services):
    """The services of the worker that runs the jobs inside the block (see worker.HeartbeatWorker)."""
    token = _running_services.set(services)
    try:
        yield
    finally:
        _running_services.reset(token)


def job_services() -> Services:
    """The services of the worker running this job; under a plain `rq worker`, built once from the environment."""
    return _running_services.get() or _services_from_environment()


@functools.cache
def _services_from_environment() -> Services:
    return Services(load_config())


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
    except USER_ERROR_TYPES as error:
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
def upload_copy(services, key):
    """A local copy of the upload under ``key`` for the job to read. The upload is released (deleted) when the
    job is done with it: after the block, or after a failure that no retry will follow (a retry needs it)."""
    try:
        with services.storage.local_copy(key) as path:
            yield path
    except Exception as error:
        if not will_retry(error):
            uploads.release(services.redis, services.storage, key)
        raise
    uploads.release(services.redis, services.storage, key)


def _message(error, filename=None):
    """The message for people: the user's file name, never our storage key, temporary path, bucket or host
    (those go to the worker's log)."""
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


USER_ERROR_TYPES = (AudioError, ValueError, KeyError, StorageError, IndexUnavailable)


def will_retry(error):
    """Whether the worker will run this job again after ``error`` (so its upload must be kept)."""
    job = current_job()
    return not _is_final(error) and bool(job and job.retries_left)


def _is_final(error):
    """Retrying cannot help: the file, the request or the configuration is wrong (a storage outage is not)."""
    return isinstance(error, USER_ERROR_TYPES) and not (isinstance(error, StorageError) and error.transient)
