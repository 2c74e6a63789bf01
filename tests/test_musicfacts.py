"""Key, vocals and energy from generated audio whose facts are known (tests/musicgen.py)."""

import numpy as np
import pytest

from audiofind import musicfacts
from audiofind.musicfacts import MusicFacts, analyse, camelot, compatible_keys, parse_key, vocals_from_tags
from tests import musicgen

SR = 22050


@pytest.mark.parametrize("tonic, mode, timbre", [(0, "major", "piano"), (9, "minor", "saw"), (6, "minor", "organ")])
def test_a_chord_progression_is_heard_in_its_key(tonic, mode, timbre):
    facts = analyse(musicgen.progression(tonic, mode, 9.6, SR, timbre, drums=True), SR)
    assert (facts.key.tonic, facts.key.mode) == (tonic, mode), facts.key
    assert facts.key.confidence > 0


def test_c_major_is_named_c_major_or_its_relative_a_minor():
    key = analyse(musicgen.progression(0, "major", 9.6, SR, "square", chords=["I", "IV", "V", "I"]), SR).key
    assert key.name in ("C major", "A minor")
    assert key.camelot[:-1] == "8"


def test_camelot_codes_and_compatible_keys():
    assert camelot(0, "major") == "8B" and camelot(9, "minor") == "8A" and camelot(7, "major") == "9B"
    assert camelot(4, "minor") == "9A"  # E minor, relative of G major
    c_major = {musicfacts.Key(t, m, 0).name for t, m in compatible_keys(0, "major")}
    assert c_major == {"C major", "A minor", "G major", "F major"}
    assert {camelot(t, m) for t, m in compatible_keys(9, "minor")} == {"8A", "8B", "9A", "7A"}


@pytest.mark.parametrize("text, expected", [("C major", (0, "major")), ("Am", (9, "minor")), ("f# minor", (6, "minor")),
                                            ("Bb", (10, "major")), ("Db major", (1, "major")), ("8A", (9, "minor")),
                                            ("12B", (4, "major"))])
def test_keys_are_read_as_people_write_them(text, expected):
    assert parse_key(text) == expected


def test_a_key_that_is_not_one_is_refused():
    with pytest.raises(ValueError):
        parse_key("H major")
    with pytest.raises(ValueError):
        parse_key("13A")


def test_a_sung_vowel_over_accompaniment_is_vocal_and_the_accompaniment_alone_is_not():
    accompaniment = musicgen.progression(2, "major", 9.6, SR, "piano", seed=1, drums=True)
    voice = musicgen.sung(2, "major", 9.6, SR, seed=1)
    with_voice = analyse(musicgen.mix((accompaniment, 0), (voice, -3)), SR)
    alone = analyse(accompaniment, SR)
    assert with_voice.vocal and not alone.vocal
    assert with_voice.vocal_score > alone.vocal_score


def test_tags_decide_vocals_where_the_embedder_gives_them():
    assert vocals_from_tags([]) is None
    assert vocals_from_tags([("Music", 0.9), ("Singing", 0.4)]) == pytest.approx(0.4)
    assert vocals_from_tags([("Music", 0.9), ("Orchestra", 0.3)]) == 0.0
    voice = musicgen.mix((musicgen.progression(0, "major", 6, SR), 0), (musicgen.sung(0, "major", 6, SR), 0))
    assert not analyse(voice, SR, tags=[("Music", 0.9), ("Orchestra", 0.3)]).vocal  # the tags win
    assert analyse(musicgen.progression(0, "major", 6, SR), SR, tags=[("Music", 0.8), ("Singing", 0.5)]).vocal


def test_a_louder_brighter_busier_mix_has_more_energy():
    chords = musicgen.progression(0, "major", 9.6, SR, "sine", seed=2)
    drums = musicgen.drum_track(9.6, SR)
    quiet = analyse(0.1 * chords, SR)
    full = analyse(musicgen.mix((chords, 0), (drums, -3)), SR)
    assert 0 <= quiet.energy < full.energy <= 1
    assert full.loudness > quiet.loudness and full.activity > quiet.activity


def test_streamed_blocks_give_the_facts_of_the_whole_signal():
    x = musicgen.mix((musicgen.progression(5, "minor", 9.6, SR, "saw"), 0), (musicgen.sung(5, "minor", 9.6, SR), -6))
    facts = MusicFacts(SR)
    blocks = [x[i : i + 7919] for i in range(0, len(x), 7919)]  # odd block sizes
    assert sum(len(b) for b in facts.tap(blocks)) == len(x)
    streamed, whole = facts.finish(), analyse(x, SR)
    assert streamed.key == whole.key
    assert streamed.energy == pytest.approx(whole.energy, abs=1e-3)
    assert streamed.vocal_score == pytest.approx(whole.vocal_score, abs=1e-3)


def test_silence_has_no_key_no_voice_and_no_energy():
    facts = analyse(np.zeros(5 * SR, np.float32), SR)
    assert facts.key is None and not facts.vocal and facts.energy == 0
    assert facts.as_dict() == {"key": None, "camelot": None, "key_confidence": None, "vocal": False,
                               "vocal_score": 0.0, "energy": 0.0}


@pytest.mark.parametrize("rate", [32000, 44100])
def test_other_sample_rates_give_the_same_key(rate):
    import soxr

    x = soxr.resample(musicgen.progression(7, "major", 9.6, SR, "piano", drums=True), SR, rate)
    assert analyse(x, rate).key.name == "G major"
