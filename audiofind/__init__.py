"""Audio Find: search a music catalog by sound."""

from audiofind.hookspecs import hookimpl

__all__ = ["create_app", "hookimpl"]
__version__ = "0.1.0"


def create_app(config=None):
    from audiofind.app import create_app as factory

    return factory(config)
