"""The search job: embed an uploaded reference file, search the catalog, delete the upload."""

from audiofind.index.base import Filters
from audiofind.jobs._common import job_services, set_stage, upload_copy, user_errors


def run_search(key, options):
    """Search the catalog for the audio stored under ``key``; returns the result dicts (JSON-able).

    ``options``: limit, start, end, mode, per_album, per_artist, collapse_versions, and filters (a dict of
    index.base.Filters fields)."""
    services = job_services()
    options = dict(options or {})
    with user_errors():
        catalog = services.catalog
        filters = Filters(**(options.pop("filters", None) or {}))
        start, end = options.pop("start", None), options.pop("end", None)
        with upload_copy(services, key) as path:  # a reference track is not kept
            set_stage("analyzing")
            query = catalog.embed_query(path, start=start, end=end)
        set_stage("searching")
        results = catalog.search_embedding(query.vector, query.window_vectors, query.windows, filters=filters, **options)
        return [_plain(result) for result in results]


def _plain(result):
    """Only JSON types in the job result (numpy floats and tuples do not survive every serializer)."""
    out = {}
    for name, value in result.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out
