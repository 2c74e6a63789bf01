"""The catalog service: ingest, search, similar, remove. It knows no backend by name."""

import csv
import functools
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from audiofind import audio, calibration, musicfacts, passage, refine, versions
from audiofind.config import data_dir
from audiofind.index.base import DuplicateAudio, EmbedderMismatch, Filters, Hit, Track
from audiofind.proximity import Proximity
from audiofind.storage.base import StorageError, content_type_for

logger = logging.getLogger(__name__)

# How many more candidates to fetch than asked when results are thinned (diversity, versions).
OVERFETCH = 5
# Search modes (see search_embedding); the page, the API and the command line default to DEFAULT_MODE.
SEARCH_MODES = ("auto", "track", "segment")
DEFAULT_MODE = "auto"
# "auto" ranks a reference shorter than this by its segments, a longer one by its whole-track vector. A track
# vector is the mean and max over all windows: an excerpt's 20 s are not comparable with a whole track's
# minutes (recall@1 of 20 s excerpts: 0.73 by track vector, 0.99 by segments with dsp; 0.40 and 0.73 with the
# aisfx CNN), while for whole tracks the two rank alike (album precision@5 within 0.02). 60 s: twelve windows.
AUTO_SEGMENT_SECONDS = 60.0
# Track mode re-ranks at least this many nearest tracks by mutual proximity (re-ranking 10, 25, 50 or all gave
# "more like this" album precision@5 within 0.002 of each other with dsp on bench/bench_quality.py's music).
PROXIMITY_CANDIDATES = 50
# Segment search with a nuisance direction (audiofind/calibration.py) scores at least this many candidates again
# with it out of their windows too (the true source of an aisfx excerpt was among the first 10 for 0.994, 20: 1.0).
RESCORED_CANDIDATES = 20
# Catalog tracks examined for being a version of a new track (the best by segment search).
VERSION_CANDIDATES = 10


@dataclass
class IngestOutcome:
    status: str  # "added" or "duplicate"
    track: Track
    version_of: Optional[str] = None  # track_id of the catalog track this one is a version of


