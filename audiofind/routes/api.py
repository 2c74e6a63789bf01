"""The JSON API under /api/v1: everything the pages do. Errors are {"error": code, "message": text}."""

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from audiofind.routes.context import get_catalog, services
from audiofind.index.base import Filters
from audiofind.jobs.queue import QueueUnavailable, enqueue_ingest, enqueue_search, job_status
from audiofind.routes.common import (
    MAX_FILENAME,
    MAX_OFFSET,
    UserError,
    admin_access,
    claim_upload,
    parse_metadata,
    new_upload,
    number,
    parse_range,
    parse_search_options,
    public_result,
)
from audiofind.routes.openapi import openapi_document
from audiofind.routes.security import limit_searches, limit_similar, limit_uploads

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status, message, code=None):
    response = jsonify(error=code or _CODES.get(status, "error"), message=message)
    response.status_code = status
    return response


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "too_large", 415: "unsupported_media_type", 422: "not_audio", 429: "rate_limited", 500: "server_error",
          503: "unavailable"}


@bp.errorhandler(UserError)
def _user_error(exc):
    return error(exc.status, str(exc), exc.code)


@bp.errorhandler(QueueUnavailable)
def _queue_down(exc):
    return error(503, str(exc))


@bp.errorhandler(HTTPException)
def _http_error(exc):
    return error(exc.code, exc.description or exc.name)


def require_admin():
    access = admin_access()
    if access == "missing":
        raise UserError("admin only: send Authorization: Bearer <ADMIN_TOKEN>", 401, "unauthorized")
    if access != "ok":
        raise UserError("admin only: this token is not valid here (or ADMIN_TOKEN is not set and this request "
                        "is not from this machine)", 403, "forbidden")


def body():
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: not a request of ours
        data = None
    if not isinstance(data, dict):
        raise UserError("send a JSON object (Content-Type: application/json)")
    return data


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(request.host_url.rstrip("/")))


@bp.post("/uploads")
@limit_uploads
def create_upload():
    data = body()
    return jsonify(new_upload(data.get("filename"), data.get("content_type"), data.get("size"))), 201


@bp.post("/searches")
@limit_searches
def create_search():
    data = body()
    options = parse_search_options(data, nested_filters=True)
    start, end = parse_range(data)
    key = data.get("key")
    filename = claim_upload(key)
    options.update(start=start, end=end)
    return _accepted(enqueue_search(services(), key, options, filename), "api.get_search")


@bp.get("/searches/<job_id>")
def get_search(job_id):
    info = job_status(services(), job_id, kind="search")
    if info is None:
        raise UserError("no such search (it may have expired)", 404, "not_found")
    results = [public_result(r) for r in info.pop("result") or []]
    return jsonify({**_job_fields(info), "results": results})


def _job_fields(info):
    return {"id": info["id"], "status": info["status"], "stage": info["stage"], "error": info["error"]}


@bp.get("/tracks")
def list_tracks():
    """Pages by ``cursor`` (each answer's ``next_cursor``: as fast on the thousandth page as on the first), or by
    ``offset``."""
    offset = number(request.args, "offset", int, 0, MAX_OFFSET) or 0
    limit = number(request.args, "limit", int, 1, 500) or 50
    query, cursor = request.args.get("q", ""), request.args.get("cursor", "")
    catalog = get_catalog()
    if offset and cursor:
        raise UserError("give cursor or offset, not both")
    following = None
    if offset:
        found = catalog.list(offset, limit, query)
    else:
        try:
            found, following = catalog.page(limit, query, cursor)
        except ValueError as error:
            raise UserError(str(error)) from None
    tracks = [public_result(t) for t in found]
    return jsonify(tracks=tracks, offset=offset, limit=limit, total=catalog.count(query), next_cursor=following)


@bp.get("/tracks/<track_id>")
def get_track(track_id):
    item = get_catalog().get(track_id)
    if item is None:
        raise UserError(f"no track {track_id}", 404, "not_found")
    return jsonify(public_result(item))


@bp.get("/tracks/<track_id>/similar")
@limit_similar
def similar_tracks(track_id):
    options = parse_search_options(request.args)
    options["filters"] = Filters(**options["filters"])
    try:
        results = get_catalog().similar(track_id, **options)
    except KeyError:
        raise UserError(f"no track {track_id}", 404, "not_found") from None
    return jsonify(track_id=track_id, results=[public_result(r) for r in results])


@bp.delete("/tracks/<track_id>")
def delete_track(track_id):
    require_admin()
    if not get_catalog().remove(track_id):
        raise UserError(f"no track {track_id}", 404, "not_found")
    return "", 204


@bp.post("/tracks")
def ingest_track():
    require_admin()
    data = body()
    metadata = parse_metadata(data.get("metadata"))
    given = data.get("filename")
    if given is not None and (not isinstance(given, str) or len(given) > MAX_FILENAME):
        raise UserError(f"filename must be text of at most {MAX_FILENAME} characters")
    filename = claim_upload(data.get("key"))
    return _accepted(enqueue_ingest(services(), data["key"], given or filename, metadata), "api.get_ingest")


def _accepted(job, status_endpoint):
    """202 with the job's id and where to poll it."""
    status_url = url_for(status_endpoint, job_id=job.id)
    response = jsonify(id=job.id, status_url=status_url)
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


@bp.get("/ingests/<job_id>")
def get_ingest(job_id):
    require_admin()
    info = job_status(services(), job_id, kind="ingest")
    if info is None:
        raise UserError("no such ingest job (it may have expired)", 404, "not_found")
    return jsonify({**_job_fields(info), "file": info["file"], "result": info["result"]})
