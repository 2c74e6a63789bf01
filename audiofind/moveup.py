"""Move an embedded catalog (local index + local files) to production backends (Atlas + S3).

Nothing is re-embedded: each track's stored vectors and windows are copied as they are, and its
audio file is copied under the same storage key. The move is resumable: every finished batch is
appended to a progress file in the source DATA_DIR (one per target), and a track the target
already holds is not written again, so an interrupted move picks up where it stopped.
"""

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from audiofind.config import data_dir
from audiofind.services import Services
from audiofind.storage.base import StorageError
from audiofind.storage.base import content_type_for


def target_name(config) -> str:
    """Where a move goes, in words (no credentials): it names the progress file."""
    parts = [f"index={config.get('INDEX')}", f"storage={config.get('STORAGE')}"]
    if config.get("INDEX") == "atlas":
        host = urlsplit(config.get("MONGODB_URI") or "").hostname or ""
        parts.append(f"mongodb={host}/{config.get('MONGODB_DATABASE') or 'audiofind'}")
    if config.get("STORAGE") == "s3":
        parts.append(f"s3={config.get('S3_ENDPOINT_URL') or 'aws'}/{config.get('S3_BUCKET')}")
    if config.get("INDEX") == "local" or config.get("STORAGE") == "local":
        parts.append(f"data_dir={Path(config['DATA_DIR']).expanduser().resolve()}")
    return " ".join(parts)


def progress_path(source_config, target_config) -> Path:
    digest = hashlib.sha256(target_name(target_config).encode()).hexdigest()[:12]
    return data_dir(source_config) / f"move-up-{digest}.jsonl"


def _read_done(path: Path) -> set:
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: its batch is checked against the target again
            done.update(entry.get("done", []))
    return done


def _all_track_ids(index, page=1000) -> list:
    ids, offset = [], 0
    while True:
        batch = index.list(offset=offset, limit=page)
        ids.extend(track.track_id for track in batch)
        if len(batch) < page:
            break
        offset += page
    ids.reverse()  # oldest first, so the target's "newest first" order matches the source's
    return list(dict.fromkeys(ids))


def _copy_file(track, source_storage, target_storage) -> str:
    """'copied', 'present' (already there with the same size) or 'missing' (the source has no file)."""
    key = track.storage_key
    if not key:
        return "missing"
    try:
        size = source_storage.size(key)
    except StorageError:
        return "missing"
    try:
        if target_storage.exists(key) and target_storage.size(key) == size:
            return "present"
    except StorageError:
        pass
    with source_storage.local_copy(key) as path:
        target_storage.put_file(path, key, content_type_for(key), filename=track.file)
    return "copied"


def _backends(services):
    return services.index, services.storage


def move_up(source_config, target_config, progress=None, *, source=None, target=None, batch_size=None) -> dict:
    """Copy every track of the source catalog (index + audio files) into the target's backends.

    ``progress(done, total)`` is called after each track. ``source``/``target`` may be given as
    (index, storage) pairs instead of being built from the configs. Returns {"total", "moved",
    "skipped" (already in the target), "missing_files" (file names whose audio was not in the source
    storage: their vectors and metadata moved, playback will not work), "progress_file"}."""
    source_index, source_storage = source or _backends(Services(source_config))
    target_index, target_storage = target or _backends(Services(target_config))
    batch_size = int(batch_size or target_config.get("MOVE_UP_BATCH") or 50)

    identity = source_index.embedder_identity()
    ids = _all_track_ids(source_index) if identity else []
    path = progress_path(source_config, target_config)
    summary = {"total": len(ids), "moved": 0, "skipped": 0, "missing_files": [], "progress_file": str(path)}
    if not ids:
        return summary

    if target_index.embedder_identity() != identity:
        # Creates the target's search indexes for these dimensions; raises EmbedderMismatch when the
        # target already holds tracks of another embedder.
        target_index.set_embedder_identity(identity)

    done = _read_done(path)
    count = 0

    def report():
        nonlocal count
        count += 1
        if progress:
            progress(count, len(ids))

    todo = []
    for track_id in ids:
        if track_id in done:
            summary["skipped"] += 1
            report()
        else:
            todo.append(track_id)

    with path.open("a") as log:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            present = target_index.get_many(batch)  # written before an interruption, not yet logged
            entries, moved = [], set()
            for track_id, track in source_index.get_many(batch).items():
                if _copy_file(track, source_storage, target_storage) == "missing":
                    summary["missing_files"].append(track.file)
                if track_id not in present:
                    windows, window_vectors = source_index.segments(track_id)
                    entries.append((track, source_index.track_vector(track_id), windows, window_vectors))
                    moved.add(track_id)
            if entries:
                add_many = getattr(target_index, "add_many", None)
                if add_many:
                    add_many(entries)
                else:
                    for entry in entries:
                        target_index.add(*entry)
            log.write(json.dumps({"done": batch}) + "\n")
            log.flush()
            for track_id in batch:  # a track removed from the source meanwhile counts as skipped
                summary["moved" if track_id in moved else "skipped"] += 1
                report()
    return summary
