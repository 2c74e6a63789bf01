"""The worker loop: an RQ SimpleWorker with a heartbeat, run by `audiofind worker` and `audiofind serve`.

A job whose worker dies mid-run stays in RQ's StartedJobRegistry; the registry clean-up of any live worker
finds it abandoned once its heartbeat lapses (seconds, see HeartbeatWorker) and re-enqueues it while it has
retries left, otherwise marks it failed (AbandonedJobError) — it is never silently lost.
"""

import os
import socket
import sys
import threading
import time

from redis import RedisError
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.worker import WorkerStatus

from audiofind import logs, uploads
from audiofind.embedders.base import EmbedderUnavailable
from audiofind.index.base import IndexUnavailable
from audiofind.jobs._common import running_services
from audiofind.jobs.queue import QUEUES, get_queue, get_queue_by_name
from audiofind.services import QueueUnavailable

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

_DELETE_IF_OWNER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def process_alive(pid) -> bool:
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


def run_worker(services, queues=None, burst=False):
    """Work the queues (search first) in this process until stopped (or until empty with ``burst``).

    A SimpleWorker runs each job in this process, so the model loads once per process and is reused
    (a forking worker would load it again in every job's child, or fork a live thread pool)."""
    logs.configure()
    try:
        services.redis.ping()
    except QueueUnavailable as error:
        sys.exit(f"worker cannot start: {error}")
    except RedisError as error:
        sys.exit(f"worker cannot start: cannot reach Redis at {services.config['REDIS_URL']} ({error})")
    try:
        services.catalog.check()  # load the model now, before the first job waits for it
    except (EmbedderUnavailable, IndexUnavailable) as error:
        sys.exit(f"worker cannot start: {error}")
    worker = HeartbeatWorker(
        [get_queue(services, name) for name in list(queues or QUEUES)], connection=services.redis,
        worker_ttl=WORKER_TTL, maintenance_interval=MAINTENANCE_INTERVAL,
    )
    worker.services = services
    return worker.work(burst=burst, logging_level=logs.level(), with_scheduler=True)


class HeartbeatWorker(SimpleWorker):
    """RQ's SimpleWorker, which runs jobs in its own process (the model stays loaded), with a heartbeat.

    SimpleWorker cannot renew a job's heartbeat while the job runs in its only thread, so RQ gives the job
    its whole timeout (an hour for an ingest) before another worker may call it abandoned. Here a thread
    renews it every few seconds: a killed worker's job is requeued within seconds."""

    services = None  # set by run_worker; the jobs this worker runs use them (jobs._common.running_services)

    def get_heartbeat_ttl(self, job, working_time=0.0):
        return HEARTBEAT_TTL

    def execute_job(self, job, queue):
        # this job's log lines carry the id of the web request that enqueued it
        token = logs.request_id.set(job.meta.get("request_id"))
        try:
            with running_services(self.services):
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
                swept = uploads.sweep(conn, self.services.storage, self.services.config)
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
            if pid and host == socket.gethostname() and not process_alive(pid):
                self.connection.eval(_DELETE_IF_OWNER, 1, key, owner)

    def _requeue_lost_jobs(self):
        """A worker listening on several queues pops a job off its queue with no copy kept anywhere (RQ's
        safety list is for one queue); killed before the job is marked started, it leaves the job queued in
        no queue, registry or worker. Every job of ours holds an upload: such a job is found through it,
        and put back on its queue when it is still lost at the next check."""
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
