"""The `audiofind` command."""

import json
import os
import sys
from pathlib import Path

import click
from tqdm import tqdm

from audiofind import calibration, logs
from audiofind.audio import AudioError
from audiofind.catalog import DEFAULT_MODE, SEARCH_MODES
from audiofind.config import ConfigError, load_config
from audiofind.display import clock, energy
from audiofind.embedders.base import EmbedderUnavailable, describe
from audiofind.index.base import EmbedderMismatch, Filters, IndexUnavailable
from audiofind.index.filters import MAX_NUMBER, PARAMS, PUBLIC_FIELDS, parse_filters
from audiofind.jobs.worker import run_worker
from audiofind.migrate import migrate as run_migrations
from audiofind.moveup import move_up as run_move_up
from audiofind.serve import run
from audiofind.services import Services
from audiofind.storage.base import StorageError
from audiofind.upload_policy import AUDIO_SUFFIXES
from audiofind.uploads import offer_seconds

USER_ERRORS = (ConfigError, AudioError, EmbedderUnavailable, EmbedderMismatch, IndexUnavailable, StorageError, ValueError)


class Context:
    """The command's settings and services, loaded when a command first needs them."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._services = None

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = Services(load_config({"DATA_DIR": self.data_dir} if self.data_dir else None))
        return self._services

    @property
    def config(self) -> dict:
        return self.services.config

    @property
    def catalog(self):
        return self.services.catalog


@click.group(name="audiofind", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="audiofind", prog_name="audiofind")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="AUDIOFIND_DATA_DIR",
    help="Instance folder: the embedded catalog and its audio (AUDIOFIND_DATA_DIR, default ./instance).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    envvar="AUDIOFIND_LOG_LEVEL",
    help="Log level of this command and the processes it starts (AUDIOFIND_LOG_LEVEL, default info).",
)
@click.pass_context
def cli(ctx, data_dir, log_level):
    """Audio Find: search a music catalog by sound."""
    if log_level:
        os.environ["AUDIOFIND_LOG_LEVEL"] = log_level.upper()  # for the web and worker processes of `serve` too
    logs.configure()
    ctx.obj = Context(data_dir)


def main():
    try:
        cli(standalone_mode=True)
    except USER_ERRORS as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)


def fail(message):
    raise click.ClickException(str(message))


def audio_files(paths):
    """Every file named, and every audio file under the folders named (recursively), in a stable order."""
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in AUDIO_SUFFIXES:
                    yield child
        else:
            yield path


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@click.pass_obj
def info(obj, as_json):
    """Show the embedder and the engine that runs it (loads the model: on a new machine, times the engines once)."""
    embedder = obj.catalog.embedder
    try:
        embedder.check()
    except USER_ERRORS as error:
        fail(error)
    summary = embedder.summary()
    click.echo(json.dumps(summary, indent=2) if as_json else f"embedder: {describe(summary)}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_obj
def ingest(obj, paths):
    """Add audio files (and folders, recursively) to the catalog."""
    catalog = obj.catalog
    try:
        catalog.check()
    except USER_ERRORS as error:
        fail(error)
    files = list(audio_files(paths))
    added, duplicates, versions, failed = 0, [], 0, []
    with tqdm(files, unit="file", file=sys.stderr, disable=not files) as bar:
        for path in bar:
            bar.set_postfix_str(path.name[-40:])
            try:
                outcome = catalog.ingest(path)
            except USER_ERRORS as error:
                failed.append(str(error) if path.name in str(error) else f"{path.name}: {error}")
                continue
            if outcome.status == "duplicate":
                duplicates.append(f"{path.name}: already in the catalog as {outcome.track.file} ({outcome.track.track_id})")
            else:
                added += 1
                versions += outcome.version_of is not None
    click.echo(f"added {added}, skipped {len(duplicates)}, failed {len(failed)}")
    if added:
        _calibrate_when_needed(catalog)
    if versions:
        click.echo(f"{versions} of the added tracks are versions of catalog tracks (grouped)")
    for line in duplicates:
        click.echo(f"  skipped {line}")
    for line in failed:
        click.echo(f"  failed  {line}", err=True)
    if failed:
        click.echo(f"{len(failed)} tracks are kept for the next run (their audio and metadata too): fix the cause "
                   "and run `audiofind reindex` again", err=True)
        sys.exit(1)


def filter_options():
    """One click option per filter input of the filter table (index/filters.py)."""
    for f in PUBLIC_FIELDS:
        if f.kind == "range":
            for param, side in zip(f.params, ("at least", "at most")):
                bounds = click.FloatRange(f.low, None if f.high >= MAX_NUMBER else f.high)
                yield click.option("--" + param.replace("_", "-"), param, type=bounds,
                                   help=f"Only tracks {side} {f.help}{f' ({f.unit})' if f.unit else ''}.")
        elif f.is_list:
            yield click.option(f.option or f"--{f.name}", f.params[0], multiple=True,
                               help=f"Only tracks {f.help} (repeatable).")
        else:
            yield click.option("--" + f.params[0].replace("_", "-"), f.params[0], default=None if f.choices else "",
                               help=f"Only tracks {f.help}.", type=click.Choice(f.choices) if f.choices else str)


def search_options(command):
    options = [
        click.option("--limit", "-n", default=10, show_default=True, type=click.IntRange(1, 1000),
                     help="How many results."),
        click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
        click.option("--mode", type=click.Choice(SEARCH_MODES), default=DEFAULT_MODE, show_default=True,
                     help="Rank by whole-track sound, by the best-matching segments, or auto: segments when the "
                     "reference is an excerpt of a catalog track, else whole tracks."),
        *filter_options(),
        click.option("--per-album", type=click.IntRange(1), help="At most N results from one album."),
        click.option("--per-artist", type=click.IntRange(1), help="At most N results from one artist."),
        click.option("--all-versions", is_flag=True, help="Show every version of a recording, not just the best."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _search_kwargs(opts) -> dict:
    # through the parsing the API and the form use (it expands compatible keys)
    filters = Filters(**parse_filters({p: list(opts[p]) if isinstance(opts[p], tuple) else opts[p] for p in PARAMS}))
    return dict(
        limit=opts["limit"],
        mode=opts["mode"],
        filters=filters,
        per_album=opts["per_album"],
        per_artist=opts["per_artist"],
        collapse_versions=not opts["all_versions"],
    )


JSON_FIELDS = ("rank", "track_id", "file", "title", "artist", "album", "score", "match_start", "match_end",
               "duration", "bpm", "tags", "versions", "key", "camelot", "vocals", "energy")


def print_results(results, as_json):
    if as_json:
        click.echo(json.dumps([{key: r.get(key) for key in JSON_FIELDS} for r in results], indent=2))
        return
    if not results:
        click.echo("no matching tracks")
        return
    for r in results:
        where = f"{clock(r['match_start'])}-{clock(r['match_end'])}" if r.get("match_start") is not None else ""
        name = r["title"] or r["file"]
        if r["artist"]:
            name = f"{r['artist']} - {name}"
        versions = f"  (+{r['versions'] - 1} versions)" if r.get("versions", 1) > 1 else ""
        facts = f"{r.get('key') or '–'}, {r.get('vocals') or '–'}, energy {energy(r.get('energy'))}"
        click.echo(f"{r['rank']:>3}  {r['score']:.3f}  {where:>11}  {name}  [{r['track_id']}]  ({facts}){versions}")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--start", type=float, help="Use the reference from this time (seconds).")
@click.option("--end", type=float, help="Use the reference up to this time (seconds).")
@search_options
@click.pass_obj
def search(obj, file, start, end, as_json, **opts):
    """The catalog tracks that sound most like FILE."""
    try:
        results = obj.catalog.search_file(file, start=start, end=end, **_search_kwargs(opts))
    except USER_ERRORS as error:
        fail(error)
    print_results(results, as_json)


@cli.command()
@click.argument("track_ids", metavar="TRACK_ID...", nargs=-1, required=True)
@click.option("--unlike", multiple=True, metavar="TRACK_ID",
              help="Less like this catalog track: it and its nearest neighbours are left out (repeatable).")
@search_options
@click.pass_obj
def similar(obj, track_ids, unlike, as_json, **opts):
    """More like this: the tracks that sound most like catalog track TRACK_ID (several: like all of them)."""
    try:
        results = obj.catalog.sounds_like(list(track_ids), unlike=list(unlike), **_search_kwargs(opts))
    except KeyError as error:
        fail(f"no track {error.args[0]!r} in the catalog (see `audiofind tracks`)")
    except USER_ERRORS as error:
        fail(error)
    print_results(results, as_json)


@cli.command()
@click.option("--query", "-q", default="", help="Only tracks whose file, title, artist or album contains this.")
@click.option("--limit", "-n", default=100, show_default=True, type=click.IntRange(1), help="How many tracks.")
@click.option("--offset", default=0, type=click.IntRange(0), help="Skip this many of the newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@click.pass_obj
def tracks(obj, query, limit, offset, as_json):
    """List the catalog's tracks, newest first."""
    catalog = obj.catalog
    rows = catalog.list(offset, limit, query)
    if as_json:
        fields = ("track_id", "file", "title", "artist", "album", "duration", "bpm", "tags", "group_id")
        click.echo(json.dumps([{key: row[key] for key in fields} for row in rows], indent=2))
        return
    for row in rows:
        bpm = f"{row['bpm']:.0f} bpm" if row["bpm"] else "-"
        click.echo(f"{row['track_id']}  {clock(row['duration']):>6}  {bpm:>8}  {row['title'] or row['file']}")
    click.echo(f"{len(rows)} of {catalog.count(query)} tracks", err=True)


