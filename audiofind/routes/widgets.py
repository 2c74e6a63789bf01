"""The embeddable "similar tracks" widget: an HTML snippet other sites load with htmx (CORS: WIDGET_ORIGINS)."""

from flask import Blueprint, current_app, make_response, render_template, request

from audiofind.routes.context import get_catalog
from audiofind.routes.playback import public_result
from audiofind.routes.schemas import WidgetQuery, parse
from audiofind.routes.security import limit_similar

bp = Blueprint("widgets", __name__, url_prefix="/widgets")
# What htmx sends with a cross-origin request; a preflight must allow them.
HTMX_HEADERS = "HX-Request, HX-Current-URL, HX-Target, HX-Trigger, HX-Trigger-Name, HX-Boosted, HX-Prompt"


def allowed_origins():
    return [o.strip().rstrip("/") for o in (current_app.config.get("WIDGET_ORIGINS") or "").split(",") if o.strip()]


@bp.after_request
def cors(response):
    origin = (request.headers.get("Origin") or "").rstrip("/")
    allowed = allowed_origins()
    response.vary.add("Origin")
    if origin and ("*" in allowed or origin in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET"
            response.headers["Access-Control-Allow-Headers"] = HTMX_HEADERS
            response.headers["Access-Control-Max-Age"] = "3600"
    return response


@bp.route("/similar/<track_id>", methods=["GET", "OPTIONS"])
@limit_similar
def similar(track_id):
    if request.method == "OPTIONS":
        return make_response("", 204)
    limit = parse(WidgetQuery, request.args).limit
    catalog = get_catalog()
    item = catalog.get(track_id)
    if item is None:
        return render_template("widgets/similar.html", track=None, results=[]), 404
    results = [public_result(r, external=True) for r in catalog.similar(track_id, limit=limit)]
    return render_template("widgets/similar.html", track=item, results=results)
