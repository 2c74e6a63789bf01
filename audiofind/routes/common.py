"""What the page, API, admin and widget routes share: input parsing, uploads, playback URLs, the admin check."""

import hashlib
import hmac
import secrets
from pathlib import PurePosixPath
from urllib.parse import urljoin, urlsplit

from flask import current_app, request, session

from audiofind import uploads
from audiofind.routes.context import services
from audiofind.audio import megabytes
from audiofind.catalog import DEFAULT_MODE, SEARCH_MODES as MODES
from audiofind.index import filters
from audiofind.storage.base import AUDIO_TYPES, StorageError, base_type

FILTER_FIELDS = filters.PARAMS  # the filter inputs, from the filter table
MAX_LIMIT = 100
MAX_FILENAME = 255
MAX_OFFSET = 10**9
MAX_TEXT = 500  # characters of a title, artist, album or tag
METADATA_FIELDS = ("title", "artist", "album", "tags")


class UserError(Exception):
    """Bad input from the user: the message is shown as is, with ``status``."""

    def __init__(self, message, status=400, code="bad_request"):
        super().__init__(message)
        self.status, self.code = status, code


def is_htmx():
    return request.headers.get("HX-Request") == "true"


def absolute(url):
    return urljoin(request.host_url, url)


# -- numbers and options from forms, query strings and JSON bodies


def number(source, name, kind=float, low=None, high=None):
    value = source.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number")
    try:
        value = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}") from None
    if value != value or (low is not None and value < low) or (high is not None and value > high):
        limits = f" between {low} and {high}" if high is not None else f" at least {low}"
        raise UserError(f"{name} must be{limits}")
    return value


def flag(source, name, default):
    # a form sends a hidden "0" before the checkbox's "1": the last value wins
    values = source.getlist(name) if hasattr(source, "getlist") else [source.get(name)]
    value = values[-1] if values else None
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "on", "yes")


def parse_filters(source):
    """A dict of index Filters fields (only those given); ``tags`` may be a list or a comma list."""
    try:
        return filters.parse_filters(source)
    except ValueError as error:
        raise UserError(str(error)) from None


def parse_search_options(source, nested_filters=False):
    """Search options from a form/query (flat filter fields) or a JSON body (``filters`` object)."""
    options = {
        "limit": number(source, "limit", int, 1, MAX_LIMIT) or 10,
        "mode": source.get("mode") or DEFAULT_MODE,
        "per_album": number(source, "per_album", int, 1, MAX_LIMIT),
        "per_artist": number(source, "per_artist", int, 1, MAX_LIMIT),
        "collapse_versions": flag(source, "collapse_versions", True),
    }
    if options["mode"] not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}")
    if nested_filters:
        unknown = set(source.get("filters") or {}) - set(FILTER_FIELDS)
        if unknown:
            raise UserError(f"unknown filter {sorted(unknown)[0]!r}; known: {', '.join(FILTER_FIELDS)}")
        options["filters"] = parse_filters(source.get("filters") or {})
    else:
        options["filters"] = parse_filters({name: source.get(name) for name in FILTER_FIELDS})
    return options


