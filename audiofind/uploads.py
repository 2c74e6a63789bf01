"""The life of an upload: the bytes a browser sends for one search or one ingest.

An upload lives under its own prefix (UPLOAD_PREFIX), apart from the catalog's audio, so that a lifecycle rule
(S3) and the workers' sweeper can remove what is left there without ever touching the catalog. Its key is
offered when the upload URL is handed out, claimed once (atomically: two searches cannot take one upload), held
by the job that reads it, and released (deleted) by that job. What is never claimed, or whose job is gone, is
swept once nobody can claim it any more.
"""

import time

OFFERED = "audiofind:upload:"  # + key -> the user's file name, while the upload may be sent and claimed
HELD = "audiofind:uploads:held"  # hash: key -> id of the job that reads it
CLAIM_GRACE = 3600  # seconds an upload may be claimed after its URL expired (a slow connection)
LIVE_JOB_STATES = {"queued", "started", "scheduled", "deferred"}


class UploadRefused(ValueError):
    """The key was never offered, is already used, or its bytes are missing or too large; ``code`` says which."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def offer_seconds(config) -> int:
    return int(config["UPLOAD_URL_EXPIRES"]) + CLAIM_GRACE


def new_key(storage, filename) -> str:
    return storage.new_key(filename, prefix=storage.config["UPLOAD_PREFIX"])


def offer(conn, config, key, filename) -> None:
    conn.set(OFFERED + key, filename, ex=offer_seconds(config))


def is_open(conn, storage, key) -> bool:
    """Whether bytes may still be sent for ``key``: offered, not claimed, not sent yet (upload URLs are single-use)."""
    return bool(conn.exists(OFFERED + key)) and not storage.exists(key)


def claim(conn, storage, key, max_bytes) -> str:
    """The user's file name of an offered upload whose bytes arrived; the key cannot be claimed again."""
    filename = conn.get(OFFERED + key)
    if filename is None:
        raise UploadRefused("unknown or already used upload key; upload the file again", "bad_key")
    filename = filename.decode()
    if not storage.exists(key):
        raise UploadRefused(f"{filename} has not been uploaded yet (nothing stored under this key)", "not_uploaded")
    if conn.getdel(OFFERED + key) is None:  # another request claimed it since our first look
        raise UploadRefused("unknown or already used upload key; upload the file again", "bad_key")
    try:
        storage.verify_upload(key, max_bytes)  # deletes an oversize upload
    except Exception:
        storage.delete(key)
        raise UploadRefused(f"{filename} is too large", "too_large") from None
    return filename


def hold(conn, key, job_id) -> None:
    conn.hset(HELD, key, job_id)


def release(conn, storage, key) -> None:
    storage.delete(key)
    conn.hdel(HELD, key)


def sweep(conn, storage, config, now=None) -> list:
    """Delete the uploads nobody can claim any more and no live job holds; returns their keys."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    now = time.time() if now is None else now
    oldest = now - offer_seconds(config)
    swept = []
    for key, modified in storage.list_keys(config["UPLOAD_PREFIX"]):
        if modified > oldest or conn.exists(OFFERED + key):
            continue
        job_id = conn.hget(HELD, key)
        if job_id is not None:
            try:
                status = Job.fetch(job_id.decode(), connection=conn).get_status()
            except NoSuchJobError:
                status = None
            if getattr(status, "value", status) in LIVE_JOB_STATES:
                continue
        release(conn, storage, key)
        swept.append(key)
    return swept
