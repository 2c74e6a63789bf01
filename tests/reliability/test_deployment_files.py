"""The Procfile, compose.yaml and Dockerfile run the processes that test_topology.py runs, with its environment."""

import json
import re
import shlex
from pathlib import Path

import yaml

import production

ROOT = Path(__file__).resolve().parents[2]


def test_procfile():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert {name: shlex.split(command) for name, command in lines.items()} == production.COMMANDS


def test_compose():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name, role in (("web", "web"), ("worker", "worker"), ("worker-gpu", "worker")):
        assert services[name]["command"] == production.COMMANDS[role], name
        assert set(production.ENVIRONMENT) <= set(services[name]["environment"]), name
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert "--requirepass" in services["redis"]["command"][-1]
    assert services["web"]["environment"]["AUDIOFIND_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert text.splitlines()[1].startswith("FROM python:3.11-slim")
    cmd = re.search(r"^CMD (.+)$", text, re.M).group(1)
    assert json.loads(cmd) == production.WEB
    assert "pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert text.index("torch==2.13.0") < text.index("/wheels/*.whl")  # torch first: the wheel does not pick one
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*/readyz", text, re.M) and re.search(r"^VOLUME .*/data/models", text, re.M)