class Catalog:
    def __init__(self, config, pm, *, index, storage, embedder):
        self.config = config
        self.pm = pm
        self.index = index
        self.storage = storage
        self._embedder = embedder  # a callable: the model loads on first use, once per process
        self.proximity = Proximity(index)
        self.calibration_store = calibration.for_index(index)

    @property
    def embedder(self):
        return self._embedder()

    def check(self) -> None:
        """Raise EmbedderUnavailable (with the fix) or EmbedderMismatch before any file is accepted."""
        self.embedder.check()
        self._check_embedder()

    def _check_embedder(self) -> None:
        current = self.embedder.identity
        stored = self.index.embedder_identity()
        if stored is None:
            return
        if stored != current:
            raise EmbedderMismatch(
                f"this catalog was built with the {stored['name']!r} embedder ({stored['dim']}-d vectors, "
                f"version {stored['version']}), but {current['name']!r} ({current['dim']}-d, version "
                f"{current['version']}) is configured. Set AUDIOFIND_EMBEDDER={stored['name']}, or run "
                f"`audiofind reindex` to rebuild the catalog with {current['name']!r}."
            )

    # -- ingest

    def ingest(self, path, *, file=None, metadata=None, track_id=None) -> IngestOutcome:
        """Add one audio file (copied into storage). The same audio twice is one track, also when two ingests
        of it run at once. Nothing is stored unless all of it succeeds.

        ``track_id``: the id to give the track (an ingest job passes one derived from its own id, so that a
        retry of a job whose first run got as far as the catalog finds its own track: "added", not a duplicate).
        """
        path = Path(path)
        file = file or path.name
        info = audio.probe(path, self.config)
        content_hash = _sha256(path)
        existing = self.index.find_by_hash(content_hash)
        if existing is not None:
            return _outcome_of(existing, track_id)
        self._check_embedder()
        embedding, analysis, facts = self._embed(path)
        embedder = self.embedder
        version_of = self.find_version(embedding.windows, embedding.window_vectors)

        track_id = track_id or uuid.uuid4().hex[:16]
        metadata = dict(metadata or {})
        track = Track(
            track_id=track_id,
            file=file,
            content_hash=content_hash,
            duration=0.0,
            embedder="",
            title=metadata.get("title", ""),
            artist=metadata.get("artist", ""),
            album=metadata.get("album", ""),
            group_id=version_of.group_id if version_of else track_id,
            created_at=time.time(),
        )
        track = self._measured(track, _split_tags(metadata.get("tags", "")), embedding, analysis, facts)
        # The key's extension is the format the file really is (a name may say .html, or nothing).
        suffix = audio.FORMAT_SUFFIXES.get(info.format)
        track.storage_key = self.storage.new_key("track" + suffix if suffix else file)
        self.storage.put_file(path, track.storage_key, content_type=content_type_for(track.storage_key), filename=file)
        try:
            if self.index.embedder_identity() is None:
                self.index.set_embedder_identity(embedder.identity)
            self.index.add(track, embedding.vector, embedding.windows, embedding.window_vectors)
        except DuplicateAudio as duplicate:  # another ingest of the same audio finished first
            self.storage.delete(track.storage_key)
            return _outcome_of(duplicate.existing, None)
        except BaseException:
            self.storage.delete(track.storage_key)
            raise
        self.pm.hook.after_ingest(track=track, catalog=self)
        return IngestOutcome("added", track, version_of.track_id if version_of else None)

    def _embed(self, path):
        """(embedding, analysis, musical facts) of a file decoded once."""
        analysis = audio.Analysis(self.embedder.sample_rate)
        facts = musicfacts.MusicFacts(self.embedder.sample_rate)
        blocks = audio.stream(path, self.embedder.sample_rate, max_duration=self.config["MAX_DURATION"])
        embedding = self.embedder.embed(audio.prefetch(facts.tap(analysis.tap(blocks))))  # decoded beside it
        return embedding, analysis, facts.finish(tags=embedding.tags)

    def reindex(self, progress=lambda done, total: None) -> list:
        """Re-embed every track with the configured embedder, keeping ids and metadata; returns the failures.

        The catalog's tracks are written to a manifest first, then all are removed, then re-added one by one:
        an interrupted run resumes from the manifest, and vectors of two embedders are never mixed. A track
        that cannot be re-embedded (its file missing, storage unreachable) stays in the manifest, with its
        audio: running reindex again retries exactly those."""
        manifest = data_dir(self.config) / "reindex-manifest.json"
        if not manifest.exists():
            everything = []
            while len(everything) < self.index.count():
                page = self.index.list(len(everything), 500)
                if not page:
                    break
                everything.extend(page)
            _write_json(manifest, [track.to_dict() for track in everything])
        entries = [Track(**entry) for entry in json.loads(manifest.read_text())]
        for track in entries:
            self.index.remove(track.track_id)
        self.index.set_embedder_identity(self.embedder.identity)
        failed, kept = [], []
        for done, track in enumerate(entries):
            progress(done, len(entries))
            if self.index.get(track.track_id) is not None:
                continue
            try:
                with self.storage.local_copy(track.storage_key) as path:
                    embedding, analysis, facts = self._embed(path)
            except (audio.AudioError, StorageError) as error:
                failed.append(f"{track.file}: {error}")
                kept.append(track.to_dict())
                continue
            free_tags = [tag for tag in track.tags if tag not in {label for label, _ in track.labels}]
            track = self._measured(track, free_tags, embedding, analysis, facts)
            self.index.add(track, embedding.vector, embedding.windows, embedding.window_vectors)
            self.pm.hook.after_ingest(track=track, catalog=self)
        progress(len(entries), len(entries))
        if kept:
            _write_json(manifest, kept)
        else:
            manifest.unlink()
        return failed

    def _measured(self, track: Track, free_tags: list, embedding, analysis, facts) -> Track:
        """The track with what the embedder, the analysis and the musical facts measured; the model's top labels
        become tags too."""
        labels = [[label, round(float(score), 4)] for label, score in embedding.tags]
        return replace(
            track,
            duration=round(analysis.duration, 3),
            embedder=f"{self.embedder.name}:{self.embedder.version}",
            labels=labels,
            tags=_merge_tags(free_tags, [label for label, _ in labels[:3]]),
            bpm=analysis.bpm,
            envelope=analysis.envelope,
            **musicfacts.track_fields(facts),
        )

    def find_version(self, windows, window_vectors) -> Optional[Track]:
        """A catalog track this audio is a version of: a time-aligned match (see audiofind/versions.py),
        looked for among the VERSION_CANDIDATES tracks that segment search ranks first."""
        if self.index.count() == 0 or len(window_vectors) == 0:
            return None
        hits = self.index.search_segments(window_vectors, VERSION_CANDIDATES, Filters())
        candidates = [(hit.track_id, *self.index.segments(hit.track_id)) for hit in hits]
        fallback = versions.median_self_similarity([theirs for _, _, theirs in candidates])
        for track_id, their_windows, theirs in candidates:
            if versions.is_version(windows, window_vectors, their_windows, theirs, fallback):
                return self.index.get(track_id)
        return None

    def remove(self, track_id: str) -> bool:
        track = self.index.get(track_id)
        if track is None:
            return False
        self.index.remove(track_id)
        if track.storage_key:
            self.storage.delete(track.storage_key)
        self.pm.hook.after_remove(track=track, catalog=self)  # shortlists mark it missing
        return True

    # -- read

    def get(self, track_id: str) -> Optional[dict]:
        track = self.index.get(track_id)
        if track is None:
            return None
        return self._enrich([_result(track, Hit(track_id, 1.0))])[0]

    def list(self, offset: int = 0, limit: int = 50, query: str = "") -> list:
        return self._enrich([_result(t, None) for t in self.index.list(offset, limit, query)])

    def page(self, limit: int = 50, query: str = "", cursor: str = "") -> tuple:
        """(tracks, next cursor or None), newest first: see Index.page."""
        tracks, following = self.index.page(limit, query, cursor)
        return self._enrich([_result(t, None) for t in tracks]), following

    def count(self, query: str = "") -> int:
        return self.index.count(query)

    # -- search

    def embed_query(self, path, *, start=None, end=None):
        path = Path(path)
        audio.probe(path, self.config)
        self._check_embedder()
        embedder = self.embedder
        return embedder.embed(audio.prefetch(
            audio.stream(path, embedder.sample_rate, start=start, end=end, max_duration=self.config["MAX_DURATION"])
        ))

    def query_signature(self, path, query, *, mode=DEFAULT_MODE, start=None, end=None) -> Optional[np.ndarray]:
        """The reference's audio signature (audiofind/passage.py), by which a segment search places its best hit
        from the audio; None when the search ranks whole tracks or the reference is longer than
        passage.MAX_SECONDS. ``query``: the reference's embedding (embed_query)."""
        if _resolved_mode(mode, query.windows) != "segment" or _length(query.windows) > passage.MAX_SECONDS:
            return None
        return passage.signature(path, start=start, end=end, max_duration=self.config["MAX_DURATION"])

    def search_file(self, path, *, start=None, end=None, **options) -> list:
        """The catalog tracks that sound most like the audio file (or its start..end range)."""
        query = self.embed_query(path, start=start, end=end)
        signature = self.query_signature(path, query, mode=options.get("mode", DEFAULT_MODE), start=start, end=end)
        return self.search_embedding(query.vector, query.window_vectors, query.windows, signature=signature,
                                     **options)

    def similar(self, track_id: str, *, filters=None, mode=DEFAULT_MODE, **options) -> list:
        """"More like this": the neighbours of a catalog track, never the track itself. A catalog track is a
        whole piece, not an excerpt to find in another, so "auto" ranks by track vectors whatever its length."""
        track = self.index.get(track_id)
        if track is None:
            raise KeyError(track_id)
        filters = replace(
            filters or Filters(),
            exclude_track_ids=[*(filters.exclude_track_ids if filters else []), track_id],
            exclude_files=[*(filters.exclude_files if filters else []), track.file],
        )
        windows, window_vectors = self.index.segments(track_id)
        vector = self.index.track_vector(track_id)
        mode = "track" if mode == "auto" else mode
        return self.search_embedding(vector, window_vectors, windows, filters=filters, mode=mode, **options)

    def sounds_like(self, track_ids: list, *, filters=None, unlike=(), **options) -> list:
        """"Sounds like these": the neighbours of several catalog tracks at once, weighted alike (the first is
        the reference, the others liked with weight len(others)), never one of them. One id is ``similar``."""
        first, *others = list(dict.fromkeys(track_ids))
        filters = replace(filters or Filters(), exclude_track_ids=[*(filters.exclude_track_ids if filters else []), *others])
        weights = replace(options.pop("weights", refine.DEFAULT_WEIGHTS), like=float(len(others)))
        return self.similar(first, filters=filters, like=others, unlike=unlike, weights=weights, **options)

    def search_embedding(
        self,
        vector,
        window_vectors,
        windows,
        *,
        limit=10,
        filters=None,
        mode=DEFAULT_MODE,
        per_album=None,
        per_artist=None,
        collapse_versions=True,
        like=(),
        unlike=(),
        weights=refine.DEFAULT_WEIGHTS,
        signature=None,
    ) -> list:
        """The catalog tracks most like the reference, best first.

        ``mode``: "track" ranks by the whole-track vectors (how the reference sounds overall; the nearest by
        dot product, ordered by mutual proximity, audiofind/proximity.py, which is then their score),
        "segment" by the best-matching windows (which track contains this, and where), "auto" picks by the
        reference's length: segment below AUTO_SEGMENT_SECONDS, track from there on.

        ``like``/``unlike``: catalog track ids marked "more like this"/"less like this" (audiofind/refine.py):
        the query moves towards and away from them, and the unliked tracks and their nearest neighbours are
        left out. Matches are still located for the reference. KeyError names an id not in the catalog.

        ``signature``: the reference's audio signature (``query_signature``); with it, the best hit of a segment
        search is placed again from the audio of both (audiofind/passage.py)."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}: use {', '.join(SEARCH_MODES)}")
        mode = _resolved_mode(mode, windows)
        filters = filters or Filters()
        query_vector, query_windows = vector, window_vectors
        if like or unlike:
            query_vector, query_windows = refine.refine_query(self.index, vector, window_vectors, like, unlike, weights)
            keep = [*like, *filters.exclude_track_ids]
            dropped = refine.unliked_neighbours(self.index, self._nearest, unlike, keep=keep, count=weights.neighbours)
            filters = replace(filters, exclude_track_ids=[*filters.exclude_track_ids, *dropped])
        thinned = bool(per_album or per_artist or collapse_versions)
        fetch = limit * OVERFETCH if thinned else limit
        directions = self.nuisance_directions()

        @functools.cache  # the hits' windows, read and projected once for rescoring and locating
        def segments(track_id):
            their_windows, theirs = self.index.segments(track_id)
            return their_windows, calibration.without(theirs, directions)

        if mode == "segment":
            query_windows = calibration.without(query_windows, directions)
            if directions is None:
                hits = self.index.search_segments(query_windows, fetch, filters)
            else:
                hits = self.index.search_segments(query_windows, max(fetch, RESCORED_CANDIDATES), filters)
                hits = _rescored(hits, segments, query_windows)
        else:
            hits = self._nearest(query_vector, fetch, filters)
        tracks = self.index.get_many([hit.track_id for hit in hits], envelope=False)  # to thin the list
        hits = [hit for hit in hits if hit.track_id in tracks]
        versions = _count_by(tracks.values(), "group_id")
        if collapse_versions:
            hits = _keep_first(hits, lambda hit: tracks[hit.track_id].group_id)
        if per_album:
            hits = _cap(hits, per_album, lambda hit: tracks[hit.track_id].album)
        if per_artist:
            hits = _cap(hits, per_artist, lambda hit: tracks[hit.track_id].artist)
        reference = calibration.without(window_vectors, directions)
        hits = [_located(hit, segments, reference, windows) for hit in hits[:limit]]
        shown = self.index.get_many([hit.track_id for hit in hits])
        hits = [hit for hit in hits if hit.track_id in shown]
        if mode == "segment" and signature is not None and hits:
            hits[0] = self._placed_from_audio(hits[0], shown[hits[0].track_id], signature)
        results = []
        for rank, hit in enumerate(hits, 1):
            result = _result(shown[hit.track_id], hit, rank)
            result["versions"] = versions.get(result["group_id"], 1) if collapse_versions else 1
            results.append(result)
        return self._enrich(results)

    def _nearest(self, vector, limit: int, filters: Filters) -> list:
        """Track mode: the ``limit`` best by mutual proximity (audiofind/proximity.py) of the nearest
        PROXIMITY_CANDIDATES (or ``limit``, if more) by dot product."""
        hits = self.index.search(vector, max(limit, PROXIMITY_CANDIDATES), filters)
        return self.proximity.rerank(vector, hits)[:limit]

    def _placed_from_audio(self, hit: Hit, track: Track, signature) -> Hit:
        """The hit's match placed by the signals of the reference and the track (audiofind/passage.py), looked
        for within passage.SEARCH_SECONDS of the window vectors' placement, when they are the same recording;
        the window vectors' placement stands otherwise, and when the track's audio cannot be read (a search
        never fails for it)."""
        if not track.storage_key or hit.match_start is None:
            return hit
        length = passage.duration(signature)
        first = max(0.0, hit.match_start - passage.SEARCH_SECONDS)
        last = hit.match_start + length + passage.SEARCH_SECONDS
        if track.duration:
            last = min(last, track.duration)
        try:
            with self.storage.local_copy(track.storage_key) as path:
                start = passage.locate(signature, passage.signature(path, start=first, end=last))
        except (StorageError, OSError, ValueError) as error:  # AudioError is a ValueError
            logger.warning("could not place the match in %s from its audio: %s", track.file, error)
            return hit
        if start is None:
            return hit
        start += first
        end = min(start + length, last)
        return replace(hit, match_start=round(start, 2), match_end=round(end, 2))

    def nuisance_directions(self):
        """The catalog's nuisance direction(s) (audiofind/calibration.py), or None when it was not calibrated
        for the embedder that built it."""
        stored = self.calibration_store.load() if self.calibration_store else None
        return stored.directions if calibration.learned_for(stored, self.index) else None

    def extra_fields(self) -> list:
        """The fields metadata plugins add to tracks (extra_track_fields), in plugin order, each once."""
        names = [name for batch in self.pm.hook.extra_track_fields(config=self.config) for name in batch or ()]
        return list(dict.fromkeys(names))

    def _enrich(self, results: list) -> list:
        """Fields from metadata plugins (e.g. the related-songs collection), merged by track id."""
        if not results:
            return results
        for extra in self.pm.hook.track_details(tracks=results, config=self.config):
            for result in results:
                result.update((extra or {}).get(result["track_id"], {}))
        return results

    # -- metadata

    def import_metadata(self, csv_path, name=None) -> dict:
        """Set title, artist, album and tags from a CSV keyed by file name (column ``file``); ``name`` is the
        CSV's name in messages (the user's, when ``csv_path`` is a stored copy)."""
        csv_path = Path(csv_path)
        name = name or csv_path.name
        fields = ("title", "artist", "album", "tags")
        updated, unmatched = 0, []
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "file" not in (reader.fieldnames or []):
                raise ValueError(f"{name}: no 'file' column (found: {', '.join(reader.fieldnames or [])})")
            for row in reader:
                changes = {key: row[key].strip() for key in fields if row.get(key) is not None}
                tracks = self.index.find_by_file(row["file"].strip())
                if not tracks:
                    unmatched.append(row["file"])
                    continue
                for track in tracks:
                    update = dict(changes)
                    if "tags" in update:
                        update["tags"] = _merge_tags(_split_tags(update["tags"]), [lb for lb, _ in track.labels[:3]])
                    self.index.update(track.track_id, update)
                    updated += 1
        return {"updated": updated, "unmatched": unmatched}


def _length(windows) -> float:
    """Seconds a reference's windows span."""
    return float(windows[-1, 1] - windows[0, 0]) if len(windows) else 0.0


