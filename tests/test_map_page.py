"""The map page (/map) over a real catalog: no map yet (never a 500; admins can compute it), the map job from the
page, colour options, zooming by links, a track and a search drawn on it, and new tracks placed on it."""

import re

import pytest
from test_api import upload
from test_web import text

import audiogen
import musicgen
from audiofind.app import get_catalog, services
from audiofind.jobs.worker import run_worker

SR = 22050
N = 36


@pytest.fixture
def catalog(app, audio_dir, empty_queue):
    catalog = get_catalog(app)
    for i in range(N):
        path = audio_dir / f"t{i}.wav"
        signal = musicgen.progression(i % 12, ("major", "minor")[i % 2], 3.0, SR, list(musicgen.TIMBRES)[i % 5],
                                      bpm=80 + 10 * (i % 8), seed=i, drums=i % 3 == 0)
        audiogen.write(path, signal, SR, "WAV")
        catalog.ingest(path, metadata={"title": f"Track {i}", "album": f"Album {i % 3}", "tags": f"tag{i % 2}"})
    return catalog


@pytest.fixture
def mapped(app, client, catalog):
    assert client.post("/map/layout").status_code == 202
    run_worker(services(app), burst=True)
    return catalog


def svg_of(html):
    return re.search(r"<svg[^>]*class=\"catalog-map\".*?</svg>", html, re.S).group(0)


def test_without_a_map_the_page_says_so_and_offers_admins_to_compute_it(client, catalog):
    html = text(client.get("/map"))
    assert "The catalog has no map yet." in html and "Compute the map" in html
    assert 'href="/map"' in text(client.get("/"))  # the nav links to it


def test_without_a_map_others_are_told_an_administrator_computes_it(app, client, catalog):
    app.config["ADMIN_TOKEN"] = "secret"
    html = text(client.get("/map"))
    assert "The catalog has no map yet." in html and "Compute the map" not in html
    assert "An administrator can compute it" in html
    assert client.post("/map/layout").status_code == 401


def test_the_map_job_from_the_page_then_every_track_is_a_link_to_its_page(app, client, mapped):
    status = text(client.get("/map/layout"))
    assert f"Map of {N} tracks (tsne)" in status and "Recompute the map" in status
    html = text(client.get("/map"))
    svg = svg_of(html)
    assert f'data-tracks="{N}"' in svg and 'data-viewport="0 0 1 1"' in svg
    ids = set(re.findall(r'<a href="/tracks/([0-9a-f]+)"', svg))
    assert ids == {t["track_id"] for t in mapped.list(0, 100)}
    assert "Album 0" in svg  # coloured by album by default: its legend


def test_colour_by_bpm_band_energy_or_tag(client, mapped):
    assert ">110-130<" in svg_of(text(client.get("/map?colour=bpm")))
    assert ">0.4-0.6<" in svg_of(text(client.get("/map?colour=energy")))
    assert ">tag0<" in svg_of(text(client.get("/map?colour=tag")))
    assert client.get("/map?colour=mood").status_code == 400


def test_zooming_in_and_out_are_links_that_keep_the_colour(client, mapped):
    whole = text(client.get("/map?colour=bpm"))
    cells = re.findall(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#map-view" hx-push-url="true" class="zoom-in"',
                       whole)
    assert len(cells) == 16 and all("colour=bpm" in c and "x0=" in c for c in cells)
    counts = []
    for cell in cells:
        partial = client.get(cell.replace("&amp;", "&"), headers={"HX-Request": "true"})
        body = text(partial)
        assert partial.status_code == 200 and "<html" not in body  # htmx swaps the view only
        counts.append(int(re.search(r'data-tracks="(\d+)"', body).group(1)))
        assert "Zoom out" in body and "Whole map" in body
    assert max(counts) < N and sum(counts) >= N  # each region holds part of the map; together all of it
    zoomed = text(client.get("/map?x0=0&y0=0&x1=0.5&y1=0.5"))
    assert 'data-viewport="0 0 0.5 0.5"' in zoomed
    out = re.search(r'href="([^"]+)" hx-get="[^"]+" hx-target="#map-view" hx-push-url="true" class="zoom-out"', zoomed)
    assert 'data-viewport="0 0 1 1"' in text(client.get(out.group(1).replace("&amp;", "&")))
    assert client.get("/map?x0=0.5&y0=0&x1=0.2&y1=1").status_code == 400
    assert client.get("/map?x0=0.5").status_code == 400


def test_a_track_and_its_neighbours_and_a_search_and_its_reference_are_drawn(app, client, mapped, audio_dir):
    first = mapped.list(0, 1)[0]["track_id"]
    svg = svg_of(text(client.get(f"/map?track={first}")))
    assert svg.count('class="reference"') == 1 and svg.count('class="result"') == 10
    assert 'href="/map?track=' in text(client.get(f"/tracks/{first}"))  # "Show on map" from its neighbours
    assert client.get("/map?track=nosuch").status_code == 404

    reference = audio_dir / "ref.wav"
    audiogen.write(reference, musicgen.progression(9, "minor", 4.0, SR, "saw", seed=77), SR, "WAV")
    started = client.post("/api/v1/searches", json={"key": upload(client, reference), "limit": 5})
    run_worker(services(app), burst=True)
    job = started.json["id"]
    svg = svg_of(text(client.get(f"/map?search={job}")))
    assert svg.count('<circle class="reference"') == 1 and svg.count('class="result"') == 5
    assert "Tracks that sound like ref.wav" in text(client.get(f"/map?search={job}"))
    assert "expired" in text(client.get("/map?search=nosuch"))


def test_a_track_ingested_after_the_map_is_placed_on_it_at_once(app, client, mapped, audio_dir):
    path = audio_dir / "new.wav"
    audiogen.write(path, musicgen.progression(4, "minor", 3.0, SR, "organ", seed=500), SR, "WAV")
    added = mapped.ingest(path, metadata={"title": "Newcomer"}).track
    stored = services(app).map_store.load()
    assert len(stored) == N + 1 and stored.placed == 1 and stored.row(added.track_id) is not None
    assert f'href="/tracks/{added.track_id}"' in svg_of(text(client.get("/map")))
    assert "1 placed on it since" in text(client.get("/map/layout"))


def test_the_map_page_answers_without_a_job_queue(app_config):
    from audiofind.app import create_app

    client = create_app({**app_config, "REDIS_URL": ""}).test_client()
    answer = client.get("/map")
    assert answer.status_code == 200 and "The catalog has no map yet." in text(answer)


def test_a_reindex_leaves_the_mapped_tracks_where_they_are(app, mapped):
    before = services(app).map_store.load()
    assert mapped.reindex() == []
    after = services(app).map_store.load()
    assert after.track_ids == before.track_ids and (after.layout == before.layout).all()
