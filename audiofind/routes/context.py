"""The app's services, reached from a request (or an app context)."""

from flask import current_app


def services(app=None):
    return (app or current_app).extensions["audiofind"]


def get_catalog(app=None):
    return services(app).catalog
