"""Shortlists: the owner's pages, the read-only shared page, the admin list, and /api/v1/shortlists.

No user accounts: a shortlist belongs to a browser, by a random owner id kept in its (signed) session cookie,
made on the first change. API clients send the same cookie, or their own owner id as ``X-Shortlist-Owner``
(16 to 200 characters, kept secret: it is what grants changes). Another owner's shortlist answers 404, as an
unknown one does; the share link (``share_id``) opens a read-only copy without a session.
"""

from datetime import datetime, timezone

from flask import Blueprint, abort, current_app, g, jsonify, make_response, render_template, request, session, url_for

from audiofind.routes import schemas
from audiofind.routes.admin import guard
from audiofind.routes.auth import SHORTLIST_OWNER, cross_site
from audiofind.routes.context import get_catalog, services
from audiofind.routes.errors import UserError
from audiofind.routes.hx import htmx, redirect, render, toast
from audiofind.routes.openapi import operation
from audiofind.routes.playback import absolute, public_result
from audiofind.shortlists import ShortlistNotFound, new_token, store_for, to_csv, to_m3u, tracks_of

OWNER = SHORTLIST_OWNER  # the session cookie's field (kept by the admin login)
OWNER_HEADER = "X-Shortlist-Owner"
DEFAULT_NAME = "My shortlist"

bp = Blueprint("shortlists", __name__)
admin_bp = Blueprint("shortlists_admin", __name__, url_prefix="/admin/shortlists")
admin_bp.before_request(guard)
api_bp = Blueprint("shortlists_api", __name__, url_prefix="/api/v1")


@bp.before_request
def _same_site_writes():
    if request.method == "POST" and cross_site():
        abort(403, "cross-site request refused")


def store():
    return store_for(get_catalog().index)


def owner(create=False):
    """This browser's (or API client's) owner id; made and kept in the session with ``create``."""
    given = request.headers.get(OWNER_HEADER)
    if given is not None and request.path.startswith("/api/"):
        if not 16 <= len(given) <= 200:
            raise UserError(f"{OWNER_HEADER} must be 16 to 200 characters (a random id you keep)")
        return given
    value = session.get(OWNER)
    if not isinstance(value, str) and create:
        value = session[OWNER] = g.shortlist_owner = new_token()
        session.permanent = True
    return value if isinstance(value, str) else None


def own(shortlist_id):
    """The shortlist, if it is this owner's; else 404 (another owner's is not told apart from none)."""
    shortlist = store().get(shortlist_id)
    me = owner()
    if shortlist is None or me is None or shortlist.owner != me:
        raise UserError("no such shortlist (it may have been deleted)", 404, "not_found")
    return shortlist


def shared(share_id):
    shortlist = store().get_shared(share_id)
    if shortlist is None:
        raise UserError("no such shared shortlist (the link may be wrong, or the list deleted)", 404, "not_found")
    return shortlist


def _track(track_id):
    track = get_catalog().get(track_id)
    if track is None:
        raise UserError(f"no track {track_id} in the catalog", 404, "not_found")
    return track


def _changed(change, *args):
    """A store change; a refused value (a long name, a wrong order) is a 400, a deleted shortlist a 404."""
    try:
        return change(*args)
    except ShortlistNotFound:
        raise UserError("no such shortlist (it may have been deleted)", 404, "not_found") from None
    except ValueError as refused:
        raise UserError(str(refused)) from None


def rows(shortlist):
    """(item, track dict or None) in the shortlist's order, for the pages and the API."""
    catalog = get_catalog()
    return [(item, None if item.missing else catalog.get(item.track_id)) for item in shortlist.items]


# -- pages


@bp.get("/shortlists")
def index():
    me = owner()
    mine = store().list_by_owner(me) if me else []
    return render_template("shortlists/index.html", shortlists=mine)


@bp.post("/shortlists")
def create():
    name = request.form.get("name") or DEFAULT_NAME
    shortlist = _changed(store().create, owner(create=True), name)
    url = url_for("shortlists.show", shortlist_id=shortlist.shortlist_id)
    return redirect(url) if htmx else make_response("", 303, {"Location": url})


