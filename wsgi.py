"""`gunicorn wsgi:app` from a checkout; the installed package's entry point is audiofind.wsgi:app."""

from audiofind.wsgi import app  # noqa: F401
