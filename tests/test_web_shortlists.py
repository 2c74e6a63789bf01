"""Shortlists and refining through the Flask test client: the pages, their htmx partials and /api/v1/shortlists,
with real Redis, a real RQ worker and the local index. Ownership: a shortlist belongs to the browser (session
cookie) that made it; another browser reaches it only through its share link."""

import csv
import io
import re

import pytest

import audiogen
from audiofind.app import get_catalog, services
from audiofind.jobs.worker import run_worker

pytestmark = pytest.mark.usefixtures("empty_queue")

SR = 32000
HX = {"HX-Request": "true"}
TITLES = [("Morning", "Light"), ("Noon", "Light"), ("Dusk", "Light"), ("Night", "Dark"), ("Midnight", "Dark")]


@pytest.fixture
def catalog(app, audio_dir):
    catalog = get_catalog(app)
    for seed, (title, album) in enumerate(TITLES):
        path = audio_dir / f"piece{seed}.wav"
        audiogen.write(path, audiogen.music(12, SR, seed=seed, bpm=100 + 10 * seed), SR, "WAV")
        catalog.ingest(path, metadata={"title": title, "album": album, "artist": "Ensemble", "tags": "Synth"})
    return catalog


def ids(catalog):
    return {t["title"]: t["track_id"] for t in catalog.list(0, 50)}


def text(response):
    return response.get_data(as_text=True)


def titles_in(html):
    return re.findall(r'<h3><a href="/tracks/\w+">([^<]+)</a>', html)


def upload(client, path):
    data = path.read_bytes()
    target = client.post("/api/v1/uploads", json={"filename": path.name, "content_type": "audio/wav",
                                                  "size": len(data)}).json
    assert client.open(target["upload_url"], method=target["method"], headers=target["headers"], data=data).status_code < 300
    return target["key"]


# -- the pages


def test_add_from_a_result_to_a_new_then_the_latest_shortlist(client, catalog):
    track = ids(catalog)
    added = client.post("/shortlists/add", data={"track_id": track["Noon"], "shortlist": "Scene 4"}, headers=HX)
    assert added.status_code == 200 and added.headers["HX-Reswap"] == "none"  # the page stays where it is
    html = text(added)
    assert "Added Noon to “Scene 4”" in html and f'id="added-{track["Noon"]}" hx-swap-oob="true"' in html
    assert 'id="my-shortlists" hx-swap-oob="true"' in html and '<option value="Scene 4">' in html

    again = text(client.post("/shortlists/add", data={"track_id": track["Night"]}, headers=HX))  # empty: the latest
    assert "to “Scene 4”" in again and "(2)" in again
    page = text(client.get("/shortlists"))
    assert "Scene 4" in page and '<option value="Scene 4">' in page  # the nav page and the names for the fields

    unknown = client.post("/shortlists/add", data={"track_id": "nope"}, headers=HX)
    assert unknown.status_code == 404 and "no track nope" in text(unknown)


def test_shortlist_page_reorder_note_rename_remove(client, catalog):
    track = ids(catalog)
    for title in ("Morning", "Noon", "Dusk"):
        client.post("/shortlists/add", data={"track_id": track[title], "shortlist": "Cue 12"}, headers=HX)
    shortlist_id = client.get("/api/v1/shortlists").json["shortlists"][0]["shortlist_id"]
    url = f"/shortlists/{shortlist_id}"
    page = text(client.get(url))
    assert titles_in(page) == ["Morning", "Noon", "Dusk"] and page.count("<audio controls") == 3
    assert "/s/" in page and "Export CSV" in page and "Sounds like these" in page

    moved = client.post(url + "/move", data={"track_id": track["Dusk"], "direction": "up"}, headers=HX)
    assert titles_in(text(moved)) == ["Morning", "Dusk", "Noon"] and "<html" not in text(moved)
    assert titles_in(text(client.post(url + "/move", data={"track_id": track["Morning"], "position": "3"},
                                      headers=HX))) == ["Dusk", "Noon", "Morning"]
    assert "Note saved" in text(client.post(url + "/note", data={"track_id": track["Noon"], "note": "for the chase"},
                                            headers=HX))
    assert 'value="for the chase"' in text(client.get(url))
    renamed = text(client.post(url + "/rename", data={"name": "Cue 12b"}, headers=HX))
    assert '<h1 id="shortlist-title" hx-swap-oob="true">Cue 12b</h1>' in renamed
    assert client.post(url + "/rename", data={"name": " "}, headers=HX).status_code == 400
    removed = text(client.post(url + "/remove", data={"track_id": track["Dusk"]}, headers=HX))
    assert titles_in(removed) == ["Noon", "Morning"]

    deleted = client.post(url + "/delete", headers=HX)
    assert deleted.headers["HX-Redirect"] == "/shortlists"
    assert client.get(url).status_code == 404


