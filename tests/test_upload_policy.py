"""One upload policy (audiofind/upload_policy.py): the page's file inputs, its script, the CLI, the storages and
the API take the same audio formats and size limit."""

import html
import json
import re
from pathlib import Path

from audiofind import upload_policy
from audiofind.app import services
from audiofind.cli import audio_files
from audiofind.storage.base import content_type_for

STATIC = Path(__file__).resolve().parent.parent / "audiofind" / "static"


def test_the_pages_file_inputs_accept_the_policys_formats_and_limit(app, client):
    app.config["MAX_UPLOAD_BYTES"] = 12345
    for url in ("/", "/admin/"):
        page = client.get(url).get_data(as_text=True)
        inputs = re.findall(r'<input type="file"[^>]*accept="([^"]+)"[^>]*>', page)
        assert inputs and all(accept == upload_policy.ACCEPT for accept in inputs if accept.startswith("audio/"))
        assert 'data-max-upload="12345"' in page
        stages = re.search(r'data-stages="([^"]+)"', page).group(1)
        assert json.loads(html.unescape(stages))["uploading"] == "Uploading…"
    script = (STATIC / "app.js").read_text()
    assert not re.search(r"\.(mp3|wav|flac)\b", script) and "Uploading…" not in script  # read from the page


def test_the_cli_storages_and_api_take_every_format(app, client, tmp_path):
    for suffix in upload_policy.FORMATS:
        (tmp_path / f"take{suffix}").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    assert {path.suffix for path in audio_files([tmp_path])} == set(upload_policy.FORMATS)
    storage = services(app).storage
    for suffix, (content_type, _, _) in upload_policy.FORMATS.items():
        key = storage.new_key(f"My Take{suffix.upper()}")
        assert key.endswith(suffix) and content_type_for(key) == content_type
    answer = client.post("/api/v1/uploads", json={"filename": "take.mka", "size": 10})  # no type from the browser
    assert answer.status_code == 201 and answer.json["key"].endswith(".mka")
    app.config["MAX_UPLOAD_BYTES"] = 2**20
    big = client.post("/api/v1/uploads", json={"filename": "take.webm", "size": 3 * 2**20})
    assert big.status_code == 413 and big.json["message"] == "take.webm is too large: 3.0 MB, the limit is 1.0 MB"
