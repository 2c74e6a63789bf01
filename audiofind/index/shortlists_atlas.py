"""Shortlists in the Atlas backend's database: collection ``shortlists``, one document per shortlist.

{_id: shortlist_id, share_id, owner, name, created_at, updated_at, version, items: [{track_id, note, missing,
title}], track_ids: [...]} (``track_ids`` repeats the items' ids for the index that finds a removed track's
shortlists). A change replaces the document if its ``version`` is still the one that was read.
"""

import contextlib
from dataclasses import asdict

from audiofind.index.atlas import describe_error
from audiofind.index.shortlists import Item, Shortlist, ShortlistStore

COLLECTION = "shortlists"


class AtlasShortlists(ShortlistStore):
    def __init__(self, index):
        self._index = index
        with self._guard():
            collection = self._collection
            collection.create_index([("share_id", 1)], unique=True)
            collection.create_index([("owner", 1), ("updated_at", -1)])
            collection.create_index([("updated_at", -1)])
            collection.create_index([("track_ids", 1)])

    @contextlib.contextmanager
    def _guard(self):
        from pymongo.errors import PyMongoError

        try:
            yield
        except PyMongoError as exc:
            raise describe_error(exc, self._index.config) from None

    @property
    def _collection(self):
        return self._index.db[COLLECTION]

    @staticmethod
    def _document(shortlist):
        doc = asdict(shortlist)
        doc["_id"] = doc.pop("shortlist_id")
        doc["track_ids"] = shortlist.track_ids
        return doc

    @staticmethod
    def _shortlist(doc):
        return Shortlist(
            shortlist_id=doc["_id"], share_id=doc["share_id"], owner=doc["owner"], name=doc["name"],
            created_at=doc["created_at"], updated_at=doc["updated_at"], version=doc.get("version", 0),
            items=[Item(**item) for item in doc.get("items", [])],
        )

    def _insert(self, shortlist):
        with self._guard():
            self._collection.insert_one(self._document(shortlist))

    def _replace(self, shortlist, version):
        with self._guard():
            result = self._collection.replace_one({"_id": shortlist.shortlist_id, "version": version},
                                                  self._document(shortlist))
        return result.matched_count == 1

    def _delete(self, shortlist_id):
        with self._guard():
            return self._collection.delete_one({"_id": shortlist_id}).deleted_count > 0

    def _one(self, query):
        with self._guard():
            doc = self._collection.find_one(query)
        return self._shortlist(doc) if doc else None

    def _load(self, shortlist_id):
        return self._one({"_id": shortlist_id})

    def _load_shared(self, share_id):
        return self._one({"share_id": share_id})

    def _find_by_owner(self, owner):
        with self._guard():
            docs = list(self._collection.find({"owner": owner}).sort([("updated_at", -1), ("_id", 1)]))
        return [self._shortlist(doc) for doc in docs]

    def _find_all(self, offset, limit):
        with self._guard():
            docs = list(self._collection.find({}).sort([("updated_at", -1), ("_id", 1)]).skip(offset).limit(limit))
        return [self._shortlist(doc) for doc in docs]

    def _ids_holding(self, track_id):
        with self._guard():
            return [doc["_id"] for doc in self._collection.find({"track_ids": track_id}, {"_id": 1})]

    def count(self):
        with self._guard():
            return self._collection.count_documents({})
