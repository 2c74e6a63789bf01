"""The metadata import job: apply an uploaded CSV (title, artist, album, tags by file name) to the catalog."""

from audiofind.jobs._common import job_services, set_stage, upload_copy, user_errors


def run_metadata_import(key, filename):
    """Returns {updated, unmatched} (unmatched: the file names with no track)."""
    services = job_services()
    with user_errors():
        set_stage("importing")
        with upload_copy(services, key) as path:
            return services.catalog.import_metadata(path, name=filename)
