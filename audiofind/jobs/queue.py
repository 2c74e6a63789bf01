"""The Redis connection, the two queues, enqueueing, job status, and the worker loop.

Searches and ingests have separate queues and the worker listens to "search" first, so a search is
never stuck behind a bulk ingest. A job whose worker dies mid-run stays in RQ's StartedJobRegistry;
the registry clean-up of any live worker finds it abandoned once its heartbeat lapses (seconds, see
HeartbeatWorker) and re-enqueues it while it has retries left, otherwise marks it failed
(AbandonedJobError) — it is never silently lost.
"""

import logging
import os
import socket
import sys
import threading
import time
import uuid

logger = logging.getLogger(__name__)
SEARCH_QUEUE = "search"
INGEST_QUEUE = "ingest"
QUEUES = (SEARCH_QUEUE, INGEST_QUEUE)
SEARCH_RESULT_TTL = 3600  # seconds a finished search stays readable
INGEST_RESULT_TTL = 24 * 3600
FAILURE_TTL = 24 * 3600
# A running job's heartbeat is renewed every HEARTBEAT_INTERVAL seconds and lapses HEARTBEAT_TTL seconds after
# the last one; idle workers look for lapsed jobs every MAINTENANCE_INTERVAL seconds (WORKER_TTL - 15 at most).
HEARTBEAT_INTERVAL = 2
HEARTBEAT_TTL = 8
MAINTENANCE_INTERVAL = 4
WORKER_TTL = 20
SWEEP_INTERVAL = 300  # seconds between two sweeps of left-over uploads (by whichever worker comes first)
SWEEP_LOCK = "audiofind:uploads:sweeping"
LOST_CHECK_INTERVAL = 5  # seconds between two looks for jobs that a dead worker popped off their queue
LOST_LOCK = "audiofind:jobs:looking-for-lost"
LOST_MARK = "audiofind:jobs:lost:"


class QueueUnavailable(RuntimeError):
    """Redis is not configured or cannot be reached; the message says what to do."""


def redis_connection(app):
    """One Redis client per app (its pool connects lazily, so it is safe to create before a fork)."""
    conn = app.extensions.get("audiofind.redis")
    if conn is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise QueueUnavailable(
                "no job queue: set AUDIOFIND_REDIS_URL, or run `audiofind serve`, which starts Redis for you"
            )
        from redis import Redis

        conn = Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        app.extensions["audiofind.redis"] = conn
    return conn


def queue_unavailable(error):
    logger.warning("Redis: %s", error)  # its host and port are for the log, not for the page
    return QueueUnavailable("the job queue cannot be reached right now; please try again in a moment")


def get_queue(app, name):
    return get_queue_by_name(redis_connection(app), name)


def get_queue_by_name(conn, name):
    from rq import Queue

    return Queue(name, connection=conn)


def _retry(app):
    from rq import Retry

    retries = int(app.config.get("JOB_RETRIES") or 0)
    return Retry(max=retries, interval=[2, 10, 30][:retries] or 0) if retries else None


def _enqueue(app, queue_name, func, upload_key, args, timeout, result_ttl, meta):
    """The job that reads the upload under ``upload_key``; the upload is held for it first (see uploads.py)."""
    import redis

    from audiofind import logs, uploads

    job_id = str(uuid.uuid4())
    try:
        uploads.hold(redis_connection(app), upload_key, job_id)
        return get_queue(app, queue_name).enqueue_call(
            func,
            args=(upload_key, *args),
            job_id=job_id,
            timeout=int(timeout),
            result_ttl=result_ttl,
            failure_ttl=FAILURE_TTL,
            retry=_retry(app),
            meta={"stage": "queued", "request_id": logs.request_id.get(), **meta},
        )
    except redis.RedisError as error:
        raise queue_unavailable(error) from error


def enqueue_search(app, key, options, filename=""):
    return _enqueue(
        app, SEARCH_QUEUE, "audiofind.jobs.search.run_search", key, (options,),
        app.config["SEARCH_JOB_TIMEOUT"], SEARCH_RESULT_TTL, {"kind": "search", "file": filename},
    )


