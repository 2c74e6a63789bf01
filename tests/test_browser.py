"""End to end in headless Chromium: `audiofind serve` (gunicorn, a worker, embedded Redis), a dropped file,
the results, "More like this". The screenshot goes to test-output/ (and the test's tmp_path)."""

import re

import pytest

import audiogen
from audiofind.app import create_app, get_catalog
from browsing import drop_file, launch, needs_chromium, screenshot, serving

SR = 32000
pytestmark = needs_chromium


@pytest.fixture
def server(tmp_path, audio_dir):
    """A catalog of five pieces, served by `audiofind serve` as a user starts it."""
    data_dir = tmp_path / "instance"
    catalog = get_catalog(create_app({"DATA_DIR": str(data_dir), "EMBEDDER": "dsp", "SECRET_KEY": "test"}))
    titles = ["Harbour Lights", "Cold Stream", "Amber Road", "Night Market", "Glass Garden"]
    for seed, title in enumerate(titles):
        path = audio_dir / f"{title.lower().replace(' ', '_')}.wav"
        audiogen.write(path, audiogen.music(30, SR, seed=seed, bpm=96 + 8 * seed), SR, "WAV")
        album = "Coastline" if seed % 2 == 0 else "City"
        catalog.ingest(path, metadata={"title": title, "artist": "Test Ensemble", "album": album, "tags": "Synth"})
    with serving(data_dir) as url:
        yield url


def test_drop_a_file_see_results_then_more_like_this(server, audio_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    reference = audio_dir / "my_reference.mp3"
    audiogen.write(reference, audiogen.music(20, SR, seed=2, bpm=112), SR, "MP3")  # sounds like "Amber Road"

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(server + "/")
        expect(page.get_by_text("Drop an audio file here")).to_be_visible()

        drop_file(page, reference, "audio/mpeg")

        results = page.locator("#results li.result")
        expect(results.first).to_be_visible(timeout=60_000)
        expect(page.locator("#status")).to_contain_text("similar tracks found for my_reference.mp3")
        expect(page.locator(".toast.success")).to_contain_text("Results are ready")
        expect(results).to_have_count(5)
        expect(results.first.locator("h3")).to_contain_text("Amber Road")
        first = results.first
        expect(first.locator(".score")).to_contain_text("% match")
        expect(first.locator("svg.envelope rect.match")).to_have_count(1)
        src = first.locator("audio").get_attribute("src")
        assert "/storage/audio/" in src and "#t=" in src
        screenshot(page, tmp_path, "results")

        # The toast hides itself after a few seconds.
        expect(page.locator(".toast")).to_have_count(0, timeout=15_000)

        # "More like this" on the second result swaps in that track's neighbours, never the track itself.
        second_title = results.nth(1).locator("h3 a").inner_text()
        results.nth(1).get_by_role("button", name="More like this").click()
        expect(page.locator("#results h2")).to_have_text(f"More like {second_title}")
        expect(results).to_have_count(4)
        expect(page.locator("#results h3 a", has_text=second_title)).to_have_count(0)
        screenshot(page, tmp_path, "more-like-this")

        # A file that is not audio: an error pop-up, and the page is usable again.
        page.set_input_files("[data-search-file]", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                            "buffer": b"not audio at all"}])
        expect(page.locator(".toast.error")).to_contain_text("notes.txt is not an audio file")
        expect(page.locator("#search-form")).not_to_have_class(re.compile(r"\bbusy\b"))
        browser.close()
