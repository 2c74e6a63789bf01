"""What protects every route: rate limits, response headers, the admin session cookie, request size."""

from urllib.parse import urlsplit

from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Behind a proxy, configure werkzeug's ProxyFix so that the remote address is the client's, not the proxy's.
limiter = Limiter(get_remote_address, headers_enabled=True, swallow_errors=True, in_memory_fallback_enabled=True)


def _limit(setting, scope):
    """One shared budget per client for every route decorated with it; an empty setting turns it off."""
    return limiter.shared_limit(
        lambda: current_app.config[setting], scope=scope, exempt_when=lambda: not current_app.config[setting]
    )


limit_uploads = _limit("RATE_LIMIT_UPLOADS", "uploads")
limit_searches = _limit("RATE_LIMIT_SEARCHES", "searches")
limit_similar = _limit("RATE_LIMIT_SIMILAR", "similar")
limit_login = _limit("RATE_LIMIT_LOGIN", "login")

# Pages may be framed only by themselves; scripts and styles only from here (htmx is served by the app); the
# browser sends and plays audio here or at the storage's own address (S3's presigned URLs).
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; media-src 'self' {storage}; connect-src 'self' {storage}; "
               "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; form-action 'self'; "
               "frame-ancestors 'self'")
# Stored audio is played, never run: a file that is not audio cannot become a page of this origin.
STORAGE_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app):
        """Secure whenever the request came over HTTPS (directly or, with ProxyFix, through the proxy)."""
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app):
    config = app.config
    config.setdefault("RATELIMIT_STORAGE_URI", config.get("REDIS_URL") or "memory://")
    config.setdefault("RATELIMIT_KEY_PREFIX", "audiofind")
    limiter.init_app(app)
    app.session_interface = _SessionInterface()
    if config.get("SESSION_COOKIE_SAMESITE") is None:
        config["SESSION_COOKIE_SAMESITE"] = "Lax"  # admin sessions are never sent on another site's requests
    if config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default: no limit
        config["MAX_CONTENT_LENGTH"] = int(config["MAX_REQUEST_BYTES"])  # uploads and the CSV set their own
    endpoint = urlsplit(config.get("S3_ENDPOINT_URL") or "")
    storage = f"{endpoint.scheme}://{endpoint.netloc}" if endpoint.netloc else "https:"
    page_policy = PAGE_POLICY.format(storage=storage)
    app.after_request(lambda response: _headers(response, page_policy))


def _headers(response, page_policy):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.blueprint == "storage":
        headers["Content-Security-Policy"] = STORAGE_POLICY
    else:
        headers.setdefault("Content-Security-Policy", page_policy)
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    return response