def enqueue_ingest(app, key, filename, metadata=None):
    return _enqueue(
        app, INGEST_QUEUE, "audiofind.jobs.ingest.run_ingest", key, (filename, metadata or {}),
        app.config["INGEST_JOB_TIMEOUT"], INGEST_RESULT_TTL, {"kind": "ingest", "file": filename},
    )


def enqueue_metadata_import(app, key, filename):
    return _enqueue(
        app, INGEST_QUEUE, "audiofind.jobs.metadata.run_metadata_import", key, (filename,),
        app.config["INGEST_JOB_TIMEOUT"], INGEST_RESULT_TTL, {"kind": "metadata", "file": filename},
    )


def job_status(app, job_id, kind=None):
    """{id, kind, status, stage, result, error} of a job, or None when unknown (or of another kind)."""
    import redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=redis_connection(app))
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
    if status in ("scheduled", "deferred"):  # waiting for a retry: still in progress for the user
        info["status"] = "queued"
    elif status == "finished":
        info["stage"] = "done"
        info["result"] = job.return_value()
    elif status in ("failed", "stopped", "canceled"):
        info["stage"] = "failed"
        info["error"] = meta.get("error") or _failure_reason(job, status)
    return info


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


# -- the worker

_DELETE_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _process_alive(pid) -> bool:
    """Whether a process of this host runs (a zombie does not: it is dead, only not yet reaped)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


_worker_app = None


def worker_app():
    """The app of this worker process: set by run_worker, else created once from the environment."""
    global _worker_app
    if _worker_app is None:
        from audiofind.app import create_app

        _worker_app = create_app()
    return _worker_app


def run_worker(app, queues=None, burst=False):
    """Work the queues (search first) in this process until stopped (or until empty with ``burst``).

    A SimpleWorker runs each job in this process, so the model loads once per process and is reused
    (a forking worker would load it again in every job's child, or fork a live thread pool)."""
    global _worker_app
    from audiofind import logs
    from audiofind.app import get_catalog
    from audiofind.embedders.base import EmbedderUnavailable
    from audiofind.index.base import IndexUnavailable

    _worker_app = app
    logs.configure()
    try:
        redis_connection(app).ping()
    except QueueUnavailable as error:
        sys.exit(f"worker cannot start: {error}")
    except Exception as error:  # redis.ConnectionError and friends
        sys.exit(f"worker cannot start: cannot reach Redis at {app.config['REDIS_URL']} ({error})")
    try:
        with app.app_context():
            get_catalog(app).check()  # load the model now, before the first job waits for it
    except (EmbedderUnavailable, IndexUnavailable) as error:
        sys.exit(f"worker cannot start: {error}")
    names = list(queues or QUEUES)
    conn = redis_connection(app)
    worker = heartbeat_worker_class()(
        [get_queue(app, name) for name in names], connection=conn,
        worker_ttl=WORKER_TTL, maintenance_interval=MAINTENANCE_INTERVAL,
    )
    return worker.work(burst=burst, logging_level=logs.level(), with_scheduler=True)


def heartbeat_worker_class():
    """RQ's SimpleWorker, which runs jobs in its own process (the model stays loaded), with a heartbeat.

    SimpleWorker cannot renew a job's heartbeat while the job runs in its only thread, so RQ gives the job
    its whole timeout (an hour for an ingest) before another worker may call it abandoned. Here a thread
    renews it every few seconds: a killed worker's job is requeued within seconds."""
    from rq import SimpleWorker
    from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
    from rq.worker import WorkerStatus

    from audiofind import logs, uploads
    from audiofind.app import services

    class HeartbeatWorker(SimpleWorker):
        def get_heartbeat_ttl(self, job, working_time=0.0):
            return HEARTBEAT_TTL

        def execute_job(self, job, queue):
            # this job's log lines carry the id of the web request that enqueued it
            token = logs.request_id.set(job.meta.get("request_id"))
            try:
                self._execute_job(job, queue)
            finally:
                logs.request_id.reset(token)

        def _execute_job(self, job, queue):
            execution = self.prepare_execution(job)
            done = threading.Event()
            beat = threading.Thread(target=self._beat, args=(job, execution, done), daemon=True)
            beat.start()
            try:
                self.perform_job(job, queue, execution)
            finally:
                done.set()
                beat.join()
            self.set_state(WorkerStatus.IDLE)

        def run_maintenance_tasks(self):
            self._free_locks_of_dead_schedulers()
            super().run_maintenance_tasks()
            if self.connection.set(LOST_LOCK, self.name, nx=True, ex=LOST_CHECK_INTERVAL):
                self._requeue_lost_jobs()
            conn = self.connection
            if conn.set(SWEEP_LOCK, self.name, nx=True, ex=SWEEP_INTERVAL):  # one worker sweeps at a time
                try:
                    swept = uploads.sweep(conn, services(worker_app()).storage, worker_app().config)
                    if swept:
                        self.log.info("removed %d left-over uploads", len(swept))
                except Exception:  # storage away for a moment: the next sweep tries again
                    self.log.warning("sweeping left-over uploads failed", exc_info=True)

        def _free_locks_of_dead_schedulers(self):
            """RQ's scheduler runs in a process its worker forks; killed with it, its lock outlives it by a minute,
            and every retry waits that long. The lock of a scheduler on this host whose process is gone is freed
            (if it is still that scheduler's), so this worker's maintenance takes it over at once."""
            for name in self.queue_names():
                key = RQScheduler.get_locking_key(name)
                owner = self.connection.get(key)
                info = self.connection.hgetall(SCHEDULER_KEY_TEMPLATE % owner.decode()) if owner else {}
                host, pid = info.get(b"hostname", b"").decode(), int(info.get(b"pid") or 0)
                if pid and host == socket.gethostname() and not _process_alive(pid):
                    self.connection.eval(_DELETE_IF_OWNER, 1, key, owner)

        def _requeue_lost_jobs(self):
            """A worker listening on several queues pops a job off its queue with no copy kept anywhere (RQ's
            safety list is for one queue); killed before the job is marked started, it leaves the job queued in
            no queue, registry or worker. Every job of ours holds an upload: such a job is found through it,
            and put back on its queue when it is still lost at the next check."""
            from rq.job import Job, JobStatus
            from rq.registry import ScheduledJobRegistry

            conn, now = self.connection, time.time()
            held = {job_id.decode() for job_id in conn.hvals(uploads.HELD)}
            if not held:
                return
            placed = set()
            for queue in self.queues:
                placed.update(queue.get_job_ids())
                placed.update(ScheduledJobRegistry(queue=queue).get_job_ids())
            placed.update(worker.get_current_job_id() for worker in self.all(connection=conn)
                          if worker.last_heartbeat and now - worker.last_heartbeat.timestamp() < WORKER_TTL)
            for job_id in held - placed:
                try:
                    job = Job.fetch(job_id, connection=conn)
                except Exception:  # expired or unreadable: the sweeper drops its upload
                    continue
                if job.get_status() != JobStatus.QUEUED:
                    continue
                if conn.set(LOST_MARK + job_id, now, nx=True, ex=10 * LOST_CHECK_INTERVAL):
                    continue  # first seen lost: a worker may be between popping it and starting it
                self.log.warning("job %s was lost by a worker that died; putting it back on %s", job_id, job.origin)
                conn.delete(LOST_MARK + job_id)
                get_queue_by_name(conn, job.origin).enqueue_job(job)

        def _beat(self, job, execution, done):
            while not done.wait(HEARTBEAT_INTERVAL):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # Redis away for a moment: the next beat tries again
                    self.log.warning("heartbeat of job %s failed", job.id, exc_info=True)

    return HeartbeatWorker
