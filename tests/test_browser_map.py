"""End to end in headless Chromium, the catalog map: `audiofind serve` over a catalog of a few hundred generated
tracks; the map computed from the page (the admin's button, the map job), zoomed into a region, a point clicked
(its track opens), and a search filtered by key and "instrumental" whose results all match, shown on the map.
A screenshot at each step goes to test-output/ (and the test's tmp_path)."""

import re

import pytest

import audiogen
import musicgen
from browsing import drop_file, launch, needs_chromium, screenshot, serving
from audiofind.app import create_app, get_catalog

SR = 22050
TRACKS = 240
SECONDS = 3.0  # short clips: the catalog builds in well under a minute with the dsp embedder

pytestmark = needs_chromium


def piece(i):
    """Track ``i``: a progression in one of the 24 keys, one of five timbres, every fourth one sung over."""
    tonic, mode = i % 12, ("major", "minor")[(i // 12) % 2]
    timbre = list(musicgen.TIMBRES)[(i // 24) % len(musicgen.TIMBRES)]
    signal_ = musicgen.progression(tonic, mode, SECONDS, SR, timbre, bpm=80 + (i % 9) * 10, seed=i, drums=i % 3 == 0)
    if i % 4 == 3:
        signal_ = musicgen.mix((signal_, 0), (musicgen.sung(tonic, mode, SECONDS, SR, seed=i), -3))
    return signal_


@pytest.fixture
def server(tmp_path, audio_dir):
    data_dir = tmp_path / "instance"
    catalog = get_catalog(create_app({"DATA_DIR": str(data_dir), "EMBEDDER": "dsp", "SECRET_KEY": "test",
                                      "ENTRY_POINT_PLUGINS": False}))
    for i in range(TRACKS):
        path = audio_dir / f"track{i:03d}.wav"
        audiogen.write(path, piece(i), SR, "WAV")
        catalog.ingest(path, metadata={"title": f"Track {i:03d}", "album": f"Album {i % 7}", "artist": "Generated"})
        path.unlink()
    with serving(data_dir) as url:
        yield url


def shot(page, tmp_path, name):
    screenshot(page, tmp_path, f"map-{name}")


def test_open_the_map_zoom_in_click_a_point_then_filter_a_search_by_key_and_instrumental(server, audio_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(server + "/")
        page.get_by_role("link", name="Map").click()

        # No map yet: the page says so, and (an admin, on this machine) computes it.
        expect(page.get_by_text("The catalog has no map yet.")).to_be_visible()
        shot(page, tmp_path, "1-no-map-yet")
        page.get_by_role("button", name="Compute the map").click()
        page.get_by_role("link", name="Open the map").click(timeout=180_000)
        svg = page.locator("svg.catalog-map")
        expect(svg).to_have_attribute("data-tracks", str(TRACKS))
        expect(page.locator("svg.catalog-map .points a")).to_have_count(TRACKS)
        shot(page, tmp_path, "2-whole-map")

        # Colour by BPM band: the legend shows the bands, the view stays.
        page.select_option("select[name=colour]", "bpm")
        expect(page.locator("svg.catalog-map .legend")).to_contain_text("110-130")
        assert "colour=bpm" in page.url

        # Zoom into the region of the busiest cell (a click on empty map there): fewer tracks, a link to this view.
        cells = page.locator("svg.catalog-map .zoom a")
        busiest = max(range(cells.count()), key=lambda k: _points_in(page, cells.nth(k)))
        cells.nth(busiest).locator("rect").click(position={"x": 2, "y": 2})
        expect(svg).not_to_have_attribute("data-viewport", "0 0 1 1")
        zoomed = int(svg.get_attribute("data-tracks"))
        assert 0 < zoomed < TRACKS
        assert re.search(r"x0=[\d.]+", page.url) and "colour=bpm" in page.url
        expect(page.locator(".in-view")).to_contain_text(f"{zoomed} of {TRACKS} tracks in view")
        shot(page, tmp_path, "3-zoomed-in")
        zoomed_url = page.url

        # A click on a point opens its track, with its neighbours and "More like this".
        point = page.locator("svg.catalog-map .points a").first
        title = point.locator("title").text_content().split(" · ")[0]
        point.locator("circle").click()
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator("#results li.result").first.get_by_role("button", name="More like this")).to_be_visible()
        shot(page, tmp_path, "4-track-page")

        # The zoomed view is a link: opening it again shows the same region.
        page.goto(zoomed_url)
        expect(svg).to_have_attribute("data-tracks", str(zoomed))

        # A search filtered by key and "instrumental": every result shown matches both.
        page.goto(server + "/")
        page.locator("#filters summary").click()
        page.select_option("select[name=musical_key]", "A minor")
        page.select_option("select[name=vocals]", "instrumental")
        reference = audio_dir / "reference.wav"
        audiogen.write(reference, musicgen.progression(9, "minor", 6.0, SR, "saw", seed=99), SR, "WAV")
        drop_file(page, reference, "audio/wav")
        results = page.locator("#results li.result")
        expect(results.first).to_be_visible(timeout=60_000)
        count = results.count()
        assert count > 0
        for k in range(count):
            expect(results.nth(k).locator(".key")).to_have_text("A minor")
            expect(results.nth(k).locator(".vocals")).to_have_text("instrumental")
        shot(page, tmp_path, "5-search-by-key-and-instrumental")

        # Its reference and results on the map.
        page.get_by_role("link", name="Show on map").click()
        expect(page.locator("svg.catalog-map .marks circle.reference")).to_have_count(1)
        expect(page.locator("svg.catalog-map .highlighted a.result")).to_have_count(count)
        shot(page, tmp_path, "6-search-on-the-map")
        browser.close()


def _points_in(page, cell):
    """How many points lie inside a zoom cell's rectangle."""
    box = cell.locator("rect").bounding_box()
    return page.evaluate(
        """([x, y, w, h]) => [...document.querySelectorAll("svg.catalog-map .points circle")].filter(c => {
               const r = c.getBoundingClientRect(); const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
               return cx >= x && cx < x + w && cy >= y && cy < y + h; }).length""",
        [box["x"], box["y"], box["width"], box["height"]])
