"""The JSON API under /api/v1: everything the pages do. Errors are {"error": code, "message": text}.

Each route's request and answer are models of schemas.py, validated and documented by ``operation``. Views
answer jsonify(...): spectree then checks the JSON bytes in pydantic-core, without walking Python objects."""

from flask import Blueprint, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from audiofind.index.base import Filters
from audiofind.jobs.queue import QueueUnavailable, enqueue_ingest, enqueue_search, job_status
from audiofind.routes import schemas
from audiofind.routes.context import get_catalog, services
from audiofind.routes.errors import UserError, error
from audiofind.routes.openapi import openapi_document, operation
from audiofind.routes.playback import public_result
from audiofind.routes.security import limit_searches, limit_similar, limit_uploads
from audiofind.routes.uploads import claim_upload, new_upload

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(UserError)
def _user_error(exc):
    return error(exc.status, str(exc), exc.code)


@bp.errorhandler(QueueUnavailable)
def _queue_down(exc):
    return error(503, str(exc))


@bp.errorhandler(HTTPException)
def _http_error(exc):
    return error(exc.code, exc.description or exc.name)


@bp.errorhandler(RecursionError)
def _too_deep(exc):  # JSON nested thousands deep: not a request of ours
    return error(400, "send a JSON object (Content-Type: application/json) of sensible depth")


def _body():
    return request.context.json


def _query():
    return request.context.query


@bp.get("/openapi.json")
@operation((200, schemas.Document))
def openapi():
    """This document"""
    return jsonify(openapi_document(request.host_url.rstrip("/")))


@bp.post("/uploads")
@limit_uploads
@operation((201, schemas.UploadTarget), 400, 413, 422, 429, 503, json=schemas.NewUpload)
def create_upload():
    """Get a signed URL to upload one audio file to"""
    return jsonify(new_upload(_body())), 201


@bp.post("/searches")
@limit_searches
@operation((202, schemas.Accepted), 400, 413, 429, 503, json=schemas.NewSearch)
def create_search():
    """Start a search with an uploaded file, refined by marked tracks, or by catalog tracks only

    ``like``/``unlike``: catalog track ids, "more like these" / "less like these". Without ``key``, the tracks
    that sound like the ``like`` tracks together."""
    search = _body()
    check_tracks(get_catalog(), [*search.like, *search.unlike])
    filename = claim_upload(search.key) if search.key else ""
    return _accepted(enqueue_search(services(), search.key, search.job_options(), filename), "api.get_search")


@bp.get("/searches/<job_id>")
@operation((200, schemas.SearchStatus), 404, 503)
def get_search(job_id):
    """A search's status and, when finished, its results"""
    info = job_status(services(), job_id, kind="search")
    if info is None:
        raise UserError("no such search (it may have expired)", 404, "not_found")
    results = [public_result(r) for r in info.pop("result") or []]
    return jsonify({**_job_fields(info), "results": results})


def check_tracks(catalog, track_ids):
    """A marked track that is not in the catalog: 400 naming it."""
    missing = [track_id for track_id in dict.fromkeys(track_ids) if catalog.get(track_id) is None]
    if missing:
        raise UserError(f"no track {missing[0]} in the catalog (like/unlike name catalog track ids)")


def _job_fields(info):
    return {"id": info["id"], "status": info["status"], "stage": info["stage"], "error": info["error"]}


@bp.get("/tracks")
@operation((200, schemas.TrackList), 400, query=schemas.TracksQuery)
def list_tracks():
    """List catalog tracks, newest first

    Pages by ``cursor`` (each answer's ``next_cursor``: as fast on the thousandth page as on the first), or by
    ``offset``."""
    asked = _query()
    catalog = get_catalog()
    if asked.offset and asked.cursor:
        raise UserError("give cursor or offset, not both")
    following = None
    if asked.offset:
        found = catalog.list(asked.offset, asked.limit, asked.q)
    else:
        try:
            found, following = catalog.page(asked.limit, asked.q, asked.cursor)
        except ValueError as refused:
            raise UserError(str(refused)) from None
    return jsonify(tracks=[public_result(t) for t in found], offset=asked.offset, limit=asked.limit,
                   total=catalog.count(asked.q), next_cursor=following)


@bp.get("/tracks/<track_id>")
@operation((200, schemas.Track), 404)
def get_track(track_id):
    """One track"""
    item = get_catalog().get(track_id)
    if item is None:
        raise UserError(f"no track {track_id}", 404, "not_found")
    return jsonify(public_result(item))


@bp.get("/tracks/<track_id>/similar")
@limit_similar
@operation((200, schemas.SimilarTracks), 400, 404, 429, query=schemas.SimilarQuery)
def similar_tracks(track_id):
    """More like this: the track's neighbours, never itself, refined by ``like``/``unlike`` track ids"""
    asked = _query()
    catalog = get_catalog()
    if catalog.get(track_id) is None:
        raise UserError(f"no track {track_id}", 404, "not_found")
    check_tracks(catalog, [*asked.like, *asked.unlike])
    try:
        results = catalog.similar(track_id, filters=Filters(**asked.given()), **asked.options(), **asked.marks())
    except KeyError:
        raise UserError(f"no track {track_id}", 404, "not_found") from None
    return jsonify(track_id=track_id, results=[public_result(r) for r in results])


@bp.delete("/tracks/<track_id>")
@operation((204, None), 401, 403, 404, admin=True)
def delete_track(track_id):
    """Remove a track and its audio (admin)"""
    if not get_catalog().remove(track_id):
        raise UserError(f"no track {track_id}", 404, "not_found")
    return "", 204


@bp.post("/tracks")
@operation((202, schemas.Accepted), 400, 401, 403, 413, 503, json=schemas.NewIngest, admin=True)
def ingest_track():
    """Ingest an uploaded file into the catalog (admin)"""
    ingest = _body()
    filename = claim_upload(ingest.key)
    metadata = ingest.metadata.model_dump(exclude_none=True)
    return _accepted(enqueue_ingest(services(), ingest.key, ingest.filename or filename, metadata), "api.get_ingest")


def _accepted(job, status_endpoint):
    """202 with the job's id and where to poll it."""
    status_url = url_for(status_endpoint, job_id=job.id)
    return jsonify(id=job.id, status_url=status_url), 202, {"Location": status_url}


@bp.get("/ingests/<job_id>")
@operation((200, schemas.IngestStatus), 401, 403, 404, 503, admin=True)
def get_ingest(job_id):
    """An ingest job's status and outcome (admin)"""
    info = job_status(services(), job_id, kind="ingest")
    if info is None:
        raise UserError("no such ingest job (it may have expired)", 404, "not_found")
    return jsonify({**_job_fields(info), "file": info["file"], "result": info["result"]})
