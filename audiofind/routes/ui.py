"""The public pages: search, the job status partial, results, "more like this" and the track page."""

import threading
import time
from collections import OrderedDict

from flask import Blueprint, abort, current_app, render_template, request, url_for
from markupsafe import Markup

from audiofind.index.base import Filters
from audiofind.jobs.queue import enqueue_search, job_status
from audiofind.routes.context import get_catalog, services
from audiofind.routes.errors import UserError
from audiofind.routes.hx import htmx, render
from audiofind.routes.schemas import NewSearch, SimilarQuery, parse
from audiofind.routes.security import limit_searches, limit_similar
from audiofind.routes.uploads import claim_upload

bp = Blueprint("ui", __name__)


@bp.get("/")
def index():
    return render("search/index.html", "search/_form.html", **_page_context())


def _page_context():
    config = current_app.config
    return {"max_duration": float(config["MAX_DURATION"])}


@bp.post("/searches")
@limit_searches
def start_search():
    try:
        search = NewSearch.from_form(request.form)
        filename = claim_upload(search.key)
    except UserError as error:
        return render_template("search/_status.html", job=None, error=str(error)), error.status
    job = enqueue_search(services(), search.key, search.job_options(), filename)
    info = {"id": job.id, "status": "queued", "stage": "queued", "result": None, "error": None}
    return render_template("search/_status.html", job=info), 202


@bp.get("/searches/<job_id>")
def search_status(job_id):
    cached = _finished_searches().get(job_id)
    info = cached[0] if cached else job_status(services(), job_id, kind="search")
    if info is None:
        if htmx:
            error = "This search has expired or does not exist; drop your file again."
            return render_template("search/_status.html", job=None, error=error), 404
        abort(404)
    results_html = cached[1] if cached else None
    if info["status"] == "finished" and results_html is None:
        # A finished search never changes: its results list is rendered once per process and kept for a
        # short while (its playback links are signed and expire, so never for long).
        heading = f"Tracks that sound like {info['file'] or 'your file'}"
        results_html = Markup(render_template("search/_results.html", results=info["result"], heading=heading,
                                              map_url=url_for("map.index", search=job_id)))
        _finished_searches().put(job_id, (info, results_html))
    return render(
        "search/index.html", "search/_status.html", job=info, results_html=results_html,
        oob_results=bool(htmx), filename=info["file"], **_page_context(),
    )


class _FinishedCache:
    """Finished searches of this process: job id -> (status info, rendered results list), LRU, TTL-bounded."""

    def __init__(self, size=256, ttl=30.0):
        self.size, self.ttl = size, ttl
        self.items = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.items.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self.items[key]
                return None
            self.items.move_to_end(key)
            return entry[1]

    def put(self, key, value):
        with self.lock:
            self.items[key] = (time.monotonic() + self.ttl, value)
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def _finished_searches() -> _FinishedCache:
    return current_app.extensions.setdefault("audiofind.finished_searches", _FinishedCache())


@bp.get("/tracks/<track_id>")
@limit_similar
def track(track_id):
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        abort(404)
    neighbours = catalog.similar(track_id, limit=10)
    widget = url_for("widgets.similar", track_id=track_id, _external=True)
    return render_template("tracks/show.html", track=item, results=neighbours, widget_url=widget,
                           extra_fields=catalog.extra_fields())


@bp.get("/tracks/<track_id>/similar")
@limit_similar
def similar(track_id):
    """"More like this": the neighbours of a catalog track (never itself), honouring the filter fields."""
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        abort(404)
    asked = parse(SimilarQuery, request.args)
    results = catalog.similar(track_id, filters=Filters(**asked.given()), **asked.options())
    heading = f"More like {item.get('title') or item['file']}"
    return render("tracks/similar.html", "search/_results.html", results=results, heading=heading, track=item,
                  map_url=url_for("map.index", track=track_id))
