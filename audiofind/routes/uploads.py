"""Uploads: the browser sends the bytes to storage; a search or an ingest then names the key (audiofind/uploads.py)."""

from flask import current_app

from audiofind import upload_policy, uploads
from audiofind.routes.context import services
from audiofind.routes.errors import UserError
from audiofind.routes.playback import absolute
from audiofind.storage.base import StorageError


def new_upload(upload):
    """{upload_url, method, headers, key} for one file (a schemas.NewUpload), after checking its type and size."""
    filename = upload.filename.strip()
    try:
        upload_policy.check_size(filename, upload.size, current_app.config)
    except upload_policy.TooLarge as error:
        raise UserError(str(error), 413, "too_large") from None
    content_type = upload_policy.base_type(upload.content_type)
    if not upload_policy.is_audio(filename, content_type):
        raise UserError(f"{filename} is not an audio file ({content_type or 'unknown type'})", 422, "not_audio")
    if not content_type.startswith("audio/"):
        content_type = "application/octet-stream"
    storage = services().storage
    key = uploads.new_key(storage, filename)
    try:
        target = storage.upload_target(key, content_type, upload.size)
    except StorageError as error:
        raise UserError(f"{filename}: {error}", 400) from error
    # Only keys we handed out may be searched or ingested, each once (a job deletes its upload afterwards).
    uploads.offer(services().redis, current_app.config, key, filename)
    return {**target, "upload_url": absolute(target["upload_url"]), "key": key}


def claim_upload(key):
    """The file name of an upload we handed out and whose bytes arrived; each key is used once."""
    if not key or not isinstance(key, str):
        raise UserError("key is required: ask POST /api/v1/uploads for one and send the file there first")
    try:
        return uploads.claim(services().redis, services().storage, key,
                             upload_policy.max_bytes(current_app.config))
    except uploads.UploadRefused as refused:
        raise UserError(str(refused), 413 if refused.code == "too_large" else 400, refused.code) from None
