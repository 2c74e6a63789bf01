"""Playback URLs of results and tracks, and what the API and the widget show of a track."""

from urllib.parse import urljoin

from flask import current_app, request, url_for

from audiofind.routes.context import services


def absolute(url):
    return urljoin(request.host_url, url)


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
    out = {k: v for k, v in result.items() if k not in ("storage_key", "envelope", "content_hash")}
    url = playback_url(result)
    out["playback_url"] = absolute(url) if (url and external) else url
    out["url"] = url_for("ui.track", track_id=result["track_id"], _external=external)
    return out
