"""Musical facts at ingest and reindex: key, vocals and energy on the catalog's tracks, their filters through
the page's "more like this", the track page, and tracks from before the facts (none until reindex)."""

import re

import pytest
from test_web import text

from audiofind import musicfacts
from audiofind.app import get_catalog
from audiofind.index.filters import Filters, parse_filters
from tests import audiogen, musicgen

SR = 22050
PIECES = {  # title: (audio, key, vocals)
    "Saw": (lambda: musicgen.progression(9, "minor", 9.6, SR, "saw", drums=True), "A minor", "instrumental"),
    "Piano": (lambda: musicgen.progression(0, "major", 9.6, SR, "piano", drums=True), "C major", "instrumental"),
    "Organ": (lambda: musicgen.progression(6, "minor", 9.6, SR, "organ", drums=True), "F# minor", "instrumental"),
    "Song": (lambda: musicgen.mix((musicgen.progression(2, "major", 9.6, SR, "piano", seed=1, drums=True), 0),
                                  (musicgen.sung(2, "major", 9.6, SR, seed=1), -3)), None, "vocal"),
}


@pytest.fixture
def catalog(app, audio_dir):
    catalog = get_catalog(app)
    for title, (make, _, _) in PIECES.items():
        path = audio_dir / f"{title}.wav"
        audiogen.write(path, make(), SR, "WAV")
        catalog.ingest(path, metadata={"title": title})
    return catalog


def by_title(catalog):
    return {t["title"]: t for t in catalog.list(0, 50)}


def test_ingest_measures_key_camelot_vocals_and_energy(catalog):
    tracks = by_title(catalog)
    for title, (_, key, vocals) in PIECES.items():
        track = tracks[title]
        if key:
            assert track["key"] == key
            assert track["camelot"] == musicfacts.camelot(*musicfacts.parse_key(key))
        else:
            assert track["key"] in musicfacts.KEY_NAMES
        assert track["vocals"] == vocals, title
        assert 0 <= track["energy"] <= 1


def titles(html):
    return set(re.findall(r'<h3><a href="/tracks/[^"]+">([^<]+)</a>', html))


def test_more_like_this_filters_by_key_compatible_keys_vocals_and_energy(client, catalog):
    tracks = by_title(catalog)
    song = tracks["Song"]["track_id"]
    assert titles(text(client.get(f"/tracks/{song}/similar?musical_key=A+minor"))) == {"Saw"}
    # C major mixes with A minor (its relative), G major and F major; not with F# minor
    assert titles(text(client.get(f"/tracks/{song}/similar?compatible_keys=C+major"))) == {"Saw", "Piano"}
    assert titles(text(client.get(f"/tracks/{song}/similar?compatible_keys=8B"))) == {"Saw", "Piano"}
    saw = tracks["Saw"]["track_id"]
    assert titles(text(client.get(f"/tracks/{saw}/similar?vocals=vocal"))) == {"Song"}
    assert titles(text(client.get(f"/tracks/{saw}/similar?vocals=instrumental"))) == {"Piano", "Organ"}
    energies = sorted(t["energy"] for t in tracks.values())
    middle = (energies[1] + energies[2]) / 2
    kept = titles(text(client.get(f"/tracks/{song}/similar?min_energy={middle}")))
    assert kept == {t for t, x in tracks.items() if x["energy"] >= middle and t != "Song"}


def test_results_and_the_track_page_show_the_facts_and_the_energy_on_the_loudness_picture(client, catalog):
    tracks = by_title(catalog)
    html = text(client.get(f"/tracks/{tracks['Piano']['track_id']}"))
    assert "<dt>Key</dt><dd>C major</dd>" in html
    assert "<dt>Vocals</dt><dd>instrumental</dd>" in html
    assert f"<dt>Energy</dt><dd>{tracks['Piano']['energy']:.2f}" in html
    assert "8B" in html and "mixes with" in html
    assert html.count('class="energy-line"') >= 2  # the track's picture and its neighbours'
    assert '<span class="key" title="Key">A minor</span>' in html  # a neighbour in the results


def test_a_track_from_before_the_facts_is_kept_out_of_facts_filters_shown_as_dashes_and_filled_by_reindex(
        client, catalog):
    old = by_title(catalog)["Saw"]["track_id"]
    catalog.index.update(old, {"key": "", "camelot": "", "vocals": "", "energy": None})
    song = by_title(catalog)["Song"]["track_id"]
    for query in ("musical_key=A+minor", "compatible_keys=Am", "vocals=instrumental", "min_energy=0", "max_energy=1"):
        assert "Saw" not in titles(text(client.get(f"/tracks/{song}/similar?{query}"))), query
    html = text(client.get(f"/tracks/{song}/similar"))
    saw = html[html.index(">Saw</a>"):]
    assert '<span class="key" title="Key">–</span>' in saw[:3000] and "energy –" in saw[:3000]
    assert "Saw" not in {r["title"] for r in catalog.similar(song, filters=Filters(**parse_filters({"musical_key": "A minor"})))}
    assert catalog.reindex() == []
    again = by_title(catalog)["Saw"]
    assert again["key"] == "A minor" and again["vocals"] == "instrumental" and again["energy"] is not None
