"""The filter table (audiofind/index/filters.py) is the one place filter fields are declared.

Every test here loops over the table, so a field added to it that some place does not derive from the table
(a hard-coded list, a schema, a form, an option) fails here: search on both backends, the Atlas index
definitions, input parsing, the pydantic model and the OpenAPI document, the CLI, the form and the track page."""

from dataclasses import MISSING, fields

import click
import numpy as np
import pytest
from test_atlas import empty_index
from test_web import catalog, text, track_id  # noqa: F401 (the catalog fixture)

from audiofind.app import get_catalog
from audiofind.cli import _search_kwargs, cli, search
from audiofind.index import filters as table
from audiofind.index.atlas import AtlasIndex, load_definitions
from audiofind.index.base import Track
from audiofind.routes.schemas import FILTER_FIELDS as ROUTE_FIELDS, Filters as FiltersInput, parse


def parse_filters(source):
    """The filters the API and the page take (routes/schemas.py), as Filters keyword arguments."""
    return parse(FiltersInput, source).given()

DIM, WDIM = 8, 4
IDENTITY = {"name": "test", "version": "1", "dim": DIM, "window_dim": WDIM}
WORDS = ("amber", "blue", "coral")
N = 24


def span(f):
    return min(f.high - f.low, 200.0)


def value_of(f, i):
    """Track ``i``'s value of field ``f``: spread so that every filter case keeps some tracks and drops others."""
    if f.kind == "every":
        return [w for j, w in enumerate(WORDS) if (i >> j) & 1]
    if f.kind == "range":
        optional = next(x for x in fields(Track) if x.name == f.name).default is None
        if optional and i % 5 == 0:
            return None  # unknown: never inside a range
        return f.low + span(f) * (i % 7) / 7
    return (f.choices or WORDS)[i % len(f.choices or WORDS)]


def make_track(i) -> Track:
    values = dict(track_id=f"t{i:03d}", file=f"song{i:03d}.mp3", content_hash=f"h{i}", duration=60.0 + i,
                  embedder="test:1", created_at=1000.0 + i)
    for f in table.FILTER_FIELDS:
        if f.kind != "exclude":
            values[f.name] = value_of(f, i)
    return Track(**values)


def cases(f):
    """(case name, Filters parameters) that exercise field ``f``."""
    if f.kind == "exclude":
        return [("one", {f.params[0]: [getattr(make_track(1), f.name)]}),
                ("two", {f.params[0]: [getattr(make_track(i), f.name) for i in (2, 5)]})]
    if f.kind == "range":
        low, high = f.params
        a, b = f.low + span(f) * 2 / 7, f.low + span(f) * 5 / 7
        return [("min", {low: a}), ("max", {high: b}), ("both", {low: a, high: b})]
    if f.kind == "every":
        return [("one", {f.params[0]: [WORDS[0]]}), ("all", {f.params[0]: [WORDS[0], WORDS[1]]})]
    words = f.choices or WORDS
    if f.kind == "one_of":
        return [("one", {f.params[0]: [words[0]]}), ("two", {f.params[0]: [words[0], words[1]]})]
    return [("exact", {f.params[0]: words[1]})]


ALL_CASES = [(f, name, params) for f in table.FILTER_FIELDS for name, params in cases(f)]


