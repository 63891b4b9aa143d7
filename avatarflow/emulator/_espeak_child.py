"""Synthesise SSML read from stdin to a WAV file with libespeak-ng (run in a child process).

Usage: python -I -S _espeak_child.py LIBRARY DATA_DIR VOICE OUT.wav

A child process keeps a crash inside the C library away from the emulator; it uses only
the standard library so that it starts in a few milliseconds.
"""

import ctypes
import os
import sys
import wave

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE = 1
CHARS_UTF8 = 1
SSML = 0x10
WORDS_PER_MINUTE = 150


def main() -> int:
    library, data_dir, voice, out_path = sys.argv[1:5]
    text = sys.stdin.buffer.read()
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    # espeak wants the folder that holds "espeak-ng-data".
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, os.path.dirname(data_dir.rstrip("/")).encode(), 0
    )
    if rate <= 0:
        return 2
    chunks = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(samples, count, events):  # type: ignore[no-untyped-def]
        if count > 0:
            chunks.append(ctypes.string_at(samples, count * 2))
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    names = [voice.lower(), voice.split("-")[0].lower(), "en"]
    if not any(lib.espeak_SetVoiceByName(name.encode()) == 0 for name in names):
        return 3
    lib.espeak_SetParameter(ESPEAK_RATE, WORDS_PER_MINUTE, 0)
    if lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, CHARS_UTF8 | SSML, None, None) != 0:
        return 4
    lib.espeak_Synchronize()
    with wave.open(out_path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(chunks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
