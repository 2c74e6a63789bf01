"""One blueprint per area, plus what every page shares: htmx, error pages, template helpers."""

from importlib import resources

from flask import current_app, jsonify, make_response, render_template, request, send_file
from redis import RedisError
from werkzeug.exceptions import HTTPException

from audiofind import health, logs, upload_policy
from audiofind.display import clock, energy, envelope_svg, percent
from audiofind.index.base import IndexUnavailable
from audiofind.index.filters import PUBLIC_FIELDS
from audiofind.jobs.queue import QueueUnavailable, queue_unavailable
from audiofind.musicfacts import compatible_camelots
from audiofind.routes import admin, api, security, shortlists, storage, ui, widgets
from audiofind.routes import map as map_page  # (not to hide the builtin)
from audiofind.routes.auth import admin_access
from audiofind.routes.context import services
from audiofind.routes.errors import UserError, error
from audiofind.routes.hx import htmx, toast
from audiofind.routes.playback import playback_url

# htmx itself, from a Python package pinned to one exact version (pyproject.toml): a new major changes behaviour.
HTMX = ("js_lib_htmx", "static/htmx/htmx.min.js")
# What a job or an upload is doing, as the page says it: the templates read ``stages``, app.js reads them from the
# page (<body data-stages>); the job stages are those the jobs set (jobs/_common.set_stage).
STAGES = {
    "waiting": "Waiting to upload…",
    "uploading": "Uploading…",
    "queued": "Waiting for a worker…",
    "analyzing": "Analyzing audio…",
    "searching": "Searching…",
    "working": "Working…",
}


def register_blueprints(app):
    app.before_request(_set_request_id)  # first: a guard that answers early still has its request's id
    app.after_request(_send_request_id)
    for module in (ui, api, admin, widgets, storage, map_page, shortlists):
        app.register_blueprint(module.bp)
    app.register_blueprint(shortlists.admin_bp)
    app.register_blueprint(shortlists.api_bp)
    admin.mount_rq_dashboard(app)
    app.add_url_rule("/assets/htmx.min.js", "htmx", _htmx)
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(health.liveness()))
    app.add_url_rule("/readyz", "readyz", _readyz)
    security.init_app(app)
    htmx.init_app(app)

    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(UserError, lambda e: _error(e.status, str(e), e.code))
    app.register_error_handler(QueueUnavailable, lambda e: _error(503, str(e), "unavailable"))
    app.register_error_handler(RedisError, lambda e: _error(503, str(queue_unavailable(e)), "unavailable"))
    app.register_error_handler(IndexUnavailable, _index_unavailable)

    app.jinja_env.globals.update(
        envelope_svg=envelope_svg, playback_url=playback_url, is_admin=lambda: admin_access() == "ok",
        stages=STAGES, audio_accept=upload_policy.ACCEPT, filter_fields=PUBLIC_FIELDS, zip=zip,
        compatible_camelots=compatible_camelots,
    )
    app.jinja_env.filters.update(clock=clock, percent=percent, energy=energy)
    app.context_processor(lambda: {"max_upload": upload_policy.max_bytes(app.config)})


def _set_request_id():
    # Kept for the rest of this thread's request, gunicorn's access line included; the next request replaces it.
    logs.request_id.set(logs.new_request_id(request.headers.get("X-Request-ID")))


def _send_request_id(response):
    response.headers["X-Request-ID"] = logs.request_id.get()
    return response


def _index_unavailable(error):
    current_app.logger.warning("index unavailable: %s", error)  # its cluster and host are for the log
    return _error(503, "the catalog cannot be reached right now; please try again later", "unavailable")


def _readyz():
    report = health.readiness(services())
    status = 200 if report["ok"] else 503
    try:
        admin = admin_access() == "ok"
    except Exception:  # Redis down: the report says so, to nobody in particular
        admin = False
    if not admin:  # what failed is public, the error text (hosts, buckets) is for admins
        report = {name: {k: v for k, v in part.items() if k != "error"} if isinstance(part, dict) else part
                  for name, part in report.items()}
    return jsonify(report), status


def _htmx():
    path = resources.files(HTMX[0]).joinpath(HTMX[1])
    response = send_file(str(path), mimetype="text/javascript", conditional=True, max_age=86400)
    return response


def _http_error(exc):
    return _error(exc.code or 500, exc.description or exc.name)


def _error(status, message, code=None):
    """JSON under /api, a self-hiding toast for htmx requests, an error page otherwise."""
    if request.path.startswith(("/api/", "/storage/")):
        return error(status, message, code)
    response = toast(message, "error", status) if htmx else make_response(
        render_template("errors/page.html", status=status, message=message), status)
    response.vary.add("HX-Request")
    return response
