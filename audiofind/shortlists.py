"""Shortlists: tracks collected for a scene, in order, with a note each; shared by an unguessable link.

A shortlist belongs to the browser session that made it (``owner``, no user accounts). Its ``shortlist_id``
and ``share_id`` are unguessable tokens: the first names it to its owner's pages, the second opens a read-only
copy. Stored in the catalog's own index backend (the local SQLite database, or a MongoDB collection):
``store_for(index)`` returns the store. A track removed from the catalog stays in every shortlist that held it,
marked missing, with the title it had (the ``after_remove`` hook below).

The records and the store's operations are in audiofind/index/shortlists.py (re-exported here).
"""

import csv
import io
import weakref
from typing import Callable

from audiofind.hookspecs import hookimpl
from audiofind.index.shortlists import (  # noqa: F401 (the records and the store, for this module's users)
    MAX_ITEMS,
    MAX_NAME,
    MAX_NOTE,
    Item,
    Shortlist,
    ShortlistNotFound,
    ShortlistStore,
    new_token,
)
from audiofind.index.shortlists_atlas import AtlasShortlists
from audiofind.index.shortlists_local import LocalShortlists

CSV_COLUMNS = ("rank", "title", "artist", "album", "file", "duration", "bpm", "tags", "note", "track_page_url")
BACKENDS = {"local": LocalShortlists, "atlas": AtlasShortlists}  # by index name


_stores = weakref.WeakKeyDictionary()


def store_for(index) -> ShortlistStore:
    """The shortlist store kept in ``index``'s own backend (one per index object)."""
    store = _stores.get(index)
    if store is None:
        if index.name not in BACKENDS:
            raise LookupError(f"the {index.name!r} index keeps no shortlists")
        store = _stores[index] = BACKENDS[index.name](index)
    return store


@hookimpl
def after_remove(track, catalog):
    try:
        store = store_for(catalog.index)
    except LookupError:  # an index plugin without shortlists
        return
    store.track_removed(track.track_id, track.title or track.file)


# -- exports


def tracks_of(shortlist: Shortlist, index) -> dict:
    """{track_id: Track} of the shortlist's tracks still in the catalog (what the exports take)."""
    return index.get_many([item.track_id for item in shortlist.items if not item.missing], envelope=False)


def _cell(value) -> str:
    """A spreadsheet shows text starting with = + - @ as a formula: such text is written with a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(shortlist: Shortlist, tracks: dict, track_url: Callable) -> str:
    """The shortlist as CSV (CSV_COLUMNS), in its order. ``tracks``: tracks_of(); ``track_url(track)``: the
    track page's absolute URL. A missing track keeps its rank, title and note, the rest empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for rank, item in enumerate(shortlist.items, 1):
        track = tracks.get(item.track_id)
        if track is None:
            writer.writerow([rank, _cell(item.title or item.track_id), "", "", "", "", "", "", _cell(item.note), ""])
            continue
        writer.writerow([
            rank, _cell(track.title or track.file), _cell(track.artist), _cell(track.album), _cell(track.file),
            round(track.duration, 1), "" if track.bpm is None else round(track.bpm, 1), _cell("; ".join(track.tags)),
            _cell(item.note), track_url(track),
        ])
    return out.getvalue()


def to_m3u(shortlist: Shortlist, tracks: dict, playback_url: Callable) -> str:
    """The shortlist as an extended M3U playlist of ``playback_url(track)`` (signed, expiring); missing tracks
    are left out. Serve it as .m3u8 encoded in UTF-8 (audio/x-mpegurl)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(shortlist.name)}"]
    for item in shortlist.items:
        track = tracks.get(item.track_id)
        if track is None:
            continue
        name = track.title or track.file
        label = f"{track.artist} - {name}" if track.artist else name
        lines += [f"#EXTINF:{int(round(track.duration))},{_one_line(label)}", _one_line(playback_url(track))]
    return "\r\n".join(lines) + "\r\n"


def _one_line(text) -> str:
    return " ".join(str(text).split())
