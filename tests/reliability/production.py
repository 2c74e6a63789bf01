"""The production processes, defined once: the topology test runs exactly these, and the Procfile, compose.yaml
and Dockerfile are checked against them (test_deployment_files.py)."""

WEB = ["gunicorn", "-c", "python:audiofind.gunicorn_conf", "audiofind.wsgi:app"]
WORKER = ["audiofind", "worker"]
COMMANDS = {"web": WEB, "worker": WORKER}

# What every web and worker process is given (values are the deployment's own): the queue, the storage, the
# admin token, the signing key, the instance folder that holds the local index, and JSON logs.
ENVIRONMENT = (
    "AUDIOFIND_REDIS_URL",
    "AUDIOFIND_STORAGE",
    "AUDIOFIND_S3_BUCKET",
    "AUDIOFIND_S3_ENDPOINT_URL",
    "AUDIOFIND_S3_REGION",
    "AUDIOFIND_ADMIN_TOKEN",
    "AUDIOFIND_SECRET_KEY",
    "AUDIOFIND_DATA_DIR",
    "AUDIOFIND_LOG_FORMAT",
)
