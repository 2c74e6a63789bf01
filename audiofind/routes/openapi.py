"""The OpenAPI 3.1 description of /api/v1, written by hand next to the routes it describes."""

from audiofind.catalog import DEFAULT_MODE, SEARCH_MODES
from audiofind.index.filters import filters_model


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description):
    return _json(_ref("Error"), description)


def _query(name, schema, description):
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _filter_query():
    """The filters as query parameters (list filters as comma-separated text), from the filter table."""
    for name, schema in FILTERS["properties"].items():
        one = next(s for s in schema["anyOf"] if s.get("type") != "null" and s.get("type") != "array")
        yield _query(name, dict(one), schema.get("description", ""))


FILTERS = filters_model().model_json_schema()
TRACK_ID = {"name": "track_id", "in": "path", "required": True, "schema": {"type": "string"}}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
ADMIN = [{"bearer": []}]

FILTER_QUERY = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, "How many results."),
    _query("mode", {"type": "string", "enum": list(SEARCH_MODES), "default": DEFAULT_MODE},
           "auto (segments for an excerpt of a catalog track, else whole tracks), whole tracks or best segments."),
    *_filter_query(),
    _query("per_album", {"type": "integer", "minimum": 1}, "At most this many results per album."),
    _query("per_artist", {"type": "integer", "minimum": 1}, "At most this many results per artist."),
    _query("collapse_versions", {"type": "boolean", "default": True}, "One result per group of versions."),
]

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string", "examples": ["not_audio"]}, "message": {"type": "string"}},
    },
    "Filters": FILTERS,
    "Track": {
        "type": "object",
        "required": ["track_id", "file"],
        "properties": {
            "track_id": {"type": "string"},
            "file": {"type": "string", "description": "The original file name."},
            "title": {"type": "string"},
            "artist": {"type": "string"},
            "album": {"type": "string"},
            "duration": {"type": "number", "description": "Seconds."},
            "bpm": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "array", "items": {"type": "array"}, "description": "[label, score], best first."},
            "group_id": {"type": "string", "description": "Shared by tracks that are versions of each other."},
            "playback_url": {"type": ["string", "null"], "description": "Signed, expiring audio URL."},
            "url": {"type": "string", "description": "The track's page."},
        },
    },
    "Result": {
        "allOf": [
            _ref("Track"),
            {
                "type": "object",
                "required": ["rank", "score", "match_start", "match_end"],
                "properties": {
                    "rank": {"type": "integer"},
                    "score": {"type": "number", "description": "Similarity (cosine), higher is closer."},
                    "match_start": {"type": ["number", "null"], "description": "Best-matching region, seconds."},
                    "match_end": {"type": ["number", "null"]},
                    "versions": {"type": "integer", "description": "Versions collapsed into this result."},
                },
            },
        ]
    },
    "JobStatus": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "started", "finished", "failed"]},
            "stage": {"type": ["string", "null"], "enum": ["queued", "analyzing", "searching", "done", "failed", None]},
            "error": {"type": ["string", "null"], "description": "Why the job failed, for people."},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["id", "status_url"],
        "properties": {"id": {"type": "string"}, "status_url": {"type": "string"}},
    },
}


