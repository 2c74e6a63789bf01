"""The shortlist store's contract: the records, the operations (the same for every backend), and the few
primitives a backend implements (audiofind/index/shortlists_local.py, shortlists_atlas.py). The service level,
with the store of a catalog's index and the exports, is audiofind/shortlists.py.

Every change is read, changed, and written back only if nobody wrote in between (a version number), else tried
again: two tabs of one browser editing one shortlist never lose each other's changes.
"""

import copy
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

MAX_NAME = 200
MAX_NOTE = 2000
MAX_ITEMS = 1000
_RETRIES = 20


class ShortlistNotFound(KeyError):
    """No shortlist with this id."""


@dataclass
class Item:
    track_id: str
    note: str = ""
    missing: bool = False  # the track was removed from the catalog
    title: str = ""  # the title (or file name) the track had when it was removed


@dataclass
class Shortlist:
    shortlist_id: str
    share_id: str
    owner: str
    name: str
    created_at: float
    updated_at: float
    items: list = field(default_factory=list)  # [Item], in the owner's order
    version: int = 0

    @property
    def track_ids(self) -> list:
        return [item.track_id for item in self.items]

    def item(self, track_id: str) -> Item:
        for item in self.items:
            if item.track_id == track_id:
                return item
        raise KeyError(track_id)


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


def _name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValueError("a shortlist needs a name")
    if len(name) > MAX_NAME:
        raise ValueError(f"a shortlist name is at most {MAX_NAME} characters")
    return name


def _note(note) -> str:
    note = str(note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"a note is at most {MAX_NOTE} characters")
    return note


class ShortlistStore:
    """The operations, the same for every backend; a backend implements the few primitives at the end."""

    def create(self, owner: str, name: str, track_ids=()) -> Shortlist:
        """A new shortlist of ``owner`` (a session id), holding ``track_ids`` in that order."""
        now = time.time()
        shortlist = Shortlist(new_token(), new_token(), str(owner), _name(name), now, now)
        shortlist.items = [Item(track_id) for track_id in dict.fromkeys(track_ids)][:MAX_ITEMS]
        self._insert(shortlist)
        return shortlist

    def get(self, shortlist_id: str) -> Optional[Shortlist]:
        return self._load(shortlist_id)

    def get_shared(self, share_id: str) -> Optional[Shortlist]:
        """The shortlist its share link names (read-only pages)."""
        return self._load_shared(share_id)

    def list_by_owner(self, owner: str) -> list:
        """The owner's shortlists, last changed first."""
        return self._find_by_owner(str(owner))

    def list_all(self, offset: int = 0, limit: int = 100) -> list:
        """Every shortlist, last changed first (admin)."""
        return self._find_all(int(offset), int(limit))

    def count(self) -> int:
        raise NotImplementedError

    def delete(self, shortlist_id: str) -> bool:
        return self._delete(shortlist_id)

    def rename(self, shortlist_id: str, name: str) -> Shortlist:
        name = _name(name)
        return self._change(shortlist_id, lambda s: setattr(s, "name", name))

    def add(self, shortlist_id: str, track_id: str, note: str = "") -> Shortlist:
        """``track_id`` at the end (a track already there stays where it is)."""
        note = _note(note)

        def change(shortlist):
            if track_id not in shortlist.track_ids:
                if len(shortlist.items) >= MAX_ITEMS:
                    raise ValueError(f"a shortlist holds at most {MAX_ITEMS} tracks")
                shortlist.items.append(Item(track_id, note))

        return self._change(shortlist_id, change)

    def remove(self, shortlist_id: str, track_id: str) -> Shortlist:
        return self._change(shortlist_id, lambda s: setattr(s, "items", [i for i in s.items if i.track_id != track_id]))

    def reorder(self, shortlist_id: str, track_ids: list) -> Shortlist:
        """The items in the order of ``track_ids``, which must name each of them once (ValueError)."""

        def change(shortlist):
            if sorted(track_ids) != sorted(shortlist.track_ids):
                raise ValueError("a new order names every track of the shortlist once")
            by_id = {item.track_id: item for item in shortlist.items}
            shortlist.items = [by_id[track_id] for track_id in track_ids]

        return self._change(shortlist_id, change)

    def set_note(self, shortlist_id: str, track_id: str, note: str) -> Shortlist:
        """KeyError when the track is not in the shortlist."""
        note = _note(note)
        return self._change(shortlist_id, lambda s: setattr(s.item(track_id), "note", note))

    def track_removed(self, track_id: str, title: str) -> int:
        """``track_id`` left the catalog: mark it missing, with ``title``, wherever it is. Returns how many
        shortlists held it."""

        def change(shortlist):
            for item in shortlist.items:
                if item.track_id == track_id:
                    item.missing, item.title = True, title

        changed = 0
        for shortlist_id in self._ids_holding(track_id):
            try:
                self._change(shortlist_id, change)
                changed += 1
            except ShortlistNotFound:  # deleted meanwhile
                pass
        return changed

    def _change(self, shortlist_id: str, change: Callable) -> Shortlist:
        for _ in range(_RETRIES):
            stored = self._load(shortlist_id)
            if stored is None:
                raise ShortlistNotFound(shortlist_id)
            shortlist = copy.deepcopy(stored)
            change(shortlist)
            shortlist.updated_at = max(time.time(), stored.updated_at)
            shortlist.version = stored.version + 1
            if self._replace(shortlist, stored.version):
                return shortlist
        raise RuntimeError(f"shortlist {shortlist_id} is being changed too often at once; try again")

    # -- what a backend implements
    def _insert(self, shortlist: Shortlist) -> None:
        raise NotImplementedError

    def _load(self, shortlist_id: str) -> Optional[Shortlist]:
        raise NotImplementedError

    def _load_shared(self, share_id: str) -> Optional[Shortlist]:
        raise NotImplementedError

    def _replace(self, shortlist: Shortlist, version: int) -> bool:
        """Write ``shortlist`` if the stored one still has ``version``; False when it has not (or is gone)."""
        raise NotImplementedError

    def _delete(self, shortlist_id: str) -> bool:
        raise NotImplementedError

    def _find_by_owner(self, owner: str) -> list:
        raise NotImplementedError

    def _find_all(self, offset: int, limit: int) -> list:
        raise NotImplementedError

    def _ids_holding(self, track_id: str) -> list:
        raise NotImplementedError
