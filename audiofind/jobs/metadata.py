"""The metadata import job: apply an uploaded CSV (title, artist, album, tags by file name) to the catalog."""

from audiofind.jobs._common import set_stage, upload_copy, user_errors
from audiofind.jobs.queue import worker_app


def run_metadata_import(key, filename):
    """Returns {updated, unmatched} (unmatched: the file names with no track)."""
    from audiofind.app import get_catalog

    app = worker_app()
    with app.app_context(), user_errors():
        set_stage("importing")
        with upload_copy(app, key) as path:
            return get_catalog(app).import_metadata(path, name=filename)
