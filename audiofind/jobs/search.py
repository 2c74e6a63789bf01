"""The search job: embed an uploaded reference file, search the catalog, delete the upload.

The reference's vectors are kept in Redis as long as the job's result (``QUERY_KEY``), so that the page can
re-rank the results with "more / less like this one" marks without the deleted upload (``refine``)."""

import io
import logging

import numpy as np

from audiofind import map_store
from audiofind.catalog import DEFAULT_MODE
from audiofind.index.base import Filters
from audiofind.jobs._common import current_job, job_services, set_stage, upload_copy, user_errors
from audiofind.jobs.queue import SEARCH_RESULT_TTL

logger = logging.getLogger(__name__)
QUERY_KEY = "audiofind:search-query:"  # + job id -> the reference's vectors (npz)


def run_search(key, options):
    """Search the catalog for the audio stored under ``key``; returns the result dicts (JSON-able).

    ``options``: limit, start, end, mode, per_album, per_artist, collapse_versions, like, unlike (track ids), and
    filters (a dict of index.base.Filters fields). Without ``key``: the catalog tracks that sound like the
    ``like`` tracks ("sounds like these")."""
    services = job_services()
    options = dict(options or {})
    with user_errors():
        catalog = services.catalog
        filters = Filters(**(options.pop("filters", None) or {}))
        start, end = options.pop("start", None), options.pop("end", None)
        like, unlike = list(options.pop("like", None) or ()), list(options.pop("unlike", None) or ())
        if key is None:
            set_stage("searching")
            results = catalog.sounds_like(like, filters=filters, unlike=unlike, **options)
            return [_plain(result) for result in results]
        with upload_copy(services, key) as path:  # a reference track is not kept
            set_stage("analyzing")
            query = catalog.embed_query(path, start=start, end=end)
            signature = catalog.query_signature(path, query, mode=options.get("mode", DEFAULT_MODE), start=start,
                                                end=end)
        job = current_job()
        if job is not None:
            save_query(services.redis, job.id, query.vector, query.window_vectors, query.windows, signature)
        set_stage("searching")
        results = catalog.search_embedding(query.vector, query.window_vectors, query.windows, filters=filters,
                                           like=like, unlike=unlike, signature=signature, **options)
        _place_reference(services, query.vector)
        return [_plain(result) for result in results]


def _place_reference(services, vector):
    """Where the reference sits on the catalog map, in job.meta["map_position"] ([x, y] on the layout, [x, y] on
    the coarse view), for the map page to draw it; nothing without a map, and never a failed search."""
    job = current_job()
    try:
        stored = services.map_store.load() if job is not None and services.map_store is not None else None
        found = map_store.position(services.index, stored, vector) if stored is not None else None
        if found is not None:
            job.meta["map_position"] = [[float(v) for v in found[0]], [float(v) for v in found[1]]]
            job.save_meta()
    except Exception:
        logger.exception("could not place the search's reference on the catalog map")


def save_query(redis, job_id, vector, window_vectors, windows, signature=None):
    out = io.BytesIO()
    extra = {} if signature is None else {"signature": signature.astype(np.float16)}
    np.savez(out, vector=vector, window_vectors=window_vectors, windows=windows, **extra)
    redis.set(QUERY_KEY + job_id, out.getvalue(), ex=SEARCH_RESULT_TTL)


def load_query(redis, job_id):
    """(vector, window_vectors, windows, signature or None) of a search's reference, or None once expired (or
    keyless)."""
    data = redis.get(QUERY_KEY + job_id)
    if data is None:
        return None
    with np.load(io.BytesIO(data)) as stored:
        signature = stored["signature"].astype(np.float32) if "signature" in stored else None
        return stored["vector"], stored["window_vectors"], stored["windows"], signature


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