def test_another_browser_sees_a_shortlist_only_through_its_share_link(app, client, catalog):
    track = ids(catalog)
    client.post("/shortlists/add", data={"track_id": track["Noon"], "shortlist": "Mine"}, headers=HX)
    mine = client.get("/api/v1/shortlists").json["shortlists"][0]
    url = f"/shortlists/{mine['shortlist_id']}"
    client.post(url + "/note", data={"track_id": track["Noon"], "note": "the one"}, headers=HX)

    other = app.test_client()  # another browser: its own cookie
    assert other.get(url).status_code == 404
    assert other.get(url + "/export.csv").status_code == 404
    for action, data in [("move", {"track_id": track["Noon"], "direction": "up"}), ("remove", {"track_id": track["Noon"]}),
                         ("rename", {"name": "Theirs"}), ("note", {"track_id": track["Noon"], "note": "x"}),
                         ("delete", {})]:
        assert other.post(f"{url}/{action}", data=data, headers=HX).status_code == 404, action
    assert other.get("/api/v1/shortlists").json["shortlists"] == []
    assert other.get(f"/api/v1/shortlists/{mine['shortlist_id']}").status_code == 404
    assert other.patch(f"/api/v1/shortlists/{mine['shortlist_id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/shortlists/{mine['shortlist_id']}").status_code == 404
    assert "Mine" not in text(other.get("/shortlists"))

    shared = other.get(f"/s/{mine['share_id']}")  # the share link: read-only, playable, no session needed
    html = text(shared)
    assert shared.status_code == 200 and "Mine" in html and "Noon" in html and "the one" in html
    assert re.search(r'<audio controls preload="none" src="(/storage/audio/[^"]+)"', html)
    assert "Save note" not in html and "Remove" not in html and "Rename" not in html
    audio = re.search(r'<audio controls preload="none" src="([^"]+)"', html).group(1)
    assert other.get(audio, headers={"Range": "bytes=0-99"}).status_code == 206
    rows = list(csv.reader(io.StringIO(text(other.get(f"/s/{mine['share_id']}/export.csv")))))
    assert rows[0][0] == "rank" and rows[1][1] == "Noon" and rows[1][8] == "the one"

    assert other.get("/s/" + "A" * 22).status_code == 404  # a forged share id
    assert other.get(f"/api/v1/shared/{mine['shortlist_id']}").status_code == 404  # the private id is no share id
    assert other.get(f"/api/v1/shared/{mine['share_id']}").json["items"][0]["note"] == "the one"
    assert client.get(url).status_code == 200  # still the owner's


def test_exports_csv_and_m3u8(client, catalog):
    track = ids(catalog)
    created = client.post("/api/v1/shortlists", json={"name": "Trailer, v2", "track_ids": [track["Noon"], track["Night"]]})
    assert created.status_code == 201
    shortlist_id = created.json["shortlist_id"]
    answer = client.get(f"/shortlists/{shortlist_id}/export.csv")
    assert answer.headers["Content-Disposition"] == 'attachment; filename="Trailer_ v2.csv"'
    rows = list(csv.reader(io.StringIO(text(answer))))
    assert rows[0] == ["rank", "title", "artist", "album", "file", "duration", "bpm", "tags", "note", "track_page_url"]
    assert [r[1] for r in rows[1:]] == ["Noon", "Night"] and rows[1][9].endswith(f"/tracks/{track['Noon']}")
    playlist = client.get(f"/api/v1/shortlists/{shortlist_id}/export.m3u8")
    assert playlist.headers["Content-Type"].startswith("audio/x-mpegurl")
    lines = text(playlist).splitlines()
    assert lines[0] == "#EXTM3U" and lines[2].startswith("#EXTINF:12,Ensemble - Noon")
    assert lines[3].startswith("http://localhost/storage/audio/")
    assert client.get(lines[3].removeprefix("http://localhost")).status_code == 200


