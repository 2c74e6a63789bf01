"""Who is admin: a bearer token or the login form's session with ADMIN_TOKEN set, else only this machine."""

import hashlib
import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import current_app, request, session

from audiofind.routes.context import services
from audiofind.routes.errors import UserError

ADMIN_SESSION = "audiofind:admin-session:"  # + id -> "1" while that login lasts
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SHORTLIST_OWNER = "shortlist_owner"  # the session field naming the browser's shortlists' owner


def admin_required(view):
    """The view answers admins only: 401 without credentials, 403 with wrong ones (the API's JSON errors)."""

    @wraps(view)
    def checked(*args, **kwargs):
        access = admin_access()
        if access == "missing":
            raise UserError("admin only: send Authorization: Bearer <ADMIN_TOKEN>", 401, "unauthorized")
        if access != "ok":
            raise UserError("admin only: this token is not valid here (or ADMIN_TOKEN is not set and this request "
                            "is not from this machine)", 403, "forbidden")
        return view(*args, **kwargs)

    return checked


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
        shortlists = session.get(SHORTLIST_OWNER)  # the browser's shortlists stay its own (routes/shortlists.py)
        session.clear()
        session["admin"], session["admin_login"] = _token_mark(token), login
        if shortlists:
            session[SHORTLIST_OWNER] = shortlists
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
