"""End to end in headless Chromium, as tests/test_browser.py: `audiofind serve` on loopback, generated audio. Drop a
reference, mark results "less / more like this one" and watch the list re-rank, collect five tracks into a
shortlist, open its share link in a fresh browser context and play a track there, download the CSV. A screenshot
of each step goes to test-output/ (and the test's tmp_path)."""

import csv

import pytest

import audiogen
from audiofind.app import create_app, get_catalog
from browsing import drop_file, launch, needs_chromium, screenshot, serving

SR = 32000
TITLES = ["Harbour Lights", "Cold Stream", "Amber Road", "Night Market", "Glass Garden", "Paper Moon",
          "Iron Bridge", "Salt Flats", "Quiet Hours", "Red Canyon", "Low Tide", "Blue Hour"]

pytestmark = needs_chromium


@pytest.fixture
def server(tmp_path, audio_dir):
    """A catalog of twelve pieces, served by `audiofind serve` as a user starts it."""
    data_dir = tmp_path / "instance"
    catalog = get_catalog(create_app({"DATA_DIR": str(data_dir), "EMBEDDER": "dsp", "SECRET_KEY": "test"}))
    for seed, title in enumerate(TITLES):
        path = audio_dir / f"{title.lower().replace(' ', '_')}.wav"
        audiogen.write(path, audiogen.music(20, SR, seed=seed, bpm=90 + 6 * seed), SR, "WAV")
        catalog.ingest(path, metadata={"title": title, "artist": "Test Ensemble", "album": "Coastline" if seed % 2 else
                                       "City", "tags": "Synth"})
    with serving(data_dir) as url:
        yield url


def test_refine_collect_share_play_and_export(server, audio_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    def shot(page, name):
        screenshot(page, tmp_path, f"shortlists-{name}")

    reference = audio_dir / "my_reference.wav"
    audiogen.write(reference, audiogen.music(20, SR, seed=2, bpm=102), SR, "WAV")  # sounds like "Amber Road"

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(server + "/")

        # 1. Drop a reference.
        drop_file(page, reference, "audio/wav")
        results = page.locator("#results li.result")
        titles = page.locator("#results li.result h3 a")
        expect(results).to_have_count(10, timeout=60_000)
        expect(titles.first).to_have_text("Amber Road")
        before = titles.all_inner_texts()
        shot(page, "1-results")

        # 2. "Less like this one" on the second result: it leaves the list (with its nearest), shown as a chip.
        unliked = before[1]
        results.nth(1).get_by_role("button", name="Less like it").click()
        expect(page.locator(".chip.unlike")).to_contain_text(f"Less like {unliked}")
        expect(page.locator("#results h3 a", has_text=unliked)).to_have_count(0)
        after_unlike = titles.all_inner_texts()
        assert after_unlike != before  # re-ranked: its nearest tracks left with it
        shot(page, "2-less-like-this")

        # 3. "More like this one" on the last result: it moves up.
        liked = after_unlike[-1]
        results.last.get_by_role("button", name="More like it").click()
        expect(page.locator(".chip.like")).to_contain_text(f"More like {liked}")
        refined = titles.all_inner_texts()
        assert refined.index(liked) < len(after_unlike) - 1, refined
        shot(page, "3-more-like-this")

        # 4. Undo the "less like" mark: that track is back.
        page.get_by_role("button", name=f"Undo less like {unliked}").click()
        expect(page.locator(".chip.unlike")).to_have_count(0)
        expect(page.locator("#results h3 a", has_text=unliked)).to_have_count(1)
        shot(page, "4-undo")

        # 5. Collect five tracks: the first into a new shortlist by name, the next four into it in one click each.
        collected = titles.all_inner_texts()[:5]
        first = results.nth(0)
        first.get_by_label("Shortlist name").fill("Scene 7")
        first.get_by_role("button", name="Add to shortlist").click()
        expect(first.locator(".added")).to_contain_text("In Scene 7 (1)")
        for n in range(1, 5):
            results.nth(n).get_by_role("button", name="Add to shortlist").click()
            expect(results.nth(n).locator(".added")).to_contain_text(f"In Scene 7 ({n + 1})")
        expect(page.locator(".toast.success").last).to_contain_text("to “Scene 7”")
        assert page.url == server + "/"  # never left the page
        shot(page, "5-collected")

        # 6. The shortlist page, from the nav: five tracks in order, and the share link.
        page.get_by_role("link", name="Shortlists").click()
        page.get_by_role("link", name="Scene 7").click()
        expect(page.locator("#shortlist-items li h3")).to_have_text(collected)
        share_url = page.locator("[data-share-link]").get_attribute("href")
        shot(page, "6-shortlist")

        # 7. The share link in a fresh context (no cookie): read-only, and a track plays.
        guest = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        shared = guest.new_page()
        shared.goto(share_url)
        expect(shared.locator("#shortlist-title")).to_have_text("Scene 7")
        expect(shared.locator("#shortlist-items li h3")).to_have_text(collected)
        expect(shared.get_by_role("button", name="Remove")).to_have_count(0)
        audio = shared.locator("#shortlist-items audio").first
        src = audio.get_attribute("src")
        assert guest.request.get(src if src.startswith("http") else server + src).status in (200, 206)
        audio.evaluate("a => { a.muted = true; return a.play(); }")
        shared.wait_for_function("a => a.currentTime > 0", arg=audio.element_handle(), timeout=15_000)
        shot(shared, "7-shared-playing")

        # 8. Download the CSV from the shared page: its header and five rows, in the shortlist's order.
        with shared.expect_download() as download:
            shared.get_by_role("link", name="Export CSV").click()
        path = tmp_path / "scene7.csv"
        download.value.save_as(path)
        rows = list(csv.reader(path.open(encoding="utf-8")))
        assert rows[0] == ["rank", "title", "artist", "album", "file", "duration", "bpm", "tags", "note", "track_page_url"]
        assert [r[1] for r in rows[1:]] == collected
        assert download.value.suggested_filename == "Scene 7.csv"
        shot(shared, "8-csv-downloaded")
        browser.close()
