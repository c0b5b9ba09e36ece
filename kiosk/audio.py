"""Speech for patients with low vision: espeak-ng reads the question, options and thanks.

Why espeak-ng: it is in Debian and Raspberry Pi OS, works offline, and has
Finnish, Swedish and English voices in the one package. It is optional
(``[ui] audio = true`` in kiosk.toml, plus a speaker on the Pi's audio out).

Speaking never blocks the UI: :meth:`Speaker.say` starts espeak-ng and
returns; a new text interrupts the one still being spoken, so a patient who
presses "listen" twice hears it once, from the start.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

from .errors import SpeechUnavailable

_LOGGER = logging.getLogger(__name__)

VOICES = {"fi": "fi", "sv": "sv", "en": "en-gb"}
"""espeak-ng voice per kiosk language."""

WORDS_PER_MINUTE = 140
"""A little slower than espeak-ng's default 175: easier to follow (plain-language guidance)."""


class Speaker:
    """Speaks one text at a time through espeak-ng's own audio output."""

    def __init__(self, binary: str = "espeak-ng", words_per_minute: int = WORDS_PER_MINUTE) -> None:
        path = shutil.which(binary)
        if path is None:
            raise SpeechUnavailable(f"{binary} not found: apt-get install espeak-ng, or set [ui] audio = false")
        self.binary = path
        self.words_per_minute = words_per_minute
        self._current: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def command(self, text: str, lang: str) -> list[str]:
        voice = VOICES.get(lang, VOICES["en"])
        return [self.binary, "-v", voice, "-s", str(self.words_per_minute), "--", text]

    def say(self, text: str, lang: str) -> None:
        """Start speaking (interrupting any earlier text) and return at once."""
        with self._lock:
            self._stop_locked()
            try:
                self._current = subprocess.Popen(
                    self.command(text, lang), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            except OSError:
                _LOGGER.exception("could not start espeak-ng")
                self._current = None

    def render(self, text: str, lang: str, wav_path: str | Path) -> Path:
        """Write the speech to a WAV file instead of the speaker (tests, and checking voices)."""
        wav_path = Path(wav_path)
        cmd = self.command(text, lang)
        subprocess.run([*cmd[:-2], "-w", str(wav_path), "--", text], check=True, capture_output=True, timeout=30)
        return wav_path

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        process, self._current = self._current, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                process.kill()

    def close(self) -> None:
        """Idempotent."""
        self.stop()
