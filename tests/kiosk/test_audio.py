"""espeak-ng speaks each kiosk language: render to WAV and check it is speech-length and not silent."""

from __future__ import annotations

import array
import math
import subprocess
import wave

import pytest

from kiosk.audio import Speaker
from kiosk.i18n import Translator
from tests.support.tools import require


@pytest.fixture(autouse=True)
def _espeak_ng():
    require("espeak-ng")


def rms_and_seconds(path) -> tuple[float, float]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples))), seconds


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_thank_you_is_spoken_aloud_in_each_language(tmp_path, lang):
    text = Translator().gettext("We received your answer.", lang)
    assert lang == "en" or text != "We received your answer.", "the spoken text is translated"
    wav = Speaker().render(text, lang, tmp_path / f"thanks-{lang}.wav")
    rms, seconds = rms_and_seconds(wav)
    assert seconds > 1.0, f"{lang}: only {seconds:.2f} s of audio"
    assert rms > 500, f"{lang}: RMS {rms:.0f} is near silence"


def test_sox_agrees_the_speech_is_not_silent(tmp_path):
    require("sox")
    wav = Speaker().render("Millainen käyntisi oli tänään?", "fi", tmp_path / "q.wav")
    stat = subprocess.run(["sox", str(wav), "-n", "stat"], check=False, capture_output=True, text=True).stderr
    max_amplitude = float(next(line for line in stat.splitlines() if line.startswith("Maximum amplitude")).split(":")[1])
    assert max_amplitude > 0.1, stat


def test_a_new_text_interrupts_the_one_being_spoken():
    speaker = Speaker(binary="sleep")
    speaker.command = lambda text, lang: ["sleep", "30"]
    speaker.say("first", "fi")
    first = speaker._current
    speaker.say("second", "fi")
    assert first.poll() is not None, "the first text should have been stopped"
    speaker.close()
    assert speaker._current is None
