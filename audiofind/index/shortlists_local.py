"""Shortlists in the local index's SQLite database (catalog.sqlite3), beside the catalog's tables.

Tables: shortlists (one row each) and shortlist_items (one row per track, ``position`` its place). A change
rewrites a shortlist's items in one transaction, if its ``version`` is still the one that was read.
"""

import json

from audiofind.index.shortlists import Item, Shortlist, ShortlistStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shortlists (
    shortlist_id TEXT PRIMARY KEY,
    share_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS shortlists_owner ON shortlists (owner, updated_at);
CREATE INDEX IF NOT EXISTS shortlists_updated ON shortlists (updated_at);
CREATE TABLE IF NOT EXISTS shortlist_items (
    shortlist_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    track_id TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    missing INTEGER NOT NULL DEFAULT 0,
    title TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (shortlist_id, track_id)
);
CREATE INDEX IF NOT EXISTS shortlist_items_track ON shortlist_items (track_id);
"""
_COLUMNS = "shortlist_id, share_id, owner, name, created_at, updated_at, version"


class LocalShortlists(ShortlistStore):
    def __init__(self, index):
        self._connection = index.connection  # per thread, like the index's own
        self._transaction = index.transaction
        self._connection().executescript(_SCHEMA)

    @staticmethod
    def _write_items(conn, shortlist):
        conn.execute("DELETE FROM shortlist_items WHERE shortlist_id = ?", (shortlist.shortlist_id,))
        conn.executemany(
            "INSERT INTO shortlist_items (shortlist_id, position, track_id, note, missing, title) VALUES (?, ?, ?, ?, ?, ?)",
            [(shortlist.shortlist_id, i, it.track_id, it.note, int(it.missing), it.title) for i, it in enumerate(shortlist.items)],
        )

    def _insert(self, shortlist):
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO shortlists ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (shortlist.shortlist_id, shortlist.share_id, shortlist.owner, shortlist.name, shortlist.created_at,
                 shortlist.updated_at, shortlist.version),
            )
            self._write_items(conn, shortlist)

    def _replace(self, shortlist, version):
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE shortlists SET name = ?, updated_at = ?, version = ? WHERE shortlist_id = ? AND version = ?",
                (shortlist.name, shortlist.updated_at, shortlist.version, shortlist.shortlist_id, version),
            ).rowcount
            if updated:
                self._write_items(conn, shortlist)
        return bool(updated)

    def _delete(self, shortlist_id):
        with self._transaction() as conn:
            conn.execute("DELETE FROM shortlist_items WHERE shortlist_id = ?", (shortlist_id,))
            return conn.execute("DELETE FROM shortlists WHERE shortlist_id = ?", (shortlist_id,)).rowcount > 0

    def _select(self, where: str, args, tail: str = "") -> list:
        # One statement reads the shortlists and their items together (a consistent read without a transaction).
        rows = self._connection().execute(
            f"SELECT {_COLUMNS}, (SELECT json_group_array(json_array(track_id, note, missing, title)) FROM "
            "(SELECT * FROM shortlist_items i WHERE i.shortlist_id = s.shortlist_id ORDER BY position)) "
            f"FROM shortlists s WHERE {where} {tail}",
            args,
        ).fetchall()
        shortlists = []
        for row in rows:
            shortlist_id, share_id, owner, name, created_at, updated_at, version, items = row
            items = [Item(t, note, bool(missing), title) for t, note, missing, title in json.loads(items)]
            shortlists.append(Shortlist(shortlist_id, share_id, owner, name, created_at, updated_at, items, version))
        return shortlists

    def _load(self, shortlist_id):
        found = self._select("shortlist_id = ?", (shortlist_id,))
        return found[0] if found else None

    def _load_shared(self, share_id):
        found = self._select("share_id = ?", (share_id,))
        return found[0] if found else None

    def _find_by_owner(self, owner):
        return self._select("owner = ?", (owner,), "ORDER BY updated_at DESC, shortlist_id")

    def _find_all(self, offset, limit):
        return self._select("1", (limit, offset), "ORDER BY updated_at DESC, shortlist_id LIMIT ? OFFSET ?")

    def _ids_holding(self, track_id):
        rows = self._connection().execute("SELECT DISTINCT shortlist_id FROM shortlist_items WHERE track_id = ?", (track_id,))
        return [row[0] for row in rows]

    def count(self):
        return self._connection().execute("SELECT COUNT(*) FROM shortlists").fetchone()[0]