def test_a_track_removed_from_the_catalog_shows_as_removed(app, client, catalog):
    track = ids(catalog)
    shortlist = client.post("/api/v1/shortlists", json={"name": "S", "track_ids": [track["Noon"], track["Dusk"]]}).json
    assert catalog.remove(track["Noon"])
    page = text(client.get(f"/shortlists/{shortlist['shortlist_id']}"))
    assert "Removed from the catalog" in page and "Noon" in page and titles_in(page) == ["Dusk"]
    item = client.get(f"/api/v1/shortlists/{shortlist['shortlist_id']}").json["items"][0]
    assert item == {"track_id": track["Noon"], "note": "", "missing": True, "title": "Noon", "track": None}


def test_admin_sees_and_deletes_every_shortlist(app, client, catalog):
    track = ids(catalog)
    other = app.test_client()
    shortlist = other.post("/api/v1/shortlists", json={"name": "Someone's", "track_ids": [track["Noon"]]}).json
    app.config["ADMIN_TOKEN"] = "t"
    assert client.get("/admin/shortlists/").status_code == 302  # to the login form
    admin = {"Authorization": "Bearer t"}
    page = client.get("/admin/shortlists/", headers=admin)
    assert page.status_code == 200 and "Someone&#39;s" in text(page)
    deleted = client.post(f"/admin/shortlists/{shortlist['shortlist_id']}/delete", headers={**admin, **HX})
    assert deleted.status_code == 200 and "Shortlist deleted" in text(deleted)
    assert other.get(f"/api/v1/shortlists/{shortlist['shortlist_id']}").status_code == 404


def test_signing_in_as_admin_keeps_the_browsers_shortlists(app, client, catalog):
    mine = client.post("/api/v1/shortlists", json={"name": "Before login"}).json["shortlist_id"]
    app.config["ADMIN_TOKEN"] = "s3cret"
    assert client.post("/admin/login", data={"token": "s3cret"}).status_code == 302
    assert client.get(f"/shortlists/{mine}").status_code == 200


# -- the API


def test_api_items_order_notes_and_the_owner_header(app, client, catalog):
    track = ids(catalog)
    owner = {"X-Shortlist-Owner": "a-long-random-client-id"}
    sl = client.post("/api/v1/shortlists", json={"name": "API"}, headers=owner).json
    base = f"/api/v1/shortlists/{sl['shortlist_id']}"
    assert client.get(base).status_code == 404  # the cookie's owner is not the header's
    for title in ("Morning", "Noon", "Dusk"):
        assert client.post(base + "/items", json={"track_id": track[title]}, headers=owner).status_code == 200
    assert client.post(base + "/items", json={"track_id": "nope"}, headers=owner).status_code == 404
    order = [track["Dusk"], track["Morning"], track["Noon"]]
    answer = client.put(base + "/order", json={"track_ids": order}, headers=owner)
    assert [i["track_id"] for i in answer.json["items"]] == order
    assert client.put(base + "/order", json={"track_ids": order[:2]}, headers=owner).status_code == 400
    noted = client.patch(f"{base}/items/{track['Noon']}", json={"note": "maybe"}, headers=owner).json
    assert noted["items"][2]["note"] == "maybe" and noted["items"][2]["track"]["title"] == "Noon"
    assert client.patch(f"{base}/items/nope", json={"note": "x"}, headers=owner).status_code == 404
    left = client.delete(f"{base}/items/{track['Morning']}", headers=owner).json
    assert [i["track_id"] for i in left["items"]] == [track["Dusk"], track["Noon"]]
    assert client.get("/api/v1/shortlists", headers=owner).json["shortlists"][0]["tracks"] == 2
    assert client.get("/api/v1/shortlists", headers={"X-Shortlist-Owner": "short"}).status_code == 400
    assert client.delete(base, headers=owner).status_code == 204
    assert client.get(base, headers=owner).status_code == 404


