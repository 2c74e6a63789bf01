"""Settings: defaults, then the instance folder's config.py, then AUDIOFIND_* variables, then the caller's own;
typed, and refused at start-up with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audiofind.config import DEFAULTS, ConfigError, load_config


def test_later_sources_win_and_values_get_the_default_type(tmp_path):
    (tmp_path / "config.py").write_text('JOB_RETRIES = 5\nRELATED_KEY = "album"\nMAX_DURATION = 600\n')
    env = {"AUDIOFIND_DATA_DIR": str(tmp_path), "AUDIOFIND_JOB_RETRIES": " 3 ", "AUDIOFIND_ADMIN_TOKEN": "007",
           "AUDIOFIND_ENTRY_POINT_PLUGINS": "off"}
    config = load_config({"RELATED_LIMIT": 7}, environ=env)
    assert config["JOB_RETRIES"] == 3  # the environment over config.py
    assert config["RELATED_KEY"] == "album" and config["MAX_DURATION"] == 600.0
    assert config["ADMIN_TOKEN"] == "007"  # text stays text: not the number 7
    assert config["ENTRY_POINT_PLUGINS"] is False and config["RELATED_LIMIT"] == 7
    assert config["EMBEDDER"] == DEFAULTS["EMBEDDER"]
    assert config["SECRET_KEY"] and load_config(environ=env)["SECRET_KEY"] == config["SECRET_KEY"]


@pytest.mark.parametrize("name, value, message", [
    ("AUDIOFIND_JOB_RETRIES", "two", "AUDIOFIND_JOB_RETRIES must be a whole number, not 'two'"),
    ("AUDIOFIND_MAX_UPLOAD_BYTES", "0", "AUDIOFIND_MAX_UPLOAD_BYTES must be at least 1"),
    ("AUDIOFIND_MAX_DURATION", "nan", "AUDIOFIND_MAX_DURATION must be at least"),
    ("AUDIOFIND_PANNS_ENGINE", "fast", "AUDIOFIND_PANNS_ENGINE='fast' is not one of auto, winograd, onnx, torch"),
    ("AUDIOFIND_ENTRY_POINT_PLUGINS", "maybe", "AUDIOFIND_ENTRY_POINT_PLUGINS must be true or false"),
    ("AUDIOFIND_MIN_DURATION", "9000", "AUDIOFIND_MIN_DURATION must be below AUDIOFIND_MAX_DURATION"),
])
def test_a_bad_value_is_refused_naming_the_variable(tmp_path, name, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(environ={"AUDIOFIND_DATA_DIR": str(tmp_path), name: value})
    assert message in str(error.value)


def test_a_bad_value_in_config_py_names_the_file(tmp_path):
    (tmp_path / "config.py").write_text('UPLOAD_URL_EXPIRES = "soon"\n')
    with pytest.raises(ConfigError, match=f"UPLOAD_URL_EXPIRES in {tmp_path / 'config.py'} must be a whole number"):
        load_config(environ={"AUDIOFIND_DATA_DIR": str(tmp_path)})


def test_the_command_refuses_to_start_with_the_reason(tmp_path):
    command = Path(sys.executable).with_name("audiofind")
    env = {**os.environ, "AUDIOFIND_DATA_DIR": str(tmp_path), "AUDIOFIND_SEARCH_JOB_TIMEOUT": "-5"}
    done = subprocess.run([str(command), "tracks"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "Error: AUDIOFIND_SEARCH_JOB_TIMEOUT must be at least 1, not -5"