@cli.command()
@click.argument("track_ids", nargs=-1, required=True)
@click.pass_obj
def remove(obj, track_ids):
    """Remove tracks (and their stored audio) from the catalog."""
    missing = [track_id for track_id in track_ids if not obj.catalog.remove(track_id)]
    click.echo(f"removed {len(track_ids) - len(missing)}")
    if missing:
        fail(f"no such track: {', '.join(missing)}")


@cli.command("import-metadata")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_metadata(obj, csv_file):
    """Set title, artist, album and tags from a CSV with a `file` column (the original file name)."""
    try:
        outcome = obj.catalog.import_metadata(csv_file)
    except (ValueError, UnicodeDecodeError) as error:
        fail(error)
    click.echo(f"updated {outcome['updated']} tracks; {len(outcome['unmatched'])} rows matched no track")
    for file in outcome["unmatched"][:20]:
        click.echo(f"  no track for {file}")


@cli.command()
@click.pass_obj
def calibrate(obj):
    """Learn how noise and low-bitrate codecs move this catalog's sound, so noisy excerpts are still found
    (ingest and reindex do it once the catalog holds 10 tracks; run it again after much new music)."""
    catalog = obj.catalog
    try:
        catalog.check()
        learned = calibration.calibrate(catalog)
    except USER_ERRORS as error:
        fail(error)
    click.echo(f"calibrated excerpt search on {learned.tracks} tracks in {learned.seconds:.1f} s")


