"""gunicorn settings for the web app, the one place for them: `audiofind serve` reads this module and
production runs `gunicorn -c python:audiofind.gunicorn_conf audiofind.wsgi:app`.

Set from the environment: PORT (8000) and HOST (0.0.0.0) for the address, WEB_CONCURRENCY for the number
of processes, AUDIOFIND_LOG_LEVEL for gunicorn's error log; AUDIOFIND_LOG_FORMAT for the format (audiofind/logs.py); the access log is on."""

import gc
import os

from audiofind import logs

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(4, max(2, os.cpu_count() or 1)))
worker_class = "gthread"
# 16, not 8: with 50 keep-alive clients polling, 8 threads per worker gave p99 23-140 ms (max ~350 ms)
# even on /healthz, 16 gave 3-8 ms. More (32) made CPU-heavy pages queue inside the process instead.
threads = 16
timeout = 60
graceful_timeout = 10
proc_name = "audiofind-web"
accesslog = "-"
loglevel = logs.level().lower()
logconfig_dict = logs.config_dict()


def post_worker_init(worker):
    # The app is loaded in each worker after the fork. A full collection walked every object the app and its
    # libraries made at start-up (~18 ms on the bench machine, a pause for every thread of the worker): keep
    # those out of the collector.
    gc.collect()
    gc.freeze()


def settings():
    """This module's gunicorn settings by name, for `audiofind serve`."""
    names = ("bind", "workers", "worker_class", "threads", "timeout", "graceful_timeout", "proc_name",
             "accesslog", "loglevel", "logconfig_dict", "post_worker_init")
    return {name: globals()[name] for name in names}
