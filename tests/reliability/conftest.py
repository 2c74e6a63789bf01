"""The fixtures of the reliability suite: a Redis server and an `audiofind serve` per test module."""

import pytest

from serving import RedisServer, Served


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def served(redis_server, tmp_path_factory):
    redis_server.client().flushdb()
    server = Served(tmp_path_factory.mktemp("served") / "instance", redis_server)
    yield server
    server.stop()
