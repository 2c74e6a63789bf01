"""Catalog admin: bulk ingest with per-file progress, the track list, metadata import, the RQ dashboard."""

import tempfile
from pathlib import Path

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from audiofind import calibration, uploads
from audiofind.jobs.queue import (
    CALIBRATION_JOB_KEY, enqueue_calibration, enqueue_ingest, enqueue_metadata_import, job_status, latest_job,
)
from audiofind.routes import hx
from audiofind.routes.auth import admin_access, admin_login, admin_logout, cross_site
from audiofind.routes.context import get_catalog, services
from audiofind.routes.errors import UserError
from audiofind.routes.hx import htmx, render, toast
from audiofind.routes.schemas import AdminTracksQuery, NewIngest, parse
from audiofind.routes.security import limit_login
from audiofind.routes.uploads import claim_upload

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 50
OPEN_VIEWS = ("admin.login",)


def guard():
    """Run before every admin view and the RQ dashboard: the admin check, and no cross-site writes."""
    if request.endpoint in OPEN_VIEWS:
        return None
    access = admin_access()
    if access == "missing":
        response = hx.redirect(url_for("admin.login"), 401) if htmx else redirect(
            url_for("admin.login", next=request.full_path))
        response.vary.add("HX-Request")
        return response
    if access != "ok":
        return render_template("admin/denied.html"), 403
    if request.method not in ("GET", "HEAD", "OPTIONS") and cross_site():
        abort(403, "cross-site request refused")
    return None


bp.before_request(guard)


@bp.route("/login", methods=["GET", "POST"])
@limit_login
def login():
    if not current_app.config.get("ADMIN_TOKEN"):
        return redirect(url_for("admin.index"))
    error = None
    if request.method == "POST":
        if cross_site():
            abort(403, "cross-site request refused")
        if admin_login(request.form.get("token")):
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/admin") else url_for("admin.index"))
        error = "That token is not right."
    return render_template("admin/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    admin_logout()
    return redirect(url_for("ui.index"))


@bp.get("/")
def index():
    return render_template("admin/index.html", **_tracks_context())


def _tracks_context():
    asked = parse(AdminTracksQuery, request.args)
    query, offset = asked.q.strip(), asked.offset
    catalog = get_catalog()
    return {"tracks": catalog.list(offset, PAGE, query), "total": catalog.count(query), "q": query,
            "offset": offset, "page": PAGE}


@bp.get("/tracks")
def tracks():
    return render("admin/index.html", "admin/_tracks.html", **_tracks_context())


@bp.delete("/tracks/<track_id>")
def remove_track(track_id):
    item = get_catalog().get(track_id)
    if item is None or not get_catalog().remove(track_id):
        return toast("That track was already removed.", "error", 404)
    name = item.get("title") or item["file"]
    # the row (the request's target) is replaced by nothing; the toast goes out of band
    return render_template("_toast.html", message=f"Removed {name}.", kind="success")


@bp.post("/ingests")
def start_ingest():
    """One uploaded file becomes one ingest job; answers the file's row, which polls its job."""
    filename = request.form.get("filename", "")
    try:
        ingest = parse(NewIngest, request.form)  # the API's POST /tracks takes the same fields
        claimed = claim_upload(ingest.key)
        filename = ingest.filename or claimed
    except UserError as error:
        return render_template("admin/_ingest_row.html", job=None, filename=filename, error=str(error)), error.status
    job = enqueue_ingest(services(), ingest.key, filename)
    info = {"id": job.id, "status": "queued", "stage": "queued", "file": filename, "result": None, "error": None}
    return render_template("admin/_ingest_row.html", job=info, filename=filename), 202


@bp.get("/ingests/<job_id>")
def ingest_status(job_id):
    info = job_status(services(), job_id, kind="ingest")
    if info is None:
        return render_template("admin/_ingest_row.html", job=None, filename="", error="unknown job"), 404
    added = info["status"] == "finished" and (info["result"] or {}).get("status") == "added"
    # once a track is added, the track list below reloads itself
    return hx.make_response(render_template("admin/_ingest_row.html", job=info, filename=info["file"]),
                            trigger="catalogChanged" if added else None)


@bp.post("/metadata")
def import_metadata():
    """The CSV goes to storage and a job applies it (a large one would outlast the web request)."""
    request.max_content_length = int(current_app.config["MAX_CSV_BYTES"])
    upload = request.files.get("csv")
    if upload is None or not upload.filename:
        return toast("Choose a CSV file first.", "error", 400)
    storage = services().storage
    key = uploads.new_key(storage, upload.filename)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "metadata.csv"
        upload.save(path)
        storage.put_file(path, key, "text/csv")
    job = enqueue_metadata_import(services(), key, upload.filename)
    info = {"id": job.id, "status": "queued", "stage": "queued", "file": upload.filename, "result": None, "error": None}
    return render_template("admin/_import_result.html", job=info), 202


@bp.get("/imports/<job_id>")
def import_status(job_id):
    info = job_status(services(), job_id, kind="metadata")
    if info is None:
        return toast("That import is no longer known.", "error", 404)
    return render_template("admin/_import_result.html", job=info)


@bp.get("/calibration")
def calibration_status():
    return _calibration_panel()


@bp.post("/calibration")
def recalibrate():
    """Learn the catalog's nuisance direction again (audiofind/calibration.py), as a job."""
    if get_catalog().calibration_store is None:
        abort(400, f"the {services().index.name!r} index keeps no calibration")
    enqueue_calibration(services())
    return _calibration_panel(202)


def _calibration_panel(status=200):
    catalog = get_catalog()
    stored = catalog.calibration_store.load() if catalog.calibration_store else None
    job = latest_job(services(), CALIBRATION_JOB_KEY, "calibration")
    current = calibration.learned_for(stored, catalog.index)
    return render_template("admin/_calibration.html", stored=stored, current=current, job=job,
                           min_tracks=calibration.MIN_TRACKS), status


# -- the RQ dashboard, mounted under /admin/rq behind the same check


def mount_rq_dashboard(app):
    import rq_dashboard

    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")

    @app.before_request
    def _rq_dashboard_guard():
        if request.blueprint != rq_dashboard.blueprint.name:
            return None
        denied = guard()
        if denied is not None:
            return denied
        if cross_site():  # the dashboard changes state on some GETs (requeue, empty): same-site requests only
            abort(403, "cross-site request refused")
        if not getattr(current_app, "redis_conn", None):
            # the dashboard reads current_app.redis_conn; share ours (works for unix sockets too)
            current_app.redis_conn = services().redis
            current_app.config["RQ_DASHBOARD_REDIS_URL"] = [current_app.config["REDIS_URL"]]
        return None
