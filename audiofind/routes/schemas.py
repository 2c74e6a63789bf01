"""The bodies the API and the page's forms take and give, declared once. pydantic validates them, and the OpenAPI
document (routes/openapi.py) is generated from them; a refusal names the field and the reason."""

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from audiofind.catalog import DEFAULT_MODE, SEARCH_MODES
from audiofind.index import filters as table
from audiofind.routes.errors import UserError

MAX_LIMIT = 100
MAX_FILENAME = 255
MAX_OFFSET = 10**9
MAX_TEXT = 500  # characters of a title, artist, album or tag


def _bounded(kind, low, high=None, description=None):
    """A number from JSON or from a form's text, within low..high (both included)."""

    def not_a_flag(value):
        if isinstance(value, bool):
            raise ValueError("must be a number")
        return value

    def within(value):
        if not (low <= value and (high is None or value <= high)):  # also refuses NaN
            raise ValueError(f"must be between {low} and {high}" if high is not None else f"must be at least {low}")
        return value

    limits = {"minimum": low, **({"maximum": high} if high is not None else {})}
    return Annotated[kind, BeforeValidator(not_a_flag), AfterValidator(within),
                     Field(description=description, json_schema_extra=limits)]


Seconds = _bounded(float, 0, MAX_OFFSET, "Seconds.")
Count = _bounded(int, 1, MAX_LIMIT)
Offset = _bounded(int, 0, MAX_OFFSET, "Skip this many.")
Bytes = _bounded(int, 1, None, "Bytes.")
PageSize = _bounded(int, 1, 500, "Page size.")
WidgetSize = _bounded(int, 1, 20, "How many similar tracks.")
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Key = Annotated[str, Field(min_length=1, max_length=1024,
                           description="The key POST /uploads answered; send the file to its upload_url first.")]
MAX_MARKS = 50  # track ids in one like or unlike list
TrackId = Annotated[str, Field(min_length=1, max_length=200)]


