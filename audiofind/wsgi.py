"""The WSGI entry point for production: `gunicorn -c python:audiofind.gunicorn_conf audiofind.wsgi:app`.

Configuration comes from AUDIOFIND_* variables. Run workers separately with `audiofind worker`;
`audiofind serve` runs everything on one machine instead."""

from audiofind.app import create_app

app = create_app()