def _resolved_mode(mode: str, windows) -> str:
    """"auto" made "segment" or "track" by the reference's length (see search_embedding); others as given."""
    if mode != "auto":
        return mode
    return "segment" if _length(windows) < AUTO_SEGMENT_SECONDS else "track"


def _rescored(hits: list, segments, query_windows) -> list:
    """Segment hits scored again with the nuisance directions out of their windows too (``segments``: a hit's
    windows and projected window vectors), best first."""
    rescored = []
    for hit in hits:
        try:
            their_windows, theirs = segments(hit.track_id)
        except KeyError:  # removed since the search
            continue
        if len(theirs) == 0:
            continue
        sims = query_windows @ theirs.T
        best = int(np.argmax(sims.max(axis=0)))
        start, end = float(their_windows[best, 0]), float(their_windows[best, 1])
        rescored.append(replace(hit, score=float(sims.max(axis=1).mean()), match_start=start, match_end=end))
    return sorted(rescored, key=lambda hit: -hit.score)


def _located(hit: Hit, segments, window_vectors, windows) -> Hit:
    """Where in the result track the query matches (``window_vectors`` and ``segments``' with the nuisance
    directions out, if any).

    When the query has more than one window and is no longer than the track, the match is the query's span
    at the offset where its windows, in order, match the track's best (versions.placement). Otherwise it is
    the track's window most like any part of the query."""
    their_windows, theirs = segments(hit.track_id)
    if len(theirs) == 0 or len(window_vectors) == 0:
        return hit
    start = versions.placement(windows, window_vectors, their_windows, theirs) if (
        1 < len(windows) <= len(their_windows)) else None
    if start is not None:
        end = min(float(their_windows[-1, 1]), start + float(windows[-1, 1] - windows[0, 0]))
    else:
        i, j = np.unravel_index(int(np.argmax(window_vectors @ theirs.T)), (len(window_vectors), len(theirs)))
        start, end = float(their_windows[j, 0]), float(their_windows[j, 1])
    return replace(hit, match_start=round(start, 2), match_end=round(end, 2))