# -- refining


def test_refine_a_search_in_place_with_marks_and_undo(app, client, catalog, audio_dir):
    track = ids(catalog)
    reference = audio_dir / "ref.wav"
    audiogen.write(reference, audiogen.music(12, SR, seed=1, bpm=110), SR, "WAV")  # Noon
    started = client.post("/searches", data={"key": upload(client, reference), "mode": "track"}, headers=HX)
    status_url = re.search(r'hx-get="([^"]+)"', text(started)).group(1)
    run_worker(services(app), burst=True)
    html = text(client.get(status_url, headers=HX))
    before = titles_in(html)
    assert before[0] == "Noon" and "More like it" in html and "Less like it" in html

    job_id = status_url.rsplit("/", 1)[1]
    unliked = before[1]
    refined = client.get(f"/searches/{job_id}/refine?unlike={track[unliked]}", headers=HX)
    after = titles_in(text(refined))
    assert refined.status_code == 200 and unliked not in after and "<html" not in text(refined)
    assert f"Less like {unliked}" in text(refined)  # the mark, as a chip with its undo
    undo = re.search(r'aria-label="Undo less like [^"]+" hx-get="([^"]+)"', text(refined)).group(1)
    assert titles_in(text(client.get(undo.replace("&amp;", "&"), headers=HX))) == before

    liked = client.get(f"/searches/{job_id}/refine?like={track['Night']}", headers=HX)
    assert "More like Night" in text(liked) and titles_in(text(liked)).index("Night") <= before.index("Night")
    assert client.get(f"/searches/{job_id}/refine?like=nope", headers=HX).status_code == 404
    assert client.get("/searches/nope/refine", headers=HX).status_code == 404


def test_sounds_like_the_selected_and_similar_with_marks(client, catalog):
    track = ids(catalog)
    answer = client.get(f"/sounds-like?ids={track['Morning']}&ids={track['Noon']}", headers=HX)
    found = titles_in(text(answer))
    assert answer.status_code == 200 and "Sounds like Morning, Noon" in text(answer)
    assert "Morning" not in found and "Noon" not in found and len(found) == 3
    assert client.get("/sounds-like", headers=HX).status_code == 400

    plain = titles_in(text(client.get(f"/tracks/{track['Noon']}/similar", headers=HX)))
    marked = text(client.get(f"/tracks/{track['Noon']}/similar?unlike={track[plain[0]]}", headers=HX))
    assert plain[0] not in titles_in(marked) and f"Less like {plain[0]}" in marked

    api = client.get(f"/api/v1/tracks/{track['Noon']}/similar?unlike={track[plain[0]]}").json
    assert plain[0] not in [r["title"] for r in api["results"]]
    assert client.get(f"/api/v1/tracks/{track['Noon']}/similar?like=nope").status_code == 400


def test_api_search_by_catalog_tracks_without_a_key(app, client, catalog):
    track = ids(catalog)
    started = client.post("/api/v1/searches", json={"like": [track["Morning"], track["Dusk"]], "limit": 5})
    assert started.status_code == 202, started.json
    run_worker(services(app), burst=True)
    done = client.get(started.json["status_url"]).json
    assert done["status"] == "finished"
    found = [r["title"] for r in done["results"]]
    assert found and "Morning" not in found and "Dusk" not in found
    assert client.post("/api/v1/searches", json={"like": ["nope"]}).status_code == 400
    refused = client.post("/api/v1/searches", json={"unlike": [track["Noon"]]})
    assert refused.status_code == 400 and "key is required" in refused.json["message"]
