"""Signed upload and playback URLs of the local storage backend (S3 serves its own presigned URLs)."""

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from audiofind import uploads
from audiofind.routes.context import services
from audiofind.routes.errors import error as _error
from audiofind.storage.base import StorageError, base_type, content_type_for
from audiofind.storage.local import PLAYBACK_PATH, PLAYBACK_SALT, UPLOAD_PATH, UPLOAD_SALT, LocalStorage

bp = Blueprint("storage", __name__)


def _local_storage() -> LocalStorage:
    storage = services().storage
    if not isinstance(storage, LocalStorage):
        abort(404)
    return storage


@bp.put(UPLOAD_PATH + "<token>")
def upload(token):
    storage = _local_storage()
    try:
        claims = storage.read_token(token, UPLOAD_SALT, int(current_app.config["UPLOAD_URL_EXPIRES"]))
    except StorageError as exc:
        return _error(403, str(exc))
    key, expected_type, max_size = claims["key"], claims["type"], int(claims["size"])
    if request.content_length is not None and request.content_length > max_size:
        return _error(413, f"upload of {request.content_length} bytes is larger than the {max_size} bytes announced")
    # The announced size instead of MAX_REQUEST_BYTES, plus one byte: write_stream refuses a larger body itself
    # (werkzeug's own limit refuses to read at it, even an upload of exactly that size behind gunicorn).
    request.max_content_length = max_size + 1
    refusal = None
    if not uploads.is_open(services().redis, storage, key):
        refusal = _error(403, "this upload link was already used; ask for a new one")
    sent_type = base_type(request.content_type) or "application/octet-stream"
    if sent_type != expected_type:
        refusal = _error(415, f"this upload link is for {expected_type}, not {sent_type}")
    if refusal is not None:
        # Read the (signed, bounded) body first: a server that answers mid-upload and hangs up leaves the
        # client with a broken connection instead of the reason.
        while request.stream.read(1 << 20):
            pass
        return refusal
    try:
        written = storage.write_stream(key, request.stream, max_size)
    except StorageError as exc:
        return _error(413, str(exc))
    return jsonify(key=key, size=written)


@bp.route(PLAYBACK_PATH + "<token>", methods=["GET", "HEAD"])
def playback(token):
    storage = _local_storage()
    try:
        claims = storage.read_token(token, PLAYBACK_SALT, int(current_app.config["PLAYBACK_URL_EXPIRES"]))
    except StorageError as exc:
        return _error(403, str(exc))
    key = claims["key"]
    try:
        path = storage.path(key)
    except StorageError as exc:
        return _error(404, str(exc))
    if not path.is_file():
        return _error(404, "this audio file is no longer stored")
    # conditional=True answers Range requests with 206, which <audio> needs to seek. Only audio types (a stored
    # file that is not audio is application/octet-stream, and the sandboxing CSP applies to every answer here).
    response = send_file(path, mimetype=content_type_for(key), conditional=True, max_age=0)
    response.headers["Cache-Control"] = "private, max-age=0"
    return response
