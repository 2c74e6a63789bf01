"""The search filters, declared once.

``FILTER_FIELDS`` is the table; everything else about filters is derived from it: the ``Filters`` class
(its parameters and ``matches``, the reference semantics), the parsing of form/query/JSON input, the local
index's numpy mask (``mask``), the Atlas ``$vectorSearch`` filter and search-index filter paths
(audiofind/index/atlas/), the CLI options, the search form, the track page and ``filters_model()``.

Adding a filter: a ``FilterField`` row here and, when it filters on a new track attribute, that attribute
on ``Track`` (index/base.py); the local index adds the SQLite column by itself.

Kinds (what a track must satisfy; a missing value never passes a set filter):
  exclude  internal: the track's value is none of the given ones ("more like this" leaves its seed out)
  exact    the track's value equals the given text (with ``choices``: one of a fixed set, e.g. vocal/instrumental)
  one_of   the track's value is one of the given texts (e.g. a key and its compatible keys)
  every    the track's list holds every given element (tags)
  range    ``min_<name>`` <= the track's number <= ``max_<name>``
"""

from dataclasses import dataclass, field, make_dataclass
from typing import Optional

import numpy as np

MAX_NUMBER = 10**9


@dataclass(frozen=True)
class FilterField:
    name: str  # the Track attribute (and the stored column / document field of the same name)
    kind: str  # exclude | exact | one_of | every | range
    label: str = ""  # for the form, the track page and the CLI help
    help: str = ""  # the sentence after "Only tracks ..." in the CLI help and the API description
    param: str = ""  # the Filters parameter of an exclude / every / one_of field (default: the name)
    option: str = ""  # the CLI option of a list field (e.g. --tag, repeatable), default --<name>
    choices: tuple = ()  # exact: the allowed values
    low: float = 0  # range: the bounds a value must lie in
    high: float = MAX_NUMBER
    step: float = 1  # range: the form's step
    unit: str = ""  # range: shown after the value on the track page and in the form's legend
    display: str = "text"  # the track page: text | tags | clock | integer | number

    @property
    def public(self) -> bool:
        """Users set it (form, API, CLI); exclude fields are set by the service itself."""
        return self.kind != "exclude"

    @property
    def params(self) -> tuple:
        """The names of this field's ``Filters`` parameters (and form/query/JSON inputs)."""
        if self.kind == "range":
            return f"min_{self.name}", f"max_{self.name}"
        return (self.param or self.name,)

    @property
    def is_list(self) -> bool:
        return self.kind in ("exclude", "one_of", "every")

    @property
    def column(self) -> str:
        """How the local snapshot holds the attribute: text (object array), set (frozensets) or number (float64)."""
        return {"every": "set", "range": "number"}.get(self.kind, "text")

    # -- the reference semantics
    def matches(self, filters, track) -> bool:
        value = getattr(track, self.name)
        if self.kind == "range":
            low, high = (getattr(filters, p) for p in self.params)
            if low is None and high is None:
                return True
            return value is not None and (low is None or value >= low) and (high is None or value <= high)
        given = getattr(filters, self.params[0])
        if self.kind == "exclude":
            return value not in given
        if self.kind == "exact":
            return not given or value == given
        if self.kind == "one_of":
            return not given or value in given
        return all(element in (value or ()) for element in given)  # every

    # -- the same over the local snapshot's columns
    def mask(self, filters, snapshot) -> Optional[np.ndarray]:
        """Boolean mask of the snapshot's tracks this field lets through, or None when it lets all through."""
        if self.kind == "range":
            column = snapshot.columns[self.name]
            low, high = (getattr(filters, p) for p in self.params)
            if low is None and high is None:
                return None
            with np.errstate(invalid="ignore"):  # NaN (unknown) fails every bound, as in matches
                if high is None:
                    return column >= low
                return column <= high if low is None else (column >= low) & (column <= high)
        given = getattr(filters, self.params[0])
        if not given:
            return None
        if self.kind == "exact":
            return snapshot.equals(self.name, given)
        if self.kind == "exclude":
            keep = ~snapshot.equals(self.name, given[0])
            for value in given[1:]:
                keep &= ~snapshot.equals(self.name, value)
            return keep
        if self.kind == "one_of":
            keep = snapshot.equals(self.name, given[0])
            for value in given[1:]:
                keep |= snapshot.equals(self.name, value)
            return keep
        keep = snapshot.equals(self.name, given[0])  # every
        for element in given[1:]:
            keep &= snapshot.equals(self.name, element)
        return keep

    # -- the same as a MongoDB Atlas $vectorSearch pre-filter
    def atlas_clauses(self, filters) -> list:
        if self.kind == "range":
            low, high = (getattr(filters, p) for p in self.params)
            clauses = [] if low is None else [{self.name: {"$gte": float(low)}}]
            return clauses + ([] if high is None else [{self.name: {"$lte": float(high)}}])
        given = getattr(filters, self.params[0])
        if not given:
            return []
        if self.kind == "exact":
            return [{self.name: {"$eq": given}}]
        values = list(dict.fromkeys(given))
        if self.kind == "exclude":  # "more like this": file $ne, as in the article
            return [{self.name: {"$ne": values[0]}}] if len(values) == 1 else [{self.name: {"$nin": values}}]
        if self.kind == "one_of":
            return [{self.name: {"$in": values}}]
        # every: $all is not a $vectorSearch filter operator; $eq on an array matches an element
        return [{self.name: {"$eq": element}} for element in values]

    # -- input
    def parse(self, source) -> dict:
        """{parameter: value} of the inputs given for this field in ``source`` (a dict); ValueError on bad input."""
        if self.kind == "range":
            values = {p: _number(source.get(p), p, self.low, self.high) for p in self.params}
            values = {p: v for p, v in values.items() if v is not None}
            low, high = self.params
            if low in values and high in values and values[low] > values[high]:
                raise ValueError(f"{low} is larger than {high}")
            return values
        param = self.params[0]
        value = source.get(param)
        if value in (None, "", []):
            return {}
        if self.is_list:
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, list):
                raise ValueError(f"{param} must be a list or a comma-separated text")
            value = [str(v).strip() for v in value if str(v).strip()]
            return {param: value} if value else {}
        if not isinstance(value, str):
            raise ValueError(f"{param} must be text")
        value = value.strip()
        if self.choices and value not in self.choices:
            raise ValueError(f"{param} must be one of {', '.join(self.choices)}")
        return {param: value}


