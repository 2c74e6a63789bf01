"""The public pages: search, the job status partial, results, "more like this" and the track page."""

from flask import Blueprint, abort, current_app, make_response, render_template, request, url_for

from audiofind.app import get_catalog
from audiofind.index.base import Filters
from audiofind.jobs.queue import enqueue_search, job_status
from audiofind.routes.common import (
    UserError,
    claim_upload,
    is_htmx,
    parse_range,
    parse_search_options,
)

bp = Blueprint("ui", __name__)

STAGES = {
    "queued": "Waiting for a worker…",
    "analyzing": "Analyzing audio…",
    "searching": "Searching…",
}


def render(full, partial, status=200, **context):
    """The full page, or only its partial for an htmx request; one URL, so caches must vary on HX-Request."""
    response = make_response(render_template(partial if is_htmx() else full, **context), status)
    response.vary.add("HX-Request")
    return response


@bp.get("/")
def index():
    return render("search/index.html", "search/_form.html", **_page_context())


def _page_context():
    config = current_app.config
    return {"max_upload": int(config["MAX_UPLOAD_BYTES"]), "max_duration": float(config["MAX_DURATION"])}


@bp.post("/searches")
def start_search():
    form = request.form
    try:
        options = parse_search_options(form)
        start, end = parse_range(form)
        key = form.get("key", "")
        filename = claim_upload(key)
    except UserError as error:
        return render_template("search/_status.html", job=None, error=str(error)), error.status
    options.update(start=start, end=end)
    job = enqueue_search(current_app, key, options, filename)
    info = {"id": job.id, "status": "queued", "stage": "queued", "result": None, "error": None}
    return render_template("search/_status.html", job=info, stages=STAGES), 202


@bp.get("/searches/<job_id>")
def search_status(job_id):
    info = job_status(current_app, job_id, kind="search")
    if info is None:
        if is_htmx():
            error = "This search has expired or does not exist; drop your file again."
            return render_template("search/_status.html", job=None, error=error), 404
        abort(404)
    results = info["result"] if info["status"] == "finished" else None
    return render(
        "search/index.html", "search/_status.html", job=info, stages=STAGES, results=results,
        oob_results=is_htmx(), filename=info["file"], heading=f"Tracks that sound like {info['file'] or 'your file'}",
        **_page_context(),
    )


@bp.get("/tracks/<track_id>")
def track(track_id):
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        abort(404)
    neighbours = catalog.similar(track_id, limit=10)
    widget = url_for("widgets.similar", track_id=track_id, _external=True)
    return render_template("tracks/show.html", track=item, results=neighbours, widget_url=widget)


@bp.get("/tracks/<track_id>/similar")
def similar(track_id):
    """"More like this": the neighbours of a catalog track (never itself), honouring the filter fields."""
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        abort(404)
    options = parse_search_options(request.args)
    options["filters"] = Filters(**options["filters"])
    results = catalog.similar(track_id, **options)
    heading = f"More like {item.get('title') or item['file']}"
    return render("tracks/similar.html", "search/_results.html", results=results, heading=heading, track=item)
