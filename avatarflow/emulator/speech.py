"""Narration audio: espeak-ng speech when the optional wheel is there, else ``None``.

``None`` tells the video renderer to use a sine tone of the narration's length instead.
Speech is best effort: a missing wheel, a crash of the C library, an unknown voice or a
timeout all degrade to the tone and never fail a job.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from avatarflow.emulator.narration import Narration

log = logging.getLogger(__name__)
_CHILD = Path(__file__).with_name("_espeak_child.py")
SPEECH_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Speech:
    path: Path
    seconds: float


def espeak_paths() -> tuple[str, str] | None:
    """Library and data folder of the ``espeakng_loader`` wheel, if it is installed."""
    try:
        import espeakng_loader

        library = str(espeakng_loader.get_library_path())
        data = str(espeakng_loader.get_data_path())
    except Exception:  # not installed, or a broken install: narrate with a tone
        return None
    if not Path(library).exists():
        return None
    return library, data


def synthesize(narration: Narration, out_path: Path) -> Speech | None:
    """Speak ``narration`` into ``out_path`` (WAV); ``None`` when speech is unavailable."""
    paths = espeak_paths()
    if paths is None or not narration.spoken_text:
        return None
    library, data = paths
    voice = narration.lang
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(_CHILD), library, data, voice, str(out_path)],
            input=narration.espeak_ssml().encode(),
            capture_output=True,
            timeout=SPEECH_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            log.debug("espeak child exited with %s", result.returncode)
            return None
        with wave.open(str(out_path), "rb") as wav:
            seconds = wav.getnframes() / float(wav.getframerate())
    except (OSError, subprocess.SubprocessError, wave.Error, EOFError, ZeroDivisionError):
        log.debug("espeak failed; narrating with a tone", exc_info=True)
        return None
    return Speech(out_path, seconds) if seconds > 0 else None
