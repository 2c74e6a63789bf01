"""User errors and the API's JSON error shape: {"error": code, "message": text}."""

from flask import jsonify

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         413: "too_large", 415: "unsupported_media_type", 422: "not_audio", 429: "rate_limited", 500: "server_error",
         503: "unavailable"}


class UserError(Exception):
    """Bad input from the user: the message is shown as is, with ``status``."""

    def __init__(self, message, status=400, code="bad_request"):
        super().__init__(message)
        self.status, self.code = status, code


def error(status, message, code=None):
    response = jsonify(error=code or CODES.get(status, "error"), message=message)
    response.status_code = status
    return response
