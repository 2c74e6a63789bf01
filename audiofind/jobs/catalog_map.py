"""The map job: the catalog map from every track vector (PCA's coarse view and the neighbour-preserving layout,
catalog_map.py), stored with the catalog (map_store.py). Admin enqueues it ("recompute the map")."""

import time

from audiofind import catalog_map
from audiofind.jobs._common import job_services, set_stage
from audiofind.map_store import CatalogMap, place_track


def compute_map(index, store, method: str = "tsne") -> CatalogMap:
    """Compute and store the map of every track in ``index``; tracks added meanwhile are placed on it after."""
    started = time.perf_counter()
    ids, vectors = index.all_vectors()
    coarse = catalog_map.coarse_view(vectors)
    layout = catalog_map.fit_layout(vectors, method)
    computed = CatalogMap(ids, layout, coarse, method, time.time(), time.perf_counter() - started, len(ids))
    store.save(computed)
    known, offset = set(ids), 0
    while True:  # newest first: the tracks ingested while the layout was computed
        page = index.list(offset, 200)
        new = [track.track_id for track in page if track.track_id not in known]
        for track_id in new:
            place_track(store, index, track_id)
        if len(new) < len(page) or not page:
            break
        offset += len(page)
    return computed


def run_map_layout():
    """Returns the stored map's info (method, tracks, seconds, ...)."""
    services = job_services()
    if services.map_store is None:
        raise ValueError(f"the {services.index.name!r} index keeps no catalog map")
    set_stage("computing")
    compute_map(services.index, services.map_store, services.config.get("MAP_METHOD", "tsne"))
    return services.map_store.load().info()
