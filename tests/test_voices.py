"""Voice names checked against the catalogue, with the name that was meant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from avatarflow import voices
from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import read_request_log

from .helpers import MANIFEST, course, run_cli

# (voice written, what the one error line must say after "unknown voice '…'")
TYPOS = [
    ("en-US-AndrewNeurall", "(did you mean 'en-US-AndrewNeural'?)"),
    ("en-GB-Bogus", "; en-GB voices include en-GB-SoniaNeural, en-GB-RyanNeural"),
    ("Andrew", "a voice name starts with its locale (did you mean 'en-US-AndrewNeural'"),
    ("de-DE-Katja", "(did you mean 'de-DE-KatjaNeural'?)"),
    ("fr-FR-DeniseNeurl", "(did you mean 'fr-FR-DeniseNeural'?)"),
    ("ja-JP-NanamyNeural", "(did you mean 'ja-JP-NanamiNeural'?)"),
    ("es-MX-DaliaNeural2", "(did you mean 'es-MX-DaliaNeural'?)"),
    ("it-IT-IsabelaNeural", "(did you mean 'it-IT-IsabellaNeural'?)"),
    ("pt-BR-FrancicsaNeural", "(did you mean 'pt-BR-FranciscaNeural'?)"),
    ("zh-CN-XiaoxioaNeural", "(did you mean 'zh-CN-XiaoxiaoNeural'?)"),
    ("ko-KR-SunhiNeurall", "(did you mean 'ko-KR-SunHiNeural'?)"),
]


def with_video_b(tmp_path: Path, extra: str) -> Path:
    """The demo course with ``extra`` lines (already indented) first in video b (line 13)."""
    text = MANIFEST.replace("  - id: b\n", "  - id: b\n" + extra)
    return course(tmp_path, text)


@pytest.mark.parametrize(("voice", "hint"), TYPOS, ids=[t[0] for t in TYPOS])
def test_a_voice_typo_is_one_line_with_a_suggestion(tmp_path: Path, voice: str, hint: str) -> None:
    manifest = with_video_b(tmp_path, f"    voice: {voice}\n")
    result = run_cli("validate", str(manifest))
    assert (result.code, result.out) == (1, "")
    assert result.err.splitlines() == [result.err.rstrip("\n")]  # one line
    prefix = f"Error: course.yaml:13: videos[1].voice: unknown voice '{voice}'"
    assert result.err.startswith(prefix), result.err
    assert hint in result.err


def test_a_custom_voice_is_exempt_with_a_note(tmp_path: Path) -> None:
    custom = "  custom_voices: {MyBrandVoice: 6f1c2b9e-1d2a-4b5c-8d9e-0a1b2c3d4e5f}\n"
    text = MANIFEST.replace(
        "  vars: {title: Intro}\n", "  vars: {title: Intro}\n  voice: MyBrandVoice\n" + custom
    ).replace("  voice: en-US-AvaMultilingualNeural\n", "")
    result = run_cli("validate", str(course(tmp_path, text)))
    assert result.code == 0, result.err
    assert result.err == (  # once for the three videos that use it
        "warning: custom voice MyBrandVoice is your own deployment: not checked against the "
        "voice catalogue\n"
    )


def test_a_voice_inside_inline_ssml_is_checked(tmp_path: Path) -> None:
    ssml = "<speak version='1.0' xml:lang='en-US'><voice name='en-US-GuyNeurl'>Hi</voice></speak>"
    text = MANIFEST.replace("    text: Hello from video c.\n", f'    ssml: "{ssml}"\n')
    result = run_cli("validate", str(course(tmp_path, text)))
    assert result.code == 1
    assert result.err.startswith(
        "Error: course.yaml:15: videos[2].ssml: unknown voice 'en-US-GuyNeurl' "
        "(did you mean 'en-US-GuyNeural'?) (in the SSML)"
    ), result.err


PLAIN_TEXT = "    input_kind: plain_text\n    voice: {voice}\n    synthesis: {{style: {style}}}\n"


def test_a_style_the_voice_lacks_is_refused_at_its_line(tmp_path: Path) -> None:
    manifest = with_video_b(
        tmp_path, PLAIN_TEXT.format(voice="en-US-JennyNeural", style="cheerfull")
    )
    result = run_cli("validate", str(manifest))
    assert result.code == 1
    assert result.err.startswith(
        "Error: course.yaml:15: videos[1].synthesis.style: voice en-US-JennyNeural has no style "
        "'cheerfull' (did you mean 'cheerful'?); styles: angry, assistant, chat, "
    ), result.err
    good = with_video_b(tmp_path / "ok", PLAIN_TEXT.format(voice="en-US-JennyNeural", style="chat"))
    assert run_cli("validate", str(good)).code == 0


def test_styles_are_checked_only_where_the_catalogue_knows_them(tmp_path: Path) -> None:
    # The shipped subset does not list every voice's styles: those are not refused ...
    manifest = with_video_b(
        tmp_path, PLAIN_TEXT.format(voice="en-US-AvaMultilingualNeural", style="cheerful")
    )
    assert run_cli("validate", str(manifest)).code == 0
    # ... while the service's own list is the whole truth: no StyleList, no styles.
    cache = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "voices.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    listed = [{"name": "en-US-AvaMultilingualNeural", "locale": "en-US", "styles": []}]
    cache.write_text(json.dumps({"source": "s", "as_of": "2026-01-01", "voices": listed}))
    result = run_cli("validate", str(manifest))
    assert result.err == (
        "Error: course.yaml:15: videos[1].synthesis.style: voice en-US-AvaMultilingualNeural "
        "has no speaking styles (style 'cheerful')\n"
    )


def test_catalog_refresh_reads_the_service_list_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "voices.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    stale = {"source": "old", "as_of": "2020-01-01", "voices": [{"name": "xx-XX-OldNeural"}]}
    cache.write_text(json.dumps(stale), "utf-8")
    manifest = course(tmp_path / "course")
    refused = run_cli("validate", str(manifest))  # the cache wins over the shipped list
    assert refused.code == 1 and "unknown voice 'en-US-AvaMultilingualNeural'" in refused.err

    with Emulator(tmp_path / "emu", EmulatorConfig()) as emu:
        monkeypatch.setenv("AZURE_SPEECH_ENDPOINT", emu.url)
        monkeypatch.setenv("AZURE_SPEECH_KEY", "test-key")
        monkeypatch.delenv("AZURE_SPEECH_REGION", raising=False)
        result = run_cli("catalog", "refresh")
        log = read_request_log(tmp_path / "emu")
    assert result.code == 0, result.err
    shipped = len(voices.shipped().voices)
    assert result.out.startswith(f"Wrote {shipped:,} voices to ")
    assert [(r.method, r.path, r.status) for r in log] == [
        ("GET", "/cognitiveservices/voices/list", 200)
    ]
    data = json.loads(cache.read_text("utf-8"))
    by_name = {v["name"]: v for v in data["voices"]}
    assert by_name["en-US-JennyNeural"]["styles"][:3] == ["angry", "assistant", "chat"]
    assert by_name["de-DE-SeraphinaMultilingualNeural"]["multilingual"] is True
    assert data["source"].startswith("the service's voice list")
    assert run_cli("validate", str(manifest)).code == 0


def test_a_corrupt_cache_is_one_line_naming_it(tmp_path: Path) -> None:
    cache = Path(os.environ["AVATARFLOW_CACHE_DIR"]) / "voices.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("{not json", "utf-8")
    result = run_cli("validate", str(course(tmp_path)))
    assert result.code == 1
    assert result.err.startswith(f"Error: voice catalogue {cache} cannot be read")
    assert "avatarflow catalog refresh" in result.err and len(result.err.splitlines()) == 1