@pytest.fixture(params=["local", "atlas"])
def index(request, tmp_path, monkeypatch):
    index = empty_index(request.param, tmp_path, monkeypatch, IDENTITY)
    rng = np.random.default_rng(7)
    for i in range(N):
        vectors = rng.standard_normal((4, WDIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        vector = rng.standard_normal(DIM).astype(np.float32)
        index.add(make_track(i), vector / np.linalg.norm(vector), [[k * 5.0, k * 5.0 + 10] for k in range(4)], vectors)
    yield index
    index.close()


@pytest.mark.parametrize("field,case,params", ALL_CASES, ids=[f"{f.name}-{c}" for f, c, _ in ALL_CASES])
def test_every_field_filters_both_searches_on_both_backends_as_matches_says(index, field, case, params):
    filters = table.Filters(**params)
    expected = {f"t{i:03d}" for i in range(N) if filters.matches(make_track(i))}
    assert 0 < len(expected) < N  # the case keeps some tracks and drops others, or it proves nothing
    rng = np.random.default_rng(1)
    assert {h.track_id for h in index.search(rng.standard_normal(DIM).astype(np.float32), N, filters)} == expected
    window_query = rng.standard_normal((2, WDIM)).astype(np.float32)
    assert {h.track_id for h in index.search_segments(window_query, N, filters)} == expected


@pytest.mark.parametrize("field", table.PUBLIC_FIELDS, ids=lambda f: f.name)
def test_every_public_field_can_be_updated_and_is_then_filtered_on_its_new_value(index, field):
    moved, value = "t004", value_of(field, 3)
    index.update(moved, {field.name: value})
    if isinstance(index, AtlasIndex):
        index.wait_searchable()
    params = {p: value for p in field.params} if field.kind == "range" else {
        field.params[0]: value if field.kind == "exact" else list(value) if field.kind == "every" else [value]}
    filters = table.Filters(**params)
    assert filters.matches(index.get(moved))
    rng = np.random.default_rng(2)
    assert moved in {h.track_id for h in index.search(rng.standard_normal(DIM).astype(np.float32), N, filters)}
    window_query = rng.standard_normal((2, WDIM)).astype(np.float32)
    assert moved in {h.track_id for h in index.search_segments(window_query, N, filters)}


def test_every_field_is_a_filter_path_of_both_atlas_indexes():
    for spec in load_definitions(IDENTITY):
        paths = {f["path"] for f in spec["definition"]["fields"] if f["type"] == "filter"}
        assert paths == {f.name for f in table.FILTER_FIELDS}, spec["name"]


def form_value(f, param):
    if f.kind == "range":
        return str(f.low + span(f) * (2 if param.startswith("min_") else 5) / 7)
    return ", ".join(WORDS[:2]) if f.is_list else (f.choices or WORDS)[0]


def test_every_public_input_parses_and_is_in_the_filters_model():
    assert ROUTE_FIELDS == table.PARAMS
    model = table.filters_model()
    for f in table.PUBLIC_FIELDS:
        for param in f.params:
            parsed = parse_filters({param: form_value(f, param)})
            assert list(parsed) == [param] and getattr(table.Filters(**parsed), param)
            assert param in model.model_fields
            assert getattr(model.model_validate({param: parsed[param]}), param) is not None
    with pytest.raises(Exception):
        model.model_validate({"no_such_filter": 1})


def test_every_public_input_is_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").json
    assert set(doc["components"]["schemas"]["Filters"]["properties"]) == set(table.PARAMS)
    queried = {p["name"] for path in doc["paths"].values() for op in path.values() if isinstance(op, dict)
               for p in op.get("parameters", [])}
    assert set(table.PARAMS) <= queried


def test_every_public_input_is_a_cli_option_that_reaches_the_filters(tmp_path):
    (tmp_path / "reference.wav").write_bytes(b"")
    args = [str(tmp_path / "reference.wav")]
    for f in table.PUBLIC_FIELDS:
        for param in f.params:
            option = f.option if f.is_list and f.option else "--" + param.replace("_", "-")
            values = WORDS[:2] if f.is_list else [form_value(f, param)]
            for value in values:
                args += [option, value]
    # under the group's context, as the command line runs it (click keeps the help option it first made)
    parent = click.Context(cli, info_name="audiofind", **cli.context_settings)
    opts = search.make_context("search", args, parent=parent).params
    got = _search_kwargs(opts)["filters"]
    assert got == table.Filters(**parse_filters({p: form_value(f, p) for f in table.PUBLIC_FIELDS for p in f.params}))


def test_every_public_input_is_in_the_search_form(client):
    html = text(client.get("/"))
    for param in table.PARAMS:
        assert f'name="{param}"' in html


def test_every_public_field_is_on_the_track_page(app, client, catalog):  # noqa: F811
    night = track_id(catalog, "Night")
    shown = {f.name: value_of(f, 3) for f in table.PUBLIC_FIELDS}
    get_catalog(app).index.update(night, {k: v for k, v in shown.items() if k != "duration"})
    html = text(client.get(f"/tracks/{night}"))
    for f in table.PUBLIC_FIELDS:
        assert f"<dt>{f.label}</dt>" in html
        if f.kind == "every":
            assert all(f"<li>{tag}</li>" in html for tag in shown[f.name])
        elif f.kind == "exact":
            assert f"<dd>{shown[f.name]}</dd>" in html


def test_filters_has_one_parameter_per_input_with_the_kind_defaults():
    names = [x.name for x in fields(table.Filters)]
    assert names == [p for f in table.FILTER_FIELDS for p in f.params]
    empty = table.Filters()
    assert all(empty.matches(make_track(i)) for i in range(N))
    for f in table.FILTER_FIELDS:
        assert f.name in {x.name for x in fields(Track)}, f"{f.name} is not a Track attribute"
        for x in fields(table.Filters):
            if x.name in f.params:
                assert (x.default_factory is list) == f.is_list and (x.default is not MISSING) != f.is_list