def parse_metadata(value):
    """{title, artist, album, tags} given with an ingest: text only (tags: a list of text or a comma list)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError("metadata must be an object (title, artist, album, tags)")
    unknown = set(value) - set(METADATA_FIELDS)
    if unknown:
        raise UserError(f"unknown metadata field {sorted(unknown)[0]!r}; known: {', '.join(METADATA_FIELDS)}")
    metadata = {}
    for name, given in value.items():
        items = given if name == "tags" and isinstance(given, list) else [given]
        if not all(isinstance(item, str) and len(item) <= MAX_TEXT for item in items):
            raise UserError(f"metadata.{name} must be text of at most {MAX_TEXT} characters"
                            + (" (or a list of such)" if name == "tags" else ""))
        metadata[name] = given
    return metadata


def parse_range(source):
    start = number(source, "start", float, low=0)
    end = number(source, "end", float, low=0)
    if start is not None and end is not None and end <= start:
        raise UserError("end must be after start")
    return start, end


# -- uploads: the browser sends the bytes to storage; a search or an ingest then names the key


def new_upload(filename, content_type, size):
    """{upload_url, method, headers, key} for one file, after checking its name, type and size."""
    if not isinstance(filename, str) or not filename.strip():
        raise UserError("filename is required (text)")
    if content_type is not None and not isinstance(content_type, str):
        raise UserError("content_type must be text")
    filename = filename.strip()
    if len(filename) > MAX_FILENAME:
        raise UserError(f"filename is longer than {MAX_FILENAME} characters")
    size = number({"size": size}, "size", int, low=1)
    if size is None:
        raise UserError("size is required (bytes)")
    limit = int(current_app.config["MAX_UPLOAD_BYTES"])
    if size > limit:
        raise UserError(f"{filename} is too large: {megabytes(size)}; the limit is {megabytes(limit)}", 413, "too_large")
    content_type = base_type(content_type)
    suffix = PurePosixPath(filename).suffix.lower()
    if not (content_type.startswith("audio/") or suffix in AUDIO_TYPES):
        raise UserError(f"{filename} is not an audio file ({content_type or 'unknown type'})", 422, "not_audio")
    if not content_type.startswith("audio/"):
        content_type = "application/octet-stream"
    storage = services().storage
    key = uploads.new_key(storage, filename)
    try:
        target = storage.upload_target(key, content_type, size)
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
                             int(current_app.config["MAX_UPLOAD_BYTES"]))
    except uploads.UploadRefused as refused:
        raise UserError(str(refused), 413 if refused.code == "too_large" else 400, refused.code) from None


# -- results


def playback_url(result):
    key = result.get("storage_key")
    if not key:
        return None
    try:
        return services().storage.playback_url(key)
    except Exception:  # a missing object or an unreachable backend: show the result without a player
        current_app.logger.exception("no playback URL for %s", key)
        return None


def public_result(result, external=False):
    """A result/track for the API and the widget: no storage key or envelope, with links."""
    from flask import url_for

    out = {k: v for k, v in result.items() if k not in ("storage_key", "envelope", "content_hash")}
    url = playback_url(result)
    out["playback_url"] = absolute(url) if (url and external) else url
    out["url"] = url_for("ui.track", track_id=result["track_id"], _external=external)
    return out


# -- admin


ADMIN_SESSION = "audiofind:admin-session:"  # + id -> "1" while that login lasts
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _token_mark(token):
    return hmac.new(current_app.config["SECRET_KEY"].encode(), token.encode(), hashlib.sha256).hexdigest()[:32]


def is_local_request():
    """Directly from this machine: loopback, not relayed by a proxy on this machine, and addressed to a loopback
    name. A page elsewhere can point its own host name at 127.0.0.1 (DNS rebinding): its requests then come from
    loopback, but carry that name as Host (and Origin)."""
    relayed = any(request.headers.get(h) for h in ("X-Forwarded-For", "X-Real-IP", "Forwarded"))
    origin = request.headers.get("Origin")
    return (
        request.remote_addr in ("127.0.0.1", "::1")
        and not relayed
        and _hostname(request.host) in LOOPBACK_NAMES
        and (not origin or _hostname(urlsplit(origin).netloc) in LOOPBACK_NAMES)
    )


def _hostname(host):
    """'[::1]:8000' -> '::1', 'Localhost.:80' -> 'localhost'."""
    host = (host or "").strip().lower()
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".")


def admin_access():
    """"ok", "missing" (no credentials: 401 / the login form) or "denied" (wrong or not allowed: 403).

    With ADMIN_TOKEN set: a bearer token or the session flag the login form sets. Without it, only
    requests straight from this machine (``audiofind serve`` on loopback) are admin."""
    token = current_app.config.get("ADMIN_TOKEN") or ""
    if not token:
        return "ok" if is_local_request() else "denied"
    auth = request.headers.get("Authorization", "")
    if auth:
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        return "ok" if hmac.compare_digest(given.encode(), token.encode()) else "denied"
    mark, login = session.get("admin"), session.get("admin_login")
    if isinstance(mark, str) and isinstance(login, str) and hmac.compare_digest(mark, _token_mark(token)):
        if services().redis.exists(ADMIN_SESSION + login):
            return "ok"
    return "missing"


def admin_login(given):
    """Start an admin session: the signed cookie names a login that lives in Redis for ADMIN_SESSION_SECONDS,
    so that logging out (or the time running out) ends it for every copy of the cookie."""
    token = current_app.config.get("ADMIN_TOKEN") or ""
    if token and isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode()):
        login = secrets.token_urlsafe(24)
        services().redis.set(ADMIN_SESSION + login, "1", ex=int(current_app.config["ADMIN_SESSION_SECONDS"]))
        session.clear()
        session["admin"], session["admin_login"] = _token_mark(token), login
        return True
    return False


def admin_logout():
    login = session.get("admin_login")
    if isinstance(login, str):
        services().redis.delete(ADMIN_SESSION + login)
    session.clear()


def cross_site():
    """A state-changing request sent by another site's page (CSRF): refused on admin routes."""
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    return bool(origin) and origin.rstrip("/") != request.host_url.rstrip("/")


def toast(message, kind="error", status=200):
    """A pop-up only: htmx leaves the request's target alone (HX-Reswap: none) and adds the toast."""
    from flask import make_response, render_template

    response = make_response(render_template("_toast.html", message=message, kind=kind), status)
    response.headers["HX-Reswap"] = "none"
    return response
