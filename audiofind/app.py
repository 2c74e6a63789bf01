"""The app factory: configuration, services and blueprints."""

import os
from pathlib import Path

from flask import Flask

from audiofind.config import DEFAULTS, raw_strings_from_env
from audiofind.routes import register_blueprints
from audiofind.routes.context import get_catalog, services  # noqa: F401 (the getters, for the app's users)
from audiofind.services import Services


def create_app(config=None, *, plugins=()):
    app = Flask("audiofind", instance_relative_config=False)
    app.config.update(DEFAULTS)
    # The instance folder (DATA_DIR) may be set by the test dict or the environment; find it first.
    data_dir = (config or {}).get("DATA_DIR") or os.environ.get("AUDIOFIND_DATA_DIR") or DEFAULTS["DATA_DIR"]
    app.config["DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    app.config.from_pyfile(str(Path(app.config["DATA_DIR"]) / "config.py"), silent=True)
    app.config.from_prefixed_env("AUDIOFIND")
    raw_strings_from_env(app.config, os.environ)
    if config:
        app.config.update(config)
    app.instance_path = app.config["DATA_DIR"]
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))

    app.extensions["audiofind"] = Services(app.config, plugins=plugins)

    register_blueprints(app)
    return app


def _instance_secret(folder: Path) -> str:
    """A signing key kept in the instance folder so signed URLs survive restarts."""
    path = folder / "secret_key"
    if not path.exists():
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()


