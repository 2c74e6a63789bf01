"""The public pages: search, the job status partial, results, "more like this" and the track page."""

import threading
import time
from collections import OrderedDict
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, render_template, request, url_for
from markupsafe import Markup

from audiofind.index.base import Filters
from audiofind.jobs.queue import enqueue_search, job_status, search_options
from audiofind.jobs.search import load_query
from audiofind.routes.context import get_catalog, services
from audiofind.routes.errors import UserError
from audiofind.routes.hx import htmx, render
from audiofind.routes.schemas import Marks, NewSearch, SimilarQuery, parse
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
        refine = _refine(url_for("ui.refine_search", job_id=job_id), Marks())
        results_html = Markup(render_template("search/_results.html", results=info["result"], heading=heading,
                                              map_url=url_for("map.index", search=job_id), refine=refine))
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


@bp.get("/searches/<job_id>/refine")
@limit_similar
def refine_search(job_id):
    """The search's results re-ranked by the "more / less like this one" marks (the query string's like, unlike),
    from the reference's vectors the search job kept (jobs/search.py)."""
    started = search_options(services(), job_id)
    query = load_query(services().redis, job_id) if started else None
    if query is None:
        raise UserError("This search has expired; drop your file again to refine it.", 404, "not_found")
    options, filename = started
    marks = _marks(request.args)
    search = {name: options[name] for name in ("limit", "mode", "per_album", "per_artist", "collapse_versions")
              if name in options}
    vector, window_vectors, windows, signature = query
    results = get_catalog().search_embedding(vector, window_vectors, windows, signature=signature,
                                             filters=Filters(**(options.get("filters") or {})), **search, **marks.marks())
    heading = f"Tracks that sound like {filename or 'your file'}"
    html = render_template("search/_results.html", results=results, heading=heading, refine=_refine(request.path, marks))
    return render("search/index.html", "search/_results.html", results_html=Markup(html), results=results,
                  heading=heading, refine=_refine(request.path, marks), **_page_context())


def _marks(args) -> Marks:
    marks = parse(Marks, {name: ",".join(args.getlist(name)) for name in ("like", "unlike")})
    check = [*marks.like, *marks.unlike]
    found = get_catalog().index.get_many(check, envelope=False) if check else {}
    unknown = [track_id for track_id in check if track_id not in found]
    if unknown:
        raise UserError(f"no track {unknown[0]} in the catalog", 404, "not_found")
    return marks


def _refine(url, marks: Marks, keep=None) -> dict:
    """What the results list needs to offer "more / less like this one" and show the marks as chips: the URL
    that re-ranks, the marks, their titles, and other query fields to keep (``keep``)."""
    marked = [*marks.like, *marks.unlike]
    tracks = get_catalog().index.get_many(marked, envelope=False) if marked else {}
    titles = {track_id: track.title or track.file for track_id, track in tracks.items()}
    return {"url": url, "like": marks.like, "unlike": marks.unlike, "titles": titles, "keep": keep or {}}


@bp.app_template_global()
def refine_url(refine, like=None, unlike=None, undo=None):
    """The re-ranking URL with one more mark (``like``/``unlike``), or one less (``undo``)."""
    liked = [t for t in refine["like"] if t not in (unlike, undo)] + ([like] if like and like not in refine["like"] else [])
    unliked = [t for t in refine["unlike"] if t not in (like, undo)] + (
        [unlike] if unlike and unlike not in refine["unlike"] else [])
    query = {**refine["keep"], **({"like": ",".join(liked)} if liked else {}),
             **({"unlike": ",".join(unliked)} if unliked else {})}
    return refine["url"] + ("?" + urlencode(query, doseq=True) if query else "")


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
                           extra_fields=catalog.extra_fields(),
                           refine=_refine(url_for("ui.similar", track_id=track_id), Marks()))


@bp.get("/sounds-like")
@limit_similar
def sounds_like():
    """"Sounds like these": the tracks that sound like several catalog tracks at once (``ids``, from selected
    results or a shortlist), refined by marks like any list."""
    ids = list(dict.fromkeys(i for value in request.args.getlist("ids") for i in value.split(",") if i))
    if not ids:
        raise UserError("Select one or more tracks first.")
    picked = parse(Marks, {"like": ",".join(ids)}).like
    marks = _marks(request.args)
    catalog = get_catalog()
    found = catalog.index.get_many(picked, envelope=False)
    if len(found) < len(picked):
        raise UserError("one of these tracks is no longer in the catalog", 404, "not_found")
    results = catalog.sounds_like([*picked, *marks.like], unlike=marks.unlike, limit=10)
    names = [found[i].title or found[i].file for i in picked]
    heading = "Sounds like " + (", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
    refine = _refine(url_for("ui.sounds_like"), marks, keep={"ids": ",".join(picked)})
    return render("tracks/sounds_like.html", "search/_results.html", results=results, heading=heading, refine=refine)


@bp.get("/tracks/<track_id>/similar")
@limit_similar
def similar(track_id):
    """"More like this": the neighbours of a catalog track (never itself), honouring the filter fields."""
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        abort(404)
    asked = parse(SimilarQuery, request.args)
    marks = _marks(request.args)
    results = catalog.similar(track_id, filters=Filters(**asked.given()), **asked.options(), **marks.marks())
    heading = f"More like {item.get('title') or item['file']}"
    return render("tracks/similar.html", "search/_results.html", results=results, heading=heading, track=item,
                  map_url=url_for("map.index", track=track_id), refine=_refine(request.path, marks))