def _number(value, name, low, high):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if value != value or value < low or value > high:
        raise ValueError(f"{name} must be between {low:g} and {int(high) if high == int(high) else high}")
    return value


FILTER_FIELDS = (
    FilterField("track_id", "exclude", param="exclude_track_ids"),
    FilterField("file", "exclude", param="exclude_files"),
    FilterField("album", "exact", "Album", "of this album"),
    FilterField("artist", "exact", "Artist", "of this artist"),
    FilterField("tags", "every", "Tags", "with every one of these tags", option="--tag",
                display="tags"),
    FilterField("duration", "range", "Duration", "this long", unit="seconds", display="clock"),
    FilterField("bpm", "range", "Tempo", "this fast", unit="BPM", display="integer"),
)
PUBLIC_FIELDS = tuple(f for f in FILTER_FIELDS if f.public)
PARAMS = tuple(p for f in PUBLIC_FIELDS for p in f.params)  # what users may set, in the table's order


def _matches(self, track) -> bool:
    """The reference semantics every backend implements: the track passes every field's filter."""
    return all(f.matches(self, track) for f in FILTER_FIELDS)


Filters = make_dataclass(
    "Filters",
    [
        (p, list if f.is_list else Optional[float] if f.kind == "range" else str,
         field(default_factory=list) if f.is_list else field(default=None if f.kind == "range" else ""))
        for f in FILTER_FIELDS
        for p in f.params
    ],
    namespace={"matches": _matches, "__doc__": "What a search keeps: one parameter per FILTER_FIELDS input."},
)
Filters.__module__ = __name__


def parse_filters(source) -> dict:
    """{parameter: value} of the public filters given in ``source`` (form, query string or JSON object).

    ``tags`` (any list field) may be a list or a comma-separated text. ValueError on bad input."""
    if not isinstance(source, dict):
        raise ValueError("filters must be an object")
    values = {}
    for f in PUBLIC_FIELDS:
        values.update(f.parse(source))
    return values


def mask(filters, snapshot) -> Optional[np.ndarray]:
    """Boolean mask of the snapshot's tracks that pass ``filters`` (``matches`` semantics); None when all pass.

    ``snapshot`` has ``columns`` {name: array} (see ``FilterField.column``) and ``equals(name, value)``: a new
    boolean array, True where the track's ``name`` is (for a set column: holds) ``value``."""
    if filters is None:
        return None
    result = None
    for f in FILTER_FIELDS:
        keep = f.mask(filters, snapshot)
        if keep is not None:
            if result is None:
                result = keep
            else:
                result &= keep  # every field's mask is a new array
    return result


def atlas_filter(filters) -> Optional[dict]:
    """``filters`` as a $vectorSearch pre-filter (``matches`` semantics), or None when it keeps everything."""
    clauses = [c for f in FILTER_FIELDS for c in f.atlas_clauses(filters)]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def filters_model():
    """A pydantic model of the public ``filters`` object of a search (for the OpenAPI document)."""
    from typing import Literal, Union

    from pydantic import ConfigDict, Field, create_model

    definitions = {}
    for f in PUBLIC_FIELDS:
        described = f"Only tracks {f.help}." if f.help else None
        if f.kind == "range":
            for p, side in zip(f.params, ("at least", "at most")):
                text = f"{f.label} {side} this{f' ({f.unit})' if f.unit else ''}."
                definitions[p] = (Optional[float], Field(None, ge=f.low, le=f.high, description=text))
        elif f.is_list:
            text = f"{described} A list, or a comma-separated text." if described else None
            definitions[f.params[0]] = (Optional[Union[list[str], str]], Field(None, description=text))
        else:
            kind = Literal[f.choices] if f.choices else str
            definitions[f.params[0]] = (Optional[kind], Field(None, description=described))
    return create_model("Filters", __config__=ConfigDict(extra="forbid"), **definitions)
