"""What the benchmarks share: real music fetched once into bench/data/ (not committed), machine facts, timing."""

import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
WESNOTH_PACKAGE = "wesnoth-1.16-music"
# Cnn14's cost per 10 s of audio, 42.2 G (issue 5 calls them multiply-adds; the 12 convolutions alone count
# 20.1 G multiply-adds = 40 GFLOP per 10 s, so we read the figure as FLOP). Used for achieved FLOP/s.
CNN14_FLOP_PER_SECOND = 42.2e9 / 10

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def debian_music(package: str, folder_name: str = "music") -> list:
    """The OGG (Vorbis or Opus) music files of a Debian package (under a folder named ``folder_name``, any
    case), downloaded with apt-get and unpacked with dpkg -x into bench/data/<package> once."""
    folder = DATA / package
    if not folder.is_dir():
        if not shutil.which("apt-get") or not shutil.which("dpkg"):
            raise SystemExit(f"need apt-get and dpkg to fetch {package} (or unpack it into {folder})")
        DATA.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=DATA) as tmp:
            print(f"fetching {package} with apt-get download ...", file=sys.stderr)
            _run(["apt-get", "download", package], cwd=tmp)
            deb = next(Path(tmp).glob("*.deb"))
            _run(["dpkg", "-x", str(deb), str(Path(tmp) / "unpacked")])
            (Path(tmp) / "unpacked").rename(folder)
    tracks = sorted(
        p for p in folder.rglob("*")
        if p.suffix in (".ogg", ".opus") and p.is_file() and folder_name in (part.lower() for part in p.parts)
    )
    if not tracks:
        raise SystemExit(f"no .ogg/.opus files under {folder}: delete it and run again")
    return tracks


def wesnoth_tracks() -> list:
    """The 41 OGG Vorbis tracks of Debian's wesnoth-1.16-music."""
    return debian_music(WESNOTH_PACKAGE)


# Game soundtracks in Debian, one album each: Wesnoth (orchestral, 41 tracks), Flare (orchestral fantasy, 12),
# Hedgewars (light themes of many styles, 26).
SOUNDTRACKS = {"Wesnoth": WESNOTH_PACKAGE, "Flare": "flare-game", "Hedgewars": "hedgewars-data"}
# Two more sets of game music, one album per package, {album: (package, folder holding the music)}: the dsp
# embedder's features were chosen on DEVELOPMENT_MUSIC and are reported on HELD_OUT_MUSIC, never tuned on it.
DEVELOPMENT_MUSIC = {
    "Wesnoth": (WESNOTH_PACKAGE, "music"),
    "Hedgewars": ("hedgewars-data", "music"),
    "HyperRogue": ("hyperrogue-music", "music"),  # 17 tracks, 43 min
    "Singularity": ("singularity-music", "music"),  # 16 tracks, ambient electronic
}
HELD_OUT_MUSIC = {
    "Flare": ("flare-game", "music"),
    "Drascula": ("drascula-music", "audio"),  # 31 tracks of a point-and-click adventure
    "Planet Blupi": ("planetblupi-music-ogg", "music"),  # 10 long tracks
    "Warzone 2100": ("warzone2100-music", "music"),  # 30 tracks (Opus), three soundtracks of one game
}
MUSIC_SETS = {"soundtracks": {a: (p, "music") for a, p in SOUNDTRACKS.items()},
              "development": DEVELOPMENT_MUSIC, "held-out": HELD_OUT_MUSIC}


def soundtracks(music_set: str = "soundtracks") -> dict:
    """{album: [track paths]} for one of MUSIC_SETS (by default the packages in SOUNDTRACKS)."""
    return {album: debian_music(package, folder) for album, (package, folder) in MUSIC_SETS[music_set].items()}


def wesnoth_mp3s(bitrate: str = "192k") -> list:
    """The wesnoth tracks re-encoded to MP3 (44.1 kHz stereo, as a catalog would hold them), made once."""
    out = DATA / f"wesnoth-mp3-{bitrate}"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in wesnoth_tracks():
        target = out / (source.stem + ".mp3")
        if not target.exists():
            partial = target.with_suffix(".part.mp3")
            _run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-ar", "44100", "-ac", "2",
                  "-codec:a", "libmp3lame", "-b:a", bitrate, str(partial)])
            partial.rename(target)
        paths.append(target)
    return paths


def cpu_model() -> str:
    try:
        text = _run(["lscpu"]).stdout
        model = re.search(r"Model name:\s*(.+)", text)
        cores = re.search(r"^CPU\(s\):\s*(\d+)", text, re.M)
        return f"{model.group(1).strip() if model else platform.processor()}, {cores.group(1) if cores else '?'} CPUs"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()


def cpu_flags() -> set:
    try:
        text = _run(["lscpu"]).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    match = re.search(r"Flags:\s*(.+)", text)
    return set(match.group(1).split()) if match else set()


def cpu_has_bf16() -> bool:
    """bfloat16 is worth running on CPUs with AVX512-BF16 or AMX (native bf16 dot products)."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def peak_rss_mb(pid=None) -> float:
    """Peak resident memory (VmHWM) of a process, MB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+) kB", status).group(1)) / 1024


def random_checkpoint(path: Path = None) -> Path:
    """A random-weight Cnn14 checkpoint in the official layout; its size is the real file's within a few kB."""
    path = path or DATA / "Cnn14_random.pth"
    if not path.exists():
        import torch

        from audiofind.embedders.panns import build_cnn14

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save({"model": build_cnn14().state_dict()}, path.with_suffix(".part"))
        path.with_suffix(".part").rename(path)
    return path


def duration_seconds(path: Path) -> float:
    from audiofind import audio

    return audio.probe(path, {"MAX_UPLOAD_BYTES": 1 << 40, "MAX_DURATION": 1e9, "MIN_DURATION": 0}).duration