def _calibrate_when_needed(catalog):
    if not calibration.needs_calibration(catalog):
        return
    try:
        learned = calibration.calibrate(catalog)
    except USER_ERRORS as error:
        click.echo(f"could not calibrate excerpt search: {error} (run `audiofind calibrate` again)", err=True)
        return
    click.echo(f"calibrated excerpt search on {learned.tracks} tracks in {learned.seconds:.1f} s")


@cli.command()
@click.pass_obj
def reindex(obj):
    """Re-embed every track with the configured embedder (after changing AUDIOFIND_EMBEDDER). Resumable."""
    catalog = obj.catalog
    try:
        catalog.embedder.check()
        with tqdm(unit="track", file=sys.stderr) as bar:
            failed = catalog.reindex(progress=lambda done, total: (bar.reset(total), bar.update(done)))
    except USER_ERRORS as error:
        fail(error)
    click.echo(f"re-indexed {catalog.count()} tracks with {catalog.embedder.name!r}; failed {len(failed)}")
    _calibrate_when_needed(catalog)
    for line in failed:
        click.echo(f"  failed  {line}", err=True)
    if failed:
        sys.exit(1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (anything but loopback needs AUDIOFIND_ADMIN_TOKEN for admin).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="RQ worker processes.")
@click.pass_obj
def serve(obj, host, port, workers):
    """Run everything on this machine: web server, worker and (if no AUDIOFIND_REDIS_URL) an embedded Redis."""
    run(obj.config, host, port, workers)


@cli.command()
@click.option("--queue", "queues", multiple=True, help="Queues to listen on (default: search, then ingest).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.pass_obj
def worker(obj, queues, burst):
    """Run an RQ worker (needs AUDIOFIND_REDIS_URL)."""
    run_worker(obj.services, list(queues) or None, burst=burst)


@cli.command()
@click.option("--no-wait", is_flag=True, help="Do not wait until the indexes are queryable.")
@click.option("--timeout", default=600, show_default=True, type=int,
              help="Seconds to wait for the Atlas indexes to become queryable.")
@click.pass_obj
def migrate(obj, no_wait, timeout):
    """Create or update the production index definitions (MongoDB Atlas) and, on S3, the lifecycle rule that
    expires left-over uploads. Safe to run twice."""
    config = obj.config
    try:
        if config["INDEX"] == "atlas":
            for report in run_migrations(config, wait=not no_wait, timeout=timeout):
                click.echo(f"{report['name']} on {report['collection']}: {report['action']} ({report['status']})")
        storage = obj.services.storage
        if hasattr(storage, "ensure_upload_expiry"):
            days = max(1, -(-offer_seconds(config) // 86400))
            rule = storage.ensure_upload_expiry(config["UPLOAD_PREFIX"], days)
            click.echo(f"s3://{storage.bucket}/{rule['Filter']['Prefix']}: uploads expire after {days} day(s)")
    except USER_ERRORS as error:
        fail(error)


@cli.command("move-up")
@click.option("--mongodb-uri", envvar="AUDIOFIND_MONGODB_URI", required=True,
              help="The Atlas connection string to move to (AUDIOFIND_MONGODB_URI).")
@click.option("--s3-bucket", envvar="AUDIOFIND_S3_BUCKET", required=True,
              help="The S3 bucket to move the audio to (AUDIOFIND_S3_BUCKET).")
@click.pass_obj
def move_up(obj, mongodb_uri, s3_bucket):
    """Move the embedded catalog (local index + files) into Atlas + S3 without re-embedding. Resumable."""
    source = dict(obj.config, INDEX="local", STORAGE="local")
    target = dict(obj.config, INDEX="atlas", STORAGE="s3", MONGODB_URI=mongodb_uri, S3_BUCKET=s3_bucket)
    try:
        summary = run_move_up(source, target, progress=lambda done, total: click.echo(f"\r{done}/{total}", nl=False, err=True))
    except USER_ERRORS as error:
        fail(error)
    click.echo(f"\nmoved {summary['moved']} of {summary['total']} tracks, {summary['skipped']} already there")
    for file in summary["missing_files"]:
        click.echo(f"  {file}: its audio was missing from local storage; moved without it", err=True)

