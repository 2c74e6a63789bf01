"""What the browser tests share: Debian's chromium, `audiofind serve` started as a user starts it over an instance
folder the test filled, and screenshots kept in test-output/ (and the test's tmp_path)."""

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="needs Debian's chromium (apt-get install chromium)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(data_dir):
    """`audiofind serve` (gunicorn, a worker, embedded Redis) on the catalog in ``data_dir``; yields its URL."""
    env = {**os.environ, "AUDIOFIND_EMBEDDER": "dsp", "AUDIOFIND_SECRET_KEY": "test"}
    env.pop("AUDIOFIND_REDIS_URL", None)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from audiofind.cli import main; main()", "--data-dir", str(data_dir),
         "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    line = ""
    while "running at" not in line:
        line = process.stdout.readline()
        if not line:
            pytest.fail("audiofind serve exited: " + process.stdout.read())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def screenshot(page, tmp_path, name):
    """``name``.png in tmp_path, kept as test-output/browser-``name``.png."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(tmp_path / f"{name}.png", OUTPUT / f"browser-{name}.png")


def drop_file(page, path, mime):
    """Drop the file at ``path`` on the page's drop zone, as a user dragging it from their desktop would."""
    transfer = page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: mime}));
            return dt;
        }""",
        [base64.b64encode(Path(path).read_bytes()).decode(), Path(path).name, mime],
    )
    page.dispatch_event("[data-dropzone]", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})
