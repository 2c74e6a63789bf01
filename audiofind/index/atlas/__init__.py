"""MongoDB Atlas Vector Search backend (production): the backend (backend), the search-index definitions and
their migration (definitions), and the filter table in Atlas terms (filters)."""

from audiofind.hookspecs import hookimpl
from audiofind.index.atlas.backend import (  # noqa: F401 (the package's public names)
    MAX_CANDIDATES,
    SEGMENTS_INDEX,
    TRACKS_INDEX,
    AtlasIndex,
    connect,
    describe_error,
    dot_from_score,
    from_bson_vector,
    to_bson_vector,
    vector_search_pipeline,
)
from audiofind.index.atlas.filters import FILTER_PATHS, SEGMENT_FIELDS, vector_filter  # noqa: F401
from audiofind.index.atlas.definitions import (  # noqa: F401
    COLLECTIONS,
    MIGRATIONS_DIR,
    ensure_indexes,
    load_definitions,
    search_index,
)


@hookimpl
def register_indexes():
    return [AtlasIndex]
