"""The two queues, enqueueing, and job status. Every function takes the process's Services (services.py).

Searches and ingests have separate queues and the worker listens to "search" first, so a search is
never stuck behind a bulk ingest. What happens to a job whose worker dies: see worker.py.
"""

import logging
import uuid

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job

from audiofind import logs, uploads
from audiofind.services import QueueUnavailable

logger = logging.getLogger(__name__)
SEARCH_QUEUE = "search"
INGEST_QUEUE = "ingest"
QUEUES = (SEARCH_QUEUE, INGEST_QUEUE)
SEARCH_RESULT_TTL = 3600  # seconds a finished search stays readable
INGEST_RESULT_TTL = 24 * 3600
FAILURE_TTL = 24 * 3600

def queue_unavailable(error):
    logger.warning("Redis: %s", error)  # its host and port are for the log, not for the page
    return QueueUnavailable("the job queue cannot be reached right now; please try again in a moment")


def get_queue(services, name):
    return get_queue_by_name(services.redis, name)


def get_queue_by_name(conn, name):
    return Queue(name, connection=conn)


def _retry(services):
    retries = int(services.config.get("JOB_RETRIES") or 0)
    return Retry(max=retries, interval=[2, 10, 30][:retries] or 0) if retries else None


def _enqueue(services, queue_name, func, upload_key, args, timeout, result_ttl, meta):
    """The job that reads the upload under ``upload_key``; the upload is held for it first (see uploads.py).
    A search of catalog tracks only ("sounds like these") has no upload: ``upload_key`` None."""
    job_id = str(uuid.uuid4())
    try:
        if upload_key is not None:
            uploads.hold(services.redis, upload_key, job_id)
        return get_queue(services, queue_name).enqueue_call(
            func,
            args=(upload_key, *args),
            job_id=job_id,
            timeout=int(timeout),
            result_ttl=result_ttl,
            failure_ttl=FAILURE_TTL,
            retry=_retry(services),
            meta={"stage": "queued", "request_id": logs.request_id.get(), **meta},
        )
    except redis.RedisError as error:
        raise queue_unavailable(error) from error


def enqueue_search(services, key, options, filename=""):
    return _enqueue(
        services, SEARCH_QUEUE, "audiofind.jobs.search.run_search", key, (options,),
        services.config["SEARCH_JOB_TIMEOUT"], SEARCH_RESULT_TTL, {"kind": "search", "file": filename},
    )


def enqueue_ingest(services, key, filename, metadata=None):
    return _enqueue(
        services, INGEST_QUEUE, "audiofind.jobs.ingest.run_ingest", key, (filename, metadata or {}),
        services.config["INGEST_JOB_TIMEOUT"], INGEST_RESULT_TTL, {"kind": "ingest", "file": filename},
    )


def enqueue_metadata_import(services, key, filename):
    return _enqueue(
        services, INGEST_QUEUE, "audiofind.jobs.metadata.run_metadata_import", key, (filename,),
        services.config["INGEST_JOB_TIMEOUT"], INGEST_RESULT_TTL, {"kind": "metadata", "file": filename},
    )


MAP_JOB_KEY = "audiofind:map-job"  # the id of the latest map job
CALIBRATION_JOB_KEY = "audiofind:calibration-job"  # the id of the latest calibration job


def _enqueue_once(services, key, func, kind, timeout):
    """A catalog-wide job; while one of its kind is queued or running, that one rather than a second."""
    running = latest_job(services, key, kind)
    if running and running["status"] in ("queued", "started"):
        return running["id"]
    job_id = str(uuid.uuid4())
    try:
        get_queue(services, INGEST_QUEUE).enqueue_call(
            func, job_id=job_id, timeout=timeout, result_ttl=INGEST_RESULT_TTL, failure_ttl=FAILURE_TTL,
            meta={"stage": "queued", "request_id": logs.request_id.get(), "kind": kind},
        )
        services.redis.set(key, job_id)
    except redis.RedisError as error:
        raise queue_unavailable(error) from error
    return job_id


def latest_job(services, key, kind):
    """job_status of the latest catalog-wide job of this kind (``key``: where its id is kept), or None."""
    try:
        job_id = services.redis.get(key)
    except redis.RedisError as error:
        raise queue_unavailable(error) from error
    return job_status(services, job_id.decode(), kind=kind) if job_id else None


def enqueue_map(services):
    """The map job ("recompute the map")."""
    return _enqueue_once(services, MAP_JOB_KEY, "audiofind.jobs.catalog_map.run_map_layout", "map",
                         int(services.config.get("MAP_JOB_TIMEOUT", 4 * 3600)))


def latest_map_job(services):
    """job_status of the latest map job, or None."""
    return latest_job(services, MAP_JOB_KEY, "map")


def enqueue_calibration(services):
    """The calibration job (audiofind/calibration.py), which ingest enqueues when the catalog needs one."""
    return _enqueue_once(services, CALIBRATION_JOB_KEY, "audiofind.jobs.ingest.run_calibration", "calibration",
                         3600)


def job_status(services, job_id, kind=None):
    """{id, kind, status, stage, result, error} of a job, or None when unknown (or of another kind)."""
    try:
        job = Job.fetch(job_id, connection=services.redis)
        status = job.get_status()
    except NoSuchJobError:
        return None
    except redis.RedisError as error:
        raise queue_unavailable(error) from error
    meta = job.get_meta()
    if kind and meta.get("kind") != kind:
        return None
    status = getattr(status, "value", status) or "queued"
    info = {"id": job.id, "kind": meta.get("kind"), "file": meta.get("file"), "status": status,
            "stage": meta.get("stage"), "result": None, "error": None}
    if meta.get("map_position"):  # a search's reference on the catalog map (jobs/search.py)
        info["map_position"] = meta["map_position"]
    if status in ("scheduled", "deferred"):  # waiting for a retry: still in progress for the user
        info["status"] = "queued"
    elif status == "finished":
        info["stage"] = "done"
        info["result"] = job.return_value()
    elif status in ("failed", "stopped", "canceled"):
        info["stage"] = "failed"
        info["error"] = meta.get("error") or _failure_reason(job, status)
    return info


def search_options(services, job_id):
    """(options, file name) a search job was started with (its ``options`` argument), or None when unknown."""
    try:
        job = Job.fetch(job_id, connection=services.redis)
    except NoSuchJobError:
        return None
    except redis.RedisError as error:
        raise queue_unavailable(error) from error
    meta = job.get_meta()
    if meta.get("kind") != "search":
        return None
    return dict(job.args[1] or {}), meta.get("file") or ""


def _failure_reason(job, status):
    if status != "failed":
        return f"the job was {status}"
    result = job.latest_result()
    text = (getattr(result, "exc_string", "") or "").strip()
    if "JobTimeoutException" in text:
        return "the job took too long and was stopped"
    if "AbandonedJobError" in text:
        return "the worker running this job stopped; please try again"
    # The traceback can name buckets, hosts and paths: it stays in the worker's log and RQ's dashboard.
    return "the job failed on the server; please try again later"