def _outcome_of(existing: Track, track_id) -> IngestOutcome:
    return IngestOutcome("added" if existing.track_id == track_id else "duplicate", existing)


def _result(track: Track, hit: Optional[Hit], rank: int = 0) -> dict:
    result = track.to_dict()
    result.update(
        rank=rank,
        score=round(float(hit.score), 4) if hit else None,
        match_start=hit.match_start if hit else None,
        match_end=hit.match_end if hit else None,
        versions=1,
    )
    return result


def _write_json(path: Path, value) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(value))
    partial.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _split_tags(value) -> list:
    if isinstance(value, (list, tuple)):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    return [tag.strip() for tag in str(value or "").replace(";", ",").split(",") if tag.strip()]


def _merge_tags(*groups) -> list:
    seen = []
    for group in groups:
        for tag in group:
            if tag not in seen:
                seen.append(tag)
    return seen


def _count_by(tracks, attribute) -> dict:
    counts = {}
    for track in tracks:
        key = getattr(track, attribute)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _keep_first(hits, key):
    seen, kept = set(), []
    for hit in hits:
        k = key(hit)
        if k in seen:
            continue
        seen.add(k)
        kept.append(hit)
    return kept


def _cap(hits, most, key):
    counts, kept = {}, []
    for hit in hits:
        k = key(hit)
        if k:
            counts[k] = counts.get(k, 0) + 1
            if counts[k] > most:
                continue
        kept.append(hit)
    return kept
