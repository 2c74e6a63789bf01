"""The app factory: configuration, services and blueprints."""

from flask import Flask

from audiofind.config import load_config
from audiofind.routes import register_blueprints
from audiofind.routes.context import get_catalog, services  # noqa: F401 (the getters, for the app's users)
from audiofind.services import Services


def create_app(config=None, *, plugins=()):
    app = Flask("audiofind", instance_relative_config=False)
    app.config.update(load_config(config))
    app.instance_path = app.config["DATA_DIR"]

    app.extensions["audiofind"] = Services(app.config, plugins=plugins)

    register_blueprints(app)
    return app
