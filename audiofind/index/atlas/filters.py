"""The filter table (index/filters.py) in Atlas terms: the $vectorSearch pre-filter, the fields copied onto
segment documents, and the "filter" paths of the search-index definitions."""

from typing import Optional

from audiofind.index import filters

# Every filter field's path once; a segment document carries its track's values of them (track_id it has).
FILTER_PATHS = tuple(dict.fromkeys(f.name for f in filters.FILTER_FIELDS))
SEGMENT_FIELDS = tuple(p for p in FILTER_PATHS if p != "track_id")
ARRAY_PATHS = tuple(f.name for f in filters.FILTER_FIELDS if f.kind == "every")  # $eq matches an element


def vector_filter(filters_) -> Optional[dict]:
    """Filters as a $vectorSearch pre-filter, or None when it keeps everything.

    Same semantics as Filters.matches: a missing bpm never matches a BPM range, every tag must be present."""
    return filters.atlas_filter(filters_)


def index_filter_fields() -> list:
    """The "filter" fields of a vector search index: one per filter path (what "$filters" in the JSON stands for)."""
    return [{"type": "filter", "path": path} for path in FILTER_PATHS]