def _id_list(value):
    """A list of track ids, or comma-separated text (a query string's or a form's)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


TrackIds = Annotated[list[TrackId], BeforeValidator(_id_list), Field(max_length=MAX_MARKS)]


class Input(BaseModel):
    """A request body, query or form. An empty form field (or a JSON null) is a field not given. With ``known_as``
    set, a field the model does not have is refused by that name ("unknown filter 'colour'; known: …")."""

    model_config = ConfigDict(extra="ignore")
    known_as: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _given(cls, data):
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None and not (isinstance(v, str) and not v.strip())}
        unknown = sorted(set(data) - set(cls.model_fields)) if cls.known_as else []
        if unknown:
            raise ValueError(f"unknown {cls.known_as} {unknown[0]!r}; known: {', '.join(cls.model_fields)}")
        return data


class Filters(Input, table.filters_model()):
    """The catalog filters, from the filter table (index/filters.py): its fields and their descriptions (the OpenAPI
    document), and its parse_filters checking them (text, a list or comma-separated text, bounds, min <= max).
    The API's ``filters`` object, and flat fields of the page's search form and of "more like this"."""

    model_config = ConfigDict(extra="forbid")
    known_as: ClassVar[str] = "filter"

    @model_validator(mode="before")
    @classmethod
    def _table(cls, data):
        if not isinstance(data, dict):
            return data  # pydantic refuses it: "filters must be an object"
        return {**{k: v for k, v in data.items() if k not in table.PARAMS}, **table.parse_filters(data)}

    def given(self) -> dict:
        """Only the filters given, as index.base.Filters keyword arguments."""
        return self.model_dump(include=set(table.PARAMS), exclude_none=True)


FILTER_FIELDS = table.PARAMS


class SearchOptions(Input):
    limit: Count = Field(10, description="How many results.")
    mode: Literal[SEARCH_MODES] = Field(DEFAULT_MODE, description=(
        "auto: the best-matching passages for a reference shorter than 60 s, else the whole tracks' sound; "
        "track or segment force one."))
    per_album: Optional[Count] = Field(None, description="At most this many results per album.")
    per_artist: Optional[Count] = Field(None, description="At most this many results per artist.")
    collapse_versions: bool = Field(True, description="One result per group of versions of a recording.")

    def options(self) -> dict:
        return self.model_dump(include=set(SearchOptions.model_fields))


class Marks(Input):
    """Refining: catalog tracks marked "more like this" and "less like this" (audiofind/refine.py)."""

    like: TrackIds = Field([], description="Track ids: more like these (a list, or comma-separated text).")
    unlike: TrackIds = Field([], description="Track ids: less like these; they and their nearest tracks are left out.")

    def marks(self) -> dict:
        return {"like": list(dict.fromkeys(self.like)), "unlike": list(dict.fromkeys(self.unlike))}


class NewSearch(SearchOptions, Marks):
    """POST /api/v1/searches, and the search page's form (its filter fields are flat: see ``from_form``).
    With ``key``, an uploaded reference (refined by ``like``/``unlike``); without, the tracks that sound like
    the ``like`` tracks ("sounds like these")."""

    key: Optional[Key] = None
    start: Optional[Seconds] = Field(None, description="Use the file from here (seconds).")
    end: Optional[Seconds] = Field(None, description="… to here (seconds).")
    filters: Filters = Field(default_factory=Filters)

    @model_validator(mode="after")
    def _range(self):
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.key is None and not self.like:
            raise ValueError("key is required (or like, to search by catalog tracks): ask POST /api/v1/uploads "
                             "for a key and send the file there first")
        return self

    @classmethod
    def from_form(cls, form) -> "NewSearch":
        data = form_values(form)
        data["filters"] = {name: data.pop(name) for name in FILTER_FIELDS if name in data}
        return parse(cls, data)

    def job_options(self) -> dict:
        """What the search job takes (jobs/search.py)."""
        return {**self.options(), **self.marks(), "start": self.start, "end": self.end,
                "filters": self.filters.given()}


class SimilarQuery(SearchOptions, Marks, Filters):
    """GET /tracks/<id>/similar, the page's and the API's: the search options and the filters, flat."""

    model_config = ConfigDict(extra="ignore")
    known_as: ClassVar[str] = ""


class TracksQuery(Input):
    q: str = Field("", description="Text in the file name, title, artist or album.")
    cursor: str = Field("", description="The next_cursor of the page before (as fast at any depth).")
    offset: Offset = 0
    limit: PageSize = 50


class AdminTracksQuery(Input):
    q: str = ""
    offset: Offset = 0


class WidgetQuery(Input):
    limit: WidgetSize = 5


Fraction = _bounded(float, 0, 1)
WHOLE_MAP = (0.0, 0.0, 1.0, 1.0)


class MapQuery(Input):
    """GET /map: the view of the catalog map (routes/map.py); the viewport in map units, 0..1 each way."""

    colour: Literal["album", "tag", "bpm", "energy", "none"] = "album"
    view: Literal["layout", "coarse"] = "layout"
    x0: Optional[Fraction] = None
    y0: Optional[Fraction] = None
    x1: Optional[Fraction] = None
    y1: Optional[Fraction] = None
    search: Annotated[str, Field(max_length=64)] = ""  # a search job's id: its reference and results drawn
    track: Annotated[str, Field(max_length=64)] = ""  # a track's id: it and its neighbours drawn

    @model_validator(mode="after")
    def _viewport(self):
        given = [v is not None for v in (self.x0, self.y0, self.x1, self.y1)]
        if any(given) and not all(given):
            raise ValueError("a viewport needs x0, y0, x1 and y1")
        if all(given) and not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError("a viewport needs x1 > x0 and y1 > y0")
        return self

    def viewport(self) -> tuple:
        return WHOLE_MAP if self.x0 is None else (self.x0, self.y0, self.x1, self.y1)

    def state(self) -> dict:
        """What a link to another viewport of this view keeps (the defaults left out)."""
        kept = {"colour": self.colour, "view": self.view, "search": self.search, "track": self.track}
        defaults = {"colour": "album", "view": "layout", "search": "", "track": ""}
        return {k: v for k, v in kept.items() if v != defaults[k]}


class NewUpload(Input):
    filename: Annotated[str, Field(min_length=1, max_length=MAX_FILENAME, description=(
        "The file's name; its extension tells the format where the type does not."))]
    content_type: Optional[str] = Field(None, description="The file's type, as the browser gives it.")
    size: Bytes


class Metadata(Input):
    """Given with an ingest; the CSV import sets the same fields."""

    model_config = ConfigDict(extra="forbid")
    known_as: ClassVar[str] = "metadata field"

    title: Optional[Text] = None
    artist: Optional[Text] = None
    album: Optional[Text] = None
    tags: Optional[Union[Text, list[Text]]] = Field(None, description="A list, or comma-separated text.")


class NewIngest(Input):
    key: Key
    filename: Optional[Annotated[str, Field(max_length=MAX_FILENAME)]] = Field(
        None, description="The name the catalog shows (default: the uploaded file's).")
    metadata: Metadata = Field(default_factory=Metadata)


# -- answers


class Error(BaseModel):
    error: str = Field(examples=["not_audio"], description="A code for programs.")
    message: str = Field(description="For people: names the field or file and the reason.")


class UploadTarget(BaseModel):
    upload_url: str = Field(description="Send the file's bytes here, once, with this method and these headers.")
    method: str
    headers: dict[str, str]
    key: str = Field(description="Name this key to POST /searches or POST /tracks once the bytes are sent.")


class Track(BaseModel):
    model_config = ConfigDict(extra="allow")  # plugins add fields (hookspecs: extra_track_fields)

    track_id: str
    file: str = Field(description="The original file name.")
    title: str = ""
    artist: str = ""
    album: str = ""
    duration: float = Field(description="Seconds.")
    bpm: Optional[float] = None
    key: str = Field("", description='Musical key, e.g. "A minor"; empty when not measured (a track from '
                     'before the facts: `audiofind reindex`).')
    camelot: str = Field("", description='The key\'s Camelot code, e.g. "8A".')
    vocals: str = Field("", description='"vocal" or "instrumental"; empty when not measured.')
    energy: Optional[float] = Field(None, description="0 calm .. 1 intense; null when not measured.")
    tags: list[str] = []
    labels: list[tuple[str, float]] = Field([], description="[label, score] from the model, best first.")
    group_id: str = Field("", description="Shared by tracks that are versions of each other.")
    playback_url: Optional[str] = Field(None, description="Signed, expiring audio URL.")
    url: str = Field(description="The track's page.")


class Result(Track):
    rank: int
    score: Optional[float] = Field(description=(
        "Higher is closer. Ranked by whole tracks: their mutual proximity, 0-1 (how much closer the two are than "
        "each is to the catalog's tracks in general). Ranked by segments: the mean over the reference's windows "
        "of their best similarity (cosine) in this track."))
    match_start: Optional[float] = Field(description="Where the best-matching passage starts, seconds.")
    match_end: Optional[float] = None
    versions: int = Field(1, description="Versions of this recording that matched and were collapsed into it.")


class TrackList(BaseModel):
    tracks: list[Track]
    offset: int
    limit: int
    total: int = Field(description="How many tracks match q.")
    next_cursor: Optional[str] = Field(description="null on the last page.")


class SimilarTracks(BaseModel):
    track_id: str
    results: list[Result]


class Accepted(BaseModel):
    id: str
    status_url: str = Field(description="Poll this until status is finished or failed.")


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "started", "finished", "failed", "stopped", "canceled"]
    stage: Optional[Literal["queued", "analyzing", "searching", "done", "failed"]]
    error: Optional[str] = Field(description="Why the job failed, for people.")


class SearchStatus(JobStatus):
    results: list[Result]


class IngestOutcome(BaseModel):
    status: Literal["added", "duplicate"]
    track_id: str
    file: str
    title: str = ""
    version_of: Optional[str] = Field(None, description="The track this one is a version of.")


class IngestStatus(JobStatus):
    file: Optional[str]
    result: Optional[IngestOutcome]


class Document(BaseModel):
    model_config = ConfigDict(extra="allow")
    openapi: str


# -- reading forms and query strings, and saying what is wrong


def form_values(form) -> dict:
    """A form's or query string's fields; of a field sent twice the last (a hidden "0" before its checkbox's "1")."""
    return {name: form.getlist(name)[-1] for name in form}


def parse(model, source: Any):
    """``source`` (a dict, or a form / query string) as ``model``, or the UserError that says what is wrong."""
    if hasattr(source, "getlist"):
        source = form_values(source)
    try:
        return model.model_validate(source)
    except ValidationError as error:
        raise invalid(error) from None


MESSAGES = {
    "missing": "is required",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of a sensible size",
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
}


def invalid(error: ValidationError) -> UserError:
    """The first problem, as a message naming the field: 'limit must be between 1 and 100', 'key is required: …'."""
    problem = error.errors(include_url=False)[0]
    # a union's member names ("constrained-str") are not fields
    field = ".".join(str(p) for p in problem["loc"] if isinstance(p, int) or p.isidentifier()) or "the body"
    kind, context, given = problem["type"], problem.get("ctx") or {}, problem.get("input")
    if kind == "value_error":
        reason = str(context.get("error", problem["msg"]))
        return UserError(f"{field} {reason}" if reason.startswith("must ") else reason)
    if kind == "literal_error":
        return UserError(f"{field} must be one of {context['expected'].replace(' or ', ', ')}")
    if kind == "string_too_long":
        return UserError(f"{field} must be text of at most {context['max_length']} characters")
    reason = MESSAGES.get(kind) or problem["msg"][:1].lower() + problem["msg"][1:]
    if kind.endswith("_parsing") and isinstance(given, str):
        reason += f", not {given[:40]!r}"
    if kind == "missing" and field == "key":
        reason += ": ask POST /api/v1/uploads for one and send the file there first"
    return UserError(f"{field} {reason}")


# -- shortlists (routes/shortlists.py)

ShortlistName = Annotated[str, Field(min_length=1, max_length=200, description="Shown on its pages and exports.")]
Note = Annotated[str, Field(max_length=2000)]


class NewShortlist(Input):
    name: ShortlistName
    track_ids: TrackIds = Field([], description="Catalog track ids, in this order.")


class ShortlistRename(Input):
    name: ShortlistName


class NewItem(Input):
    track_id: TrackId
    note: Note = ""


class ItemNote(Input):
    note: Note = Field("", description="The note on this track (empty: none).")


class ShortlistOrder(Input):
    track_ids: list[TrackId] = Field(description="Every track id of the shortlist once, in the new order.")


class ShortlistItem(BaseModel):
    track_id: str
    note: str
    missing: bool = Field(description="The track was removed from the catalog (``title`` is what it was called).")
    title: str
    track: Optional[Track] = Field(description="The catalog track; null when missing.")


class SharedShortlist(BaseModel):
    share_id: str
    share_url: str = Field(description="The read-only page anyone with the link can open.")
    name: str
    created_at: float
    updated_at: float
    items: list[ShortlistItem]


class Shortlist(SharedShortlist):
    shortlist_id: str


class ShortlistSummary(BaseModel):
    shortlist_id: str
    share_id: str
    name: str
    tracks: int
    updated_at: float
    url: str


class ShortlistList(BaseModel):
    shortlists: list[ShortlistSummary]
