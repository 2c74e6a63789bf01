import json

import audiogen

SR = 32000


def make_library(folder):
    (folder / "album one").mkdir()
    for seed in range(3):
        audiogen.write(folder / "album one" / f"song{seed}.flac", audiogen.music(20, SR, seed=seed), SR, "FLAC")
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (folder / "notes.txt").write_text("not audio, and not named like audio: ignored")


def test_ingest_a_folder_reports_added_skipped_and_failed(runner, audio_dir):
    make_library(audio_dir)
    result = runner.invoke(["ingest", str(audio_dir)])
    assert result.exit_code == 1  # one file failed
    assert "added 3, skipped 0, failed 1" in result.stdout
    assert "broken.wav" in result.stderr

    again = runner.invoke(["ingest", str(audio_dir / "album one")])
    assert again.exit_code == 0
    assert "added 0, skipped 3" in again.stdout

    listing = json.loads(runner.invoke(["tracks", "--json"]).stdout)
    assert sorted(t["file"] for t in listing) == ["song0.flac", "song1.flac", "song2.flac"]


def test_search_similar_and_remove(runner, audio_dir):
    make_library(audio_dir)
    runner.invoke(["ingest", str(audio_dir / "album one")])
    reference = audio_dir / "album one" / "song1.flac"

    result = runner.invoke(["search", str(reference), "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["file"] == "song1.flac"
    assert set(hits[0]) >= {"track_id", "file", "title", "score", "match_start", "match_end"}
    assert hits[0]["score"] > hits[1]["score"]

    segment = json.loads(runner.invoke(["search", str(reference), "--start", "5", "--end", "15", "--json",
                                        "--mode", "segment"]).stdout)
    assert segment[0]["file"] == "song1.flac"

    track_id = hits[0]["track_id"]
    neighbours = json.loads(runner.invoke(["similar", track_id, "--json"]).stdout)
    assert [h["file"] for h in neighbours if h["track_id"] == track_id] == []
    assert len(neighbours) == 2

    text = runner.invoke(["similar", track_id])
    assert text.exit_code == 0 and "song" in text.stdout

    assert runner.invoke(["remove", track_id]).exit_code == 0
    missing = runner.invoke(["similar", track_id])
    assert missing.exit_code != 0 and "no track" in missing.stderr


def test_errors_name_the_file_and_exit_non_zero(runner, audio_dir):
    empty = audio_dir / "empty.ogg"
    empty.write_bytes(b"")
    result = runner.invoke(["search", str(empty)])
    assert result.exit_code != 0
    assert "empty.ogg" in result.stderr

    clip = audio_dir / "clip.wav"
    audiogen.write(clip, audiogen.music(5, SR), SR, "WAV")
    result = runner.invoke(["search", str(clip), "--start", "8", "--end", "9"])
    assert result.exit_code != 0 and "clip.wav" in result.stderr


def test_import_metadata_command(runner, audio_dir, tmp_path):
    make_library(audio_dir)
    runner.invoke(["ingest", str(audio_dir / "album one")])
    sheet = tmp_path / "meta.csv"
    sheet.write_text("file,title,album\nsong0.flac,Opening,Suite\nghost.flac,Ghost,\n")
    result = runner.invoke(["import-metadata", str(sheet)])
    assert result.exit_code == 0
    assert "updated 1 tracks; 1 rows matched no track" in result.stdout
    titles = [t["title"] for t in json.loads(runner.invoke(["tracks", "--json", "-q", "suite"]).stdout)]
    assert titles == ["Opening"]


def test_version_help_and_usage_errors(runner):
    from importlib.metadata import version

    shown = runner.invoke(["--version"])
    assert shown.exit_code == 0 and version("audiofind") in shown.stdout
    assert runner.invoke(["-h"]).exit_code == 0 and "Usage: audiofind" in runner.invoke(["-h"]).stdout
    for args in (["search", "-h"], ["tracks", "--help"]):
        helped = runner.invoke(args)
        assert helped.exit_code == 0 and "--limit" in helped.stdout and "How many" in helped.stdout
    wrong = runner.invoke(["tracks", "--limit", "0"])
    assert wrong.exit_code == 2 and "--limit" in wrong.stderr  # the README's documented code for a wrong command line


def test_track_list_counts_what_the_query_matches(runner, audio_dir):
    make_library(audio_dir)
    runner.invoke(["ingest", str(audio_dir)])
    everything = runner.invoke(["tracks"])
    some = runner.invoke(["tracks", "-q", "song1"])
    assert everything.stderr.strip() == "3 of 3 tracks"
    assert some.stderr.strip() == "1 of 1 tracks"  # the total of what matched, not of the catalog


def test_log_level_option_and_json_lines(tmp_path):
    import json
    import subprocess
    import sys

    code = ("import logging, sys; from audiofind.cli import cli; "
            "cli(['--log-level', 'debug', 'tracks', '--json'], standalone_mode=False); "
            "logging.getLogger('audiofind.test').debug('hello')")
    env = {**__import__("os").environ, "AUDIOFIND_LOG_FORMAT": "json", "AUDIOFIND_EMBEDDER": "dsp",
           "AUDIOFIND_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"level": "DEBUG", "logger": "audiofind.test", "message": "hello"}.items() <= lines[-1].items()
