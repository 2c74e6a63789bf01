"""Which files we take: the audio formats (by extension) and the size limit. One place for the CLI, the storages,
the decoder, the routes, the templates' file inputs and, through them, the page's JavaScript."""

from pathlib import PurePosixPath

# The formats the decoder reads: extension -> (the type stored and played back as, the format's name, whether only
# ffmpeg decodes it). Anything else is stored without its extension and played back as application/octet-stream.
FORMATS = {
    ".mp3": ("audio/mpeg", "MP3", False),
    ".wav": ("audio/wav", "WAV", False),
    ".flac": ("audio/flac", "FLAC", False),
    ".ogg": ("audio/ogg", "OGG", False),
    ".oga": ("audio/ogg", "OGG", False),
    ".opus": ("audio/ogg", "Opus", False),
    ".aif": ("audio/aiff", "AIFF", False),
    ".aiff": ("audio/aiff", "AIFF", False),
    ".m4a": ("audio/mp4", "M4A/AAC", True),
    ".mp4": ("audio/mp4", "MP4", True),
    ".aac": ("audio/aac", "AAC", True),
    ".wma": ("audio/x-ms-wma", "WMA", True),
    ".webm": ("audio/webm", "WebM", True),
    ".mka": ("audio/x-matroska", "Matroska", True),
}
AUDIO_SUFFIXES = frozenset(FORMATS)
AUDIO_TYPES = {suffix: content_type for suffix, (content_type, _, _) in FORMATS.items()}
FFMPEG_ONLY = {suffix: name for suffix, (_, name, ffmpeg) in FORMATS.items() if ffmpeg}
# The file inputs' accept= attribute (a browser's type for a file may be missing or odd: the extensions too).
ACCEPT = ",".join(["audio/*", *FORMATS])


def is_audio(filename: str, content_type: str = "") -> bool:
    """An audio type, or a name with one of our extensions (browsers send no type, or a generic one, for some)."""
    return base_type(content_type).startswith("audio/") or PurePosixPath(filename).suffix.lower() in FORMATS


def base_type(content_type: str) -> str:
    """'Audio/MPEG; charset=x' -> 'audio/mpeg'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def max_bytes(config) -> int:
    return int(config["MAX_UPLOAD_BYTES"])


class TooLarge(ValueError):
    """A file over MAX_UPLOAD_BYTES. ``reason`` reads after the file's name: 'is 250 MB, the limit is 200 MB'."""

    def __init__(self, name, size, limit):
        self.reason = f"is {megabytes(size)}, the limit is {megabytes(limit)}"
        super().__init__(f"{name} is too large: {megabytes(size)}, the limit is {megabytes(limit)}")


def check_size(name: str, size: int, config) -> int:
    """``size`` when it is within MAX_UPLOAD_BYTES; TooLarge naming the file otherwise."""
    limit = max_bytes(config)
    if size > limit:
        raise TooLarge(name, size, limit)
    return size


def megabytes(n: int) -> str:
    """A size for people: '250 MB', '1.5 MB'."""
    mb = n / 2**20
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"
