"""htmx requests and answers, through flask-htmx: ``htmx`` is true for a request htmx sent (HX-Request)."""

from flask import render_template
from flask_htmx import HTMX, make_response

htmx = HTMX()  # bound by init_app in register_blueprints; reads the current request


def render(full, partial, status=200, **context):
    """The full page, or only its partial for an htmx request; one URL, so caches must vary on HX-Request."""
    response = make_response(render_template(partial if htmx else full, **context), status)
    response.vary.add("HX-Request")
    return response


def toast(message, kind="error", status=200):
    """A pop-up only: htmx leaves the request's target alone (HX-Reswap: none) and adds the toast."""
    return make_response(render_template("_toast.html", message=message, kind=kind), status, reswap="none")


def redirect(url, status=200):
    """Have htmx load ``url`` as a whole page (HX-Redirect), as a plain redirect would."""
    return make_response("", status, redirect=url)
