"""Logging for every process (web, worker, CLI): one dictConfig, one format, text or JSON, set up here only.

AUDIOFIND_LOG_LEVEL (INFO) and AUDIOFIND_LOG_FORMAT (`text`, or `json`: one JSON object per line for log
collectors); `audiofind --log-level` sets the former for the command and every process it starts. Each line
carries the request id of the web request it belongs to — also a worker's lines while it runs that request's job."""

import contextvars
import json
import logging
import logging.config
import os
import re
import sys
import uuid

request_id = contextvars.ContextVar("audiofind_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s] %(message)s"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a client's X-Request-ID is logged only if it looks like one


def level():
    return (os.environ.get("AUDIOFIND_LOG_LEVEL") or "INFO").upper()


def new_request_id(offered=None) -> str:
    return offered if offered and _ACCEPTED_ID.fullmatch(offered) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get() or "-"
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is when a line is written (a test runner or a daemon may replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                "logger": record.name, "process": record.process, "message": record.getMessage()}
        if record.request_id != "-":
            line["request_id"] = record.request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def config_dict() -> dict:
    """The logging configuration of this process (also gunicorn's `logconfig_dict`)."""
    formatter = "json" if os.environ.get("AUDIOFIND_LOG_FORMAT", "").lower() == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"text": {"format": TEXT_FORMAT}, "json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"()": StderrHandler, "formatter": formatter, "filters": ["request_id"]}},
        "root": {"level": level(), "handlers": ["stderr"]},
        # gunicorn's own loggers write through the root handler: the same format as everything else
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("gunicorn.error", "gunicorn.access")},
    }


def configure():
    logging.config.dictConfig(config_dict())