@bp.app_template_filter("when")
def when(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_global()
def my_shortlists():
    """This browser's shortlists (base.html's <datalist> of names for the "add to shortlist" fields). A request
    without a session cookie has none, and its page stays the same for everyone (no Vary: Cookie)."""
    me = g.get("shortlist_owner") or (owner() if current_app.config["SESSION_COOKIE_NAME"] in request.cookies else None)
    return store().list_by_owner(me) if me else []


@bp.post("/shortlists/add")
def add():
    """Add a result to the shortlist named in the field: an existing one of this browser's, else a new one;
    with the field empty, the one changed last (or a new "My shortlist")."""
    track = _track(request.form.get("track_id", ""))
    me = owner(create=True)
    wanted = " ".join((request.form.get("shortlist") or "").split())
    mine = store().list_by_owner(me)
    target = next((s for s in mine if s.name == wanted), None) if wanted else (mine[0] if mine else None)
    created = target is None
    if created:
        target = _changed(store().create, me, wanted or DEFAULT_NAME)
    shortlist = _changed(store().add, target.shortlist_id, track["track_id"])
    response = toast(f"Added {track.get('title') or track['file']} to “{shortlist.name}”.", "success")
    response.set_data(response.get_data(as_text=True) + render_template(
        "shortlists/_added.html", track=track, shortlist=shortlist, created=created))
    return response


@bp.get("/shortlists/<shortlist_id>")
def show(shortlist_id):
    shortlist = own(shortlist_id)
    return render_template("shortlists/show.html", shortlist=shortlist, rows=rows(shortlist), editable=True)


def _items(shortlist):
    return render("shortlists/show.html", "shortlists/_items.html", shortlist=shortlist, rows=rows(shortlist),
                  editable=True)


@bp.post("/shortlists/<shortlist_id>/move")
def move(shortlist_id):
    """One place up or down (``direction``), or to ``position`` (1-based, the drag-and-drop)."""
    shortlist = own(shortlist_id)
    order = shortlist.track_ids
    track_id = request.form.get("track_id", "")
    if track_id not in order:
        raise UserError("that track is not in this shortlist", 404, "not_found")
    at = order.index(track_id)
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    to = at + step if step else int(request.form.get("position") or at + 1) - 1
    order.insert(max(0, min(len(order) - 1, to)), order.pop(at))
    return _items(_changed(store().reorder, shortlist_id, order))


@bp.post("/shortlists/<shortlist_id>/remove")
def remove(shortlist_id):
    own(shortlist_id)
    return _items(_changed(store().remove, shortlist_id, request.form.get("track_id", "")))


@bp.post("/shortlists/<shortlist_id>/note")
def note(shortlist_id):
    own(shortlist_id)
    try:
        _changed(store().set_note, shortlist_id, request.form.get("track_id", ""), request.form.get("note", ""))
    except KeyError:
        raise UserError("that track is not in this shortlist", 404, "not_found") from None
    return toast("Note saved.", "success")


@bp.post("/shortlists/<shortlist_id>/rename")
def rename(shortlist_id):
    own(shortlist_id)
    shortlist = _changed(store().rename, shortlist_id, request.form.get("name", ""))
    response = toast(f"Renamed to “{shortlist.name}”.", "success")
    response.set_data(response.get_data(as_text=True) + render_template("shortlists/_title.html", shortlist=shortlist))
    return response


@bp.post("/shortlists/<shortlist_id>/delete")
def delete(shortlist_id):
    own(shortlist_id)
    store().delete(shortlist_id)
    url = url_for("shortlists.index")
    return redirect(url) if htmx else make_response("", 303, {"Location": url})


@bp.get("/shortlists/<shortlist_id>/export.<kind>")
def export(shortlist_id, kind):
    return _export(own(shortlist_id), kind)


@bp.get("/s/<share_id>")
def shared_page(share_id):
    shortlist = shared(share_id)
    return render_template("shortlists/show.html", shortlist=shortlist, rows=rows(shortlist), editable=False)


@bp.get("/s/<share_id>/export.<kind>")
def shared_export(share_id, kind):
    return _export(shared(share_id), kind)


def _export(shortlist, kind):
    """CSV or M3U8 as a download named after the shortlist; the M3U8's playback URLs are signed and expire."""
    if kind not in ("csv", "m3u8"):
        abort(404)
    tracks = tracks_of(shortlist, get_catalog().index)
    if kind == "csv":
        body = to_csv(shortlist, tracks, lambda t: url_for("ui.track", track_id=t.track_id, _external=True))
        mimetype = "text/csv"
    else:
        body = to_m3u(shortlist, tracks, lambda t: absolute(services().storage.playback_url(t.storage_key)))
        mimetype = "audio/x-mpegurl"
    filename = "".join(c if c.isalnum() or c in "-_ " else "_" for c in shortlist.name).strip() or "shortlist"
    response = make_response(body.encode("utf-8"))
    response.headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{kind}"'
    response.headers["Cache-Control"] = "no-store"  # the playback URLs expire
    return response


# -- admin


@admin_bp.get("/")
def admin_index():
    offset = max(0, request.args.get("offset", 0, type=int))
    return render_template("shortlists/admin.html", shortlists=store().list_all(offset, 100), total=store().count(),
                           offset=offset)


@admin_bp.post("/<shortlist_id>/delete")
def admin_delete(shortlist_id):
    if not store().delete(shortlist_id):
        raise UserError("no such shortlist", 404, "not_found")
    if htmx:  # the row goes (hx-swap="delete"), a toast says so
        return render_template("_toast.html", message="Shortlist deleted.", kind="success")
    return make_response("", 303, {"Location": url_for("shortlists_admin.admin_index")})


# -- API


def _item_json(item, track):
    return {"track_id": item.track_id, "note": item.note, "missing": item.missing,
            "title": item.title or (track or {}).get("title") or (track or {}).get("file") or "",
            "track": public_result(track) if track else None}


def _json(shortlist, with_id=True):
    out = {"share_id": shortlist.share_id, "name": shortlist.name,
           "share_url": url_for("shortlists.shared_page", share_id=shortlist.share_id, _external=True),
           "created_at": shortlist.created_at, "updated_at": shortlist.updated_at,
           "items": [_item_json(item, track) for item, track in rows(shortlist)]}
    return {**out, "shortlist_id": shortlist.shortlist_id} if with_id else out


def _body():
    return request.context.json


@api_bp.post("/shortlists")
@operation((201, schemas.Shortlist), 400, json=schemas.NewShortlist)
def api_create():
    """Create a shortlist (owned by this session's cookie, or X-Shortlist-Owner)"""
    asked = _body()
    for track_id in asked.track_ids:
        if get_catalog().get(track_id) is None:
            raise UserError(f"no track {track_id} in the catalog")
    shortlist = _changed(store().create, owner(create=True), asked.name, asked.track_ids)
    return jsonify(_json(shortlist)), 201


@api_bp.get("/shortlists")
@operation((200, schemas.ShortlistList), 400)
def api_list():
    """This owner's shortlists, last changed first"""
    me = owner()
    mine = store().list_by_owner(me) if me else []
    return jsonify(shortlists=[{
        "shortlist_id": s.shortlist_id, "share_id": s.share_id, "name": s.name, "tracks": len(s.items),
        "updated_at": s.updated_at, "url": url_for("shortlists_api.api_get", shortlist_id=s.shortlist_id),
    } for s in mine])


@api_bp.get("/shortlists/<shortlist_id>")
@operation((200, schemas.Shortlist), 404)
def api_get(shortlist_id):
    """One of this owner's shortlists, with its tracks"""
    return jsonify(_json(own(shortlist_id)))


@api_bp.patch("/shortlists/<shortlist_id>")
@operation((200, schemas.Shortlist), 400, 404, json=schemas.ShortlistRename)
def api_rename(shortlist_id):
    """Rename a shortlist"""
    own(shortlist_id)
    return jsonify(_json(_changed(store().rename, shortlist_id, _body().name)))


@api_bp.delete("/shortlists/<shortlist_id>")
@operation((204, None), 404)
def api_delete(shortlist_id):
    """Delete a shortlist"""
    own(shortlist_id)
    store().delete(shortlist_id)
    return "", 204


@api_bp.post("/shortlists/<shortlist_id>/items")
@operation((200, schemas.Shortlist), 400, 404, json=schemas.NewItem)
def api_add(shortlist_id):
    """Add a catalog track at the end (a track already there stays where it is)"""
    own(shortlist_id)
    asked = _body()
    _track(asked.track_id)
    return jsonify(_json(_changed(store().add, shortlist_id, asked.track_id, asked.note)))


@api_bp.delete("/shortlists/<shortlist_id>/items/<track_id>")
@operation((200, schemas.Shortlist), 404)
def api_remove(shortlist_id, track_id):
    """Remove a track from the shortlist"""
    if track_id not in own(shortlist_id).track_ids:
        raise UserError("that track is not in this shortlist", 404, "not_found")
    return jsonify(_json(_changed(store().remove, shortlist_id, track_id)))


@api_bp.patch("/shortlists/<shortlist_id>/items/<track_id>")
@operation((200, schemas.Shortlist), 400, 404, json=schemas.ItemNote)
def api_note(shortlist_id, track_id):
    """Set the note on a track of the shortlist"""
    own(shortlist_id)
    try:
        return jsonify(_json(_changed(store().set_note, shortlist_id, track_id, _body().note)))
    except KeyError:
        raise UserError("that track is not in this shortlist", 404, "not_found") from None


@api_bp.put("/shortlists/<shortlist_id>/order")
@operation((200, schemas.Shortlist), 400, 404, json=schemas.ShortlistOrder)
def api_reorder(shortlist_id):
    """Put the tracks in a new order (naming every track once)"""
    own(shortlist_id)
    return jsonify(_json(_changed(store().reorder, shortlist_id, _body().track_ids)))


@api_bp.get("/shortlists/<shortlist_id>/export.csv")
@operation((200, None), 404)
def api_export_csv(shortlist_id):
    """The shortlist as CSV: rank, title, artist, album, file, duration, bpm, tags, note, track_page_url"""
    return _export(own(shortlist_id), "csv")


@api_bp.get("/shortlists/<shortlist_id>/export.m3u8")
@operation((200, None), 404)
def api_export_m3u8(shortlist_id):
    """The shortlist as an M3U8 playlist of signed, expiring playback URLs"""
    return _export(own(shortlist_id), "m3u8")


@api_bp.get("/shared/<share_id>")
@operation((200, schemas.SharedShortlist), 404)
def api_shared(share_id):
    """A shortlist by its share id (read-only, no session needed)"""
    return jsonify(_json(shared(share_id), with_id=False))
