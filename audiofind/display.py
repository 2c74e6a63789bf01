"""How numbers look to people (the page and the command line): durations, scores, the loudness picture."""

from functools import lru_cache

def clock(seconds):
    """123.4 -> '2:03'."""
    if seconds is None:
        return "–"
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def percent(score):
    return "–" if score is None else f"{max(0.0, float(score)) * 100:.0f}%"


def envelope_svg(envelope, duration, match_start=None, match_end=None, width=300, height=44, bars=90):
    """Coordinates for a server-rendered loudness picture: one bar per slice of time (the loudest moment in
    it), drawn as a single stroked path, and the best-matching region to highlight."""
    values = tuple(envelope or ())
    region = None
    if duration and match_start is not None:
        end = match_end if match_end is not None else match_start
        x = width * max(0.0, min(1.0, match_start / duration))
        w = max(width * (min(end, duration) - match_start) / duration, 2.0)
        region = {"x": round(x, 1), "width": round(min(w, width - x), 1)}
    path, bar = _bars(values, width, height, bars)
    return {"width": width, "height": height, "path": path, "bar": bar, "region": region}


@lru_cache(maxsize=4096)
def _bars(envelope, width, height, bars):
    """The same track comes back in many result lists: its picture is drawn once per process."""
    values = [min(1.0, max(0.0, float(v))) for v in envelope]
    if len(values) > bars:
        step = len(values) / bars
        values = [max(values[int(i * step): max(int((i + 1) * step), int(i * step) + 1)]) for i in range(bars)]
    middle, dx = height / 2, width / max(len(values), 1)
    path = " ".join(
        f"M{(i + 0.5) * dx:.1f},{middle - max(v, 0.04) * (middle - 2):.1f}V{middle + max(v, 0.04) * (middle - 2):.1f}"
        for i, v in enumerate(values)
    ) or f"M0,{middle}H{width}"
    return path, round(dx * 0.62, 2)
