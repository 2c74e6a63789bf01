"""Every hook, exercised by one plugin that implements all of them, as its users would see it."""

import pytest

import audiogen
from audiofind import hookimpl, hookspecs
from audiofind.app import create_app, get_catalog
from audiofind.embedders.dsp import DspEmbedder
from audiofind.index.local import LocalIndex
from audiofind.plugins import PluginConflict
from audiofind.storage.local import LocalStorage

SR = 22050


class MoodEmbedder(DspEmbedder):
    name = "mood-dsp"


class MoodIndex(LocalIndex):
    name = "mood-index"


class MoodStorage(LocalStorage):
    name = "mood-storage"


class MoodPlugin:
    """Registers a backend of each kind, adds a "mood" field to tracks and records every ingest."""

    def __init__(self):
        self.ingested = []
        self.removed = []

    @hookimpl
    def register_embedders(self):
        return [MoodEmbedder]

    @hookimpl
    def register_indexes(self):
        return [MoodIndex]

    @hookimpl
    def register_storages(self):
        return [MoodStorage]

    @hookimpl
    def extra_track_fields(self, config):
        return ["mood"]

    @hookimpl
    def track_details(self, tracks, config):
        return {track["track_id"]: {"mood": "calm" if track["duration"] < 12 else "restless"} for track in tracks}

    @hookimpl
    def after_ingest(self, track, catalog):
        self.ingested.append((track.track_id, track.embedder))

    @hookimpl
    def after_remove(self, track, catalog):
        self.removed.append(track.track_id)


HOOKS = sorted(name for name in vars(hookspecs) if callable(getattr(hookspecs, name))
               and hasattr(getattr(hookspecs, name), "audiofind_spec"))


def test_the_plugin_implements_every_hook():
    assert HOOKS and HOOKS == sorted(name for name in vars(MoodPlugin) if not name.startswith("_"))


@pytest.fixture
def plugged(app_config, audio_dir):
    plugin = MoodPlugin()
    app = create_app({**app_config, "EMBEDDER": "mood-dsp", "INDEX": "mood-index", "STORAGE": "mood-storage"},
                     plugins=[plugin])
    catalog = get_catalog(app)
    ids = []
    for seconds, seed in ((10, 1), (20, 2)):
        path = audio_dir / f"piece{seed}.wav"
        audiogen.write(path, audiogen.music(seconds, SR, seed=seed), SR, "WAV")
        ids.append(catalog.ingest(path).track.track_id)
    return app, plugin, ids


def test_plugin_backends_serve_the_catalog_and_after_ingest_sees_each_track(plugged):
    app, plugin, ids = plugged
    catalog = get_catalog(app)
    assert type(catalog.embedder) is MoodEmbedder and type(catalog.index) is MoodIndex
    assert type(catalog.storage) is MoodStorage
    assert [track_id for track_id, _ in plugin.ingested] == ids
    assert catalog.get(ids[0])["embedder"].startswith("mood-dsp")


def test_reindex_calls_after_ingest_again_for_every_track(plugged):
    app, plugin, ids = plugged
    plugin.ingested.clear()
    assert get_catalog(app).reindex() == []
    assert sorted(track_id for track_id, _ in plugin.ingested) == sorted(ids)


def test_after_remove_sees_a_removed_track(plugged):
    app, plugin, ids = plugged
    assert get_catalog(app).remove(ids[0])  # an index of a plugin keeps no shortlists: removing still works
    assert plugin.removed == [ids[0]] and get_catalog(app).get(ids[0]) is None


def test_extra_fields_reach_results_the_api_and_the_track_page(plugged):
    app, _, ids = plugged
    catalog = get_catalog(app)
    assert catalog.extra_fields() == ["mood"]
    assert [r["mood"] for r in catalog.similar(ids[0])] == ["restless"]
    client = app.test_client()
    assert client.get(f"/api/v1/tracks/{ids[0]}").json["mood"] == "calm"
    page = client.get(f"/tracks/{ids[1]}").get_data(as_text=True)
    assert "<dt>Mood</dt><dd>restless</dd>" in page


def test_without_the_plugin_the_page_shows_no_extra_field(app, audio_dir):
    path = audio_dir / "plain.wav"
    audiogen.write(path, audiogen.music(10, SR, seed=3), SR, "WAV")
    track_id = get_catalog(app).ingest(path).track.track_id
    assert "Mood" not in app.test_client().get(f"/tracks/{track_id}").get_data(as_text=True)


class Rival:
    @hookimpl
    def register_indexes(self):
        class OtherIndex(LocalIndex):
            name = "mood-index"

        return [OtherIndex]


def test_two_plugins_registering_one_backend_name_is_an_error_naming_both(app_config):
    app = create_app({**app_config, "INDEX": "mood-index"}, plugins=[MoodPlugin(), Rival()])
    with pytest.raises(PluginConflict) as error:
        get_catalog(app).index
    assert str(error.value) == ("two plugins register the index 'mood-index': "
                                "test_plugins.MoodPlugin and test_plugins.Rival")
