"""The metadata import job: apply an uploaded CSV (title, artist, album, tags by file name) to the catalog."""

from audiofind import uploads
from audiofind.jobs._common import set_stage, user_errors, will_retry
from audiofind.jobs.queue import redis_connection, worker_app


def run_metadata_import(key, filename):
    """Returns {updated, unmatched} (unmatched: the file names with no track)."""
    from audiofind.app import get_catalog, services

    app = worker_app()
    with app.app_context(), user_errors():
        storage = services(app).storage
        set_stage("importing")
        try:
            with storage.local_copy(key) as path:
                outcome = get_catalog(app).import_metadata(path, name=filename)
        except Exception as error:
            if not will_retry(error):
                uploads.release(redis_connection(app), storage, key)
            raise
        uploads.release(redis_connection(app), storage, key)
        return outcome
