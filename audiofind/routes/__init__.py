"""One blueprint per area."""


def register_blueprints(app):
    pass