def openapi_document(server_url):
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Audio Find API",
            "version": "1",
            "description": (
                "Find catalog tracks that sound like a reference file. Upload flow: POST /uploads, send the "
                "bytes to upload_url with the given method and headers, then POST /searches with the key and "
                "poll status_url until status is finished or failed."
            ),
        },
        "servers": [{"url": f"{server_url}/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"}},
        },
        "paths": {
            "/uploads": {
                "post": {
                    "summary": "Get a signed URL to upload one audio file to",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["filename", "size"],
                        "properties": {"filename": {"type": "string"}, "content_type": {"type": "string"},
                                       "size": {"type": "integer", "description": "Bytes."}},
                    }}}},
                    "responses": {
                        "201": _json({"type": "object", "properties": {
                            "upload_url": {"type": "string"}, "method": {"type": "string"},
                            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                            "key": {"type": "string"}}}, "Send the file to upload_url"),
                        "400": _error("Bad input"),
                        "413": _error("File too large"),
                        "422": _error("Not an audio file"),
                    },
                }
            },
            "/searches": {
                "post": {
                    "summary": "Start a search with an uploaded file",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["key"],
                        "properties": {
                            "key": {"type": "string"},
                            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                            "start": {"type": "number", "description": "Use the file from here (seconds)."},
                            "end": {"type": "number"},
                            "mode": {"type": "string", "enum": list(SEARCH_MODES), "default": DEFAULT_MODE},
                            "per_album": {"type": "integer"},
                            "per_artist": {"type": "integer"},
                            "collapse_versions": {"type": "boolean", "default": True},
                            "filters": _ref("Filters"),
                        },
                    }}}},
                    "responses": {"202": _json(_ref("Accepted"), "Search queued"), "400": _error("Bad input"),
                                  "413": _error("File too large"), "503": _error("Queue unavailable")},
                }
            },
            "/searches/{job_id}": {
                "get": {
                    "summary": "A search's status and, when finished, its results",
                    "parameters": [JOB_ID],
                    "responses": {
                        "200": _json({"allOf": [_ref("JobStatus"), {"type": "object", "properties": {
                            "results": {"type": "array", "items": _ref("Result")}}}]}),
                        "404": _error("Unknown or expired"),
                    },
                }
            },
            "/tracks": {
                "get": {
                    "summary": "List catalog tracks, newest first",
                    "parameters": [
                        _query("cursor", {"type": "string"}, "The next_cursor of the page before (fast at any depth)."),
                        _query("offset", {"type": "integer", "minimum": 0}, "Skip this many (instead of a cursor)."),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size."),
                        _query("q", {"type": "string"}, "Substring of file, title, artist or album."),
                    ],
                    "responses": {"200": _json({"type": "object", "properties": {
                        "tracks": {"type": "array", "items": _ref("Track")}, "total": {"type": "integer"},
                        "offset": {"type": "integer"}, "limit": {"type": "integer"},
                        "next_cursor": {"type": ["string", "null"], "description": "null on the last page"}}})},
                },
                "post": {
                    "summary": "Ingest an uploaded file into the catalog (admin)",
                    "security": ADMIN,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["key"],
                        "properties": {"key": {"type": "string"}, "filename": {"type": "string"},
                                       "metadata": {"type": "object", "properties": {
                                           "title": {"type": "string"}, "artist": {"type": "string"},
                                           "album": {"type": "string"}, "tags": {"type": "string"}}}},
                    }}}},
                    "responses": {"202": _json(_ref("Accepted"), "Ingest queued"), "400": _error("Bad input"),
                                  "401": _error("No token"), "403": _error("Wrong token")},
                },
            },
            "/tracks/{track_id}": {
                "get": {"summary": "One track", "parameters": [TRACK_ID],
                        "responses": {"200": _json(_ref("Track")), "404": _error("No such track")}},
                "delete": {"summary": "Remove a track and its audio (admin)", "security": ADMIN,
                           "parameters": [TRACK_ID],
                           "responses": {"204": {"description": "Removed"}, "401": _error("No token"),
                                         "403": _error("Wrong token"), "404": _error("No such track")}},
            },
            "/tracks/{track_id}/similar": {
                "get": {
                    "summary": "More like this: the track's neighbours, never itself",
                    "parameters": [TRACK_ID, *FILTER_QUERY],
                    "responses": {"200": _json({"type": "object", "properties": {
                        "track_id": {"type": "string"},
                        "results": {"type": "array", "items": _ref("Result")}}}),
                        "400": _error("Bad input"), "404": _error("No such track")},
                }
            },
            "/ingests/{job_id}": {
                "get": {
                    "summary": "An ingest job's status and outcome (admin)",
                    "security": ADMIN,
                    "parameters": [JOB_ID],
                    "responses": {"200": _json({"allOf": [_ref("JobStatus"), {"type": "object", "properties": {
                        "file": {"type": "string"},
                        "result": {"type": ["object", "null"], "properties": {
                            "status": {"type": "string", "enum": ["added", "duplicate"]},
                            "track_id": {"type": "string"}, "version_of": {"type": ["string", "null"]}}}}}]}),
                        "404": _error("Unknown or expired")},
                }
            },
        },
    }
