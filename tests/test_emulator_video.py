"""Real outputs: every job of this module is rendered once by one emulator, then probed.

Clips are one sentence at the default 320x180 draft size, so the whole matrix renders in
a few seconds on two cores.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarflow.emulator import Emulator, EmulatorConfig, MediaInfo, probe
from avatarflow.emulator.narration import Cue, ass, narration_of
from avatarflow.emulator.speech import espeak_paths
from avatarflow.emulator.video import ffmpeg_exe

from .emulator_fixtures import TEXT, Api, ga_body, preview_body

SSML_WITH_BREAK = (
    "<speak version='1.0' xml:lang='en-US'><voice name='en-US-AvaNeural'>"
    "Hello there, this is a short test of the emulator. <break time='1500ms'/>"
    "<bookmark mark='gesture.wave-left-1'/>And it goes on after a pause.</voice></speak>"
)
TEXT_SECONDS = 4.0  # 10 words at 150 words per minute

JOBS: dict[str, dict[str, Any]] = {
    "mp4-h264": {"avatarConfig__videoCodec": "h264"},
    "mp4-hevc": {"avatarConfig__videoCodec": "hevc"},
    "mp4-av1": {"avatarConfig__videoCodec": "av1"},
    "webm-vp9": {"avatarConfig__videoFormat": "webm", "avatarConfig__videoCodec": "vp9"},
    "webm-av1": {"avatarConfig__videoFormat": "webm", "avatarConfig__videoCodec": "av1"},
    "transparent": {
        "avatarConfig__videoFormat": "webm",
        "avatarConfig__videoCodec": "vp9",
        "avatarConfig__backgroundColor": "transparent",
    },
    "hard-subs": {"avatarConfig__subtitleType": "hard_embedded"},
    "no-subs": {"avatarConfig__subtitleType": "none"},
    "external-subs": {"avatarConfig__subtitleType": "external_file"},
    "external-webm": {
        "avatarConfig__subtitleType": "external_file",
        "avatarConfig__videoFormat": "webm",
        "avatarConfig__videoCodec": "vp9",
    },
    "photo": {
        "avatarConfig__talkingAvatarStyle": None,
        "avatarConfig__photoAvatarBaseModel": "vasa-1",
        "avatarConfig__talkingAvatarCharacter": "anika",
    },
    "cropped": {
        "avatarConfig__videoCrop": {
            "topLeft": {"x": 480, "y": 0},
            "bottomRight": {"x": 1440, "y": 1080},
        }
    },
    "ssml-break": {
        "inputKind": "SSML",
        "synthesisConfig": None,
        "inputs": [{"content": SSML_WITH_BREAK}],
    },
    "bad-ssml": {"inputKind": "SSML", "inputs": [{"content": "<speak>unclosed"}]},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("video-emulator")
    with Emulator(data_dir, EmulatorConfig()) as emulator:
        api = Api(emulator)
        for job_id, changes in JOBS.items():
            response = api.put(job_id, ga_body(**changes))
            assert response.status_code == 201, response.text
        preview_id = api.post(preview_body()).json()["id"]
        jobs = {job_id: api.wait(job_id) for job_id in JOBS}
        jobs["preview"] = api.wait(preview_id, preview=True)
        folder = tmp_path_factory.mktemp("downloads")
        files: dict[str, Path] = {}
        for name, job in jobs.items():
            result = job.get("outputs", {}).get("result", "")
            if result.startswith("http"):
                files[name] = _download(
                    result, folder / f"{name}{Path(result.split('?')[0]).suffix}"
                )
        yield {"emulator": emulator, "api": api, "jobs": jobs, "files": files, "data_dir": data_dir}
        api.close()


def _download(url: str, path: Path) -> Path:
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert int(response.headers["Content-Length"]) == len(response.content)
    path.write_bytes(response.content)
    return path


def _info(rendered: dict[str, Any], name: str) -> MediaInfo:
    return probe(rendered["files"][name])


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("mp4-h264", "mp4", "h264"),
        ("mp4-hevc", "mp4", "hevc"),
        ("mp4-av1", "mp4", "av1"),
        ("webm-vp9", "webm", "vp9"),
        ("webm-av1", "webm", "av1"),
    ],
)
def test_container_codec_size_and_duration(
    rendered: dict[str, Any], name: str, container: str, codec: str
):
    info = _info(rendered, name)
    assert container in info.formats
    assert info.video_codec == codec
    assert (info.width, info.height) == (320, 180)
    assert info.duration == pytest.approx(TEXT_SECONDS, rel=0.10)
    assert info.audio_codecs == (["aac"] if container == "mp4" else ["opus"])
    job = rendered["jobs"][name]
    assert job["properties"]["sizeInBytes"] == rendered["files"][name].stat().st_size
    assert job["properties"]["durationInMilliseconds"] == pytest.approx(
        info.duration * 1000, rel=0.10
    )


def test_soft_subtitles_are_a_track_of_the_container(rendered: dict[str, Any]):
    assert _info(rendered, "mp4-h264").subtitle_codecs == ["mov_text"]
    assert _info(rendered, "webm-vp9").subtitle_codecs == ["webvtt"]


def test_hard_and_no_subtitles_leave_no_track_and_no_file(rendered: dict[str, Any]):
    for name in ("hard-subs", "no-subs"):
        assert _info(rendered, name).subtitle_codecs == []
        vtt = rendered["jobs"][name]["outputs"]["result"].replace("0001.mp4", "0001.vtt")
        assert httpx.get(vtt).status_code == 404


@pytest.mark.parametrize("name", ["external-subs", "external-webm"])
def test_external_subtitles_are_a_vtt_file_beside_the_video(rendered: dict[str, Any], name: str):
    assert _info(rendered, name).subtitle_codecs == []
    job = rendered["jobs"][name]
    result = job["outputs"]["result"]
    vtt = httpx.get(result.replace("/0001.mp4?", "/0001.vtt?").replace("/0001.webm?", "/0001.vtt?"))
    assert vtt.status_code == 200
    assert vtt.text.startswith("WEBVTT")
    assert "00:00:00.000 --> " in vtt.text and "Hello there," in vtt.text
    summary = httpx.get(job["outputs"]["summary"]).json()
    assert summary["results"][0]["subtitleFileName"].endswith("/0001.vtt")


def test_transparent_webm_has_an_alpha_plane(rendered: dict[str, Any]):
    assert _info(rendered, "transparent").alpha is True
    assert _info(rendered, "webm-vp9").alpha is False


def test_photo_avatars_are_square(rendered: dict[str, Any]):
    info = _info(rendered, "photo")
    assert (info.width, info.height) == (180, 180)


def test_video_crop_is_scaled_to_the_draft_size(rendered: dict[str, Any]):
    info = _info(rendered, "cropped")
    assert (info.width, info.height) == (160, 180)


def test_ssml_breaks_lengthen_the_video(rendered: dict[str, Any]):
    expected = narration_of(SSML_WITH_BREAK, "SSML", None).duration
    assert expected == pytest.approx(TEXT_SECONDS + 1.5 + 7 * 0.4)
    info = _info(rendered, "ssml-break")
    assert info.duration == pytest.approx(expected, rel=0.10)
    billing = rendered["jobs"]["ssml-break"]["properties"]["billingDetails"]
    assert billing["neuralCharacters"] == len(TEXT) + 1 + len("And it goes on after a pause.")


def test_unreadable_ssml_fails_the_job(rendered: dict[str, Any]):
    job = rendered["jobs"]["bad-ssml"]
    assert job["status"] == "Failed"
    assert job["properties"]["error"]["code"] == "InvalidSsml"
    assert job["properties"]["failedCount"] == 1
    assert "result" not in job.get("outputs", {})


def test_summary_json_matches_the_documented_shape(rendered: dict[str, Any]):
    job = rendered["jobs"]["mp4-h264"]
    summary = httpx.get(job["outputs"]["summary"]).json()
    assert "internalId" not in job  # in Learn's examples only, not in the OpenAPI
    assert summary["jobID"] != job["id"]
    assert summary["status"] == "Succeeded"
    (result,) = summary["results"]
    assert result["texts"] == [TEXT]
    assert result["status"] == "Succeeded"
    assert result["videoFileName"].endswith(f"/{summary['jobID']}/0001.mp4")
    assert result["TalkingAvatarCharacter"] == "lisa"
    assert result["TalkingAvatarStyle"] == "graceful-sitting"


def test_preview_summary_has_string_billing(rendered: dict[str, Any]):
    job = rendered["jobs"]["preview"]
    summary = httpx.get(job["outputs"]["summary"]).json()
    assert summary["jobID"] == job["id"]
    assert summary["results"][0]["videoFileName"] == f"{job['id']}/0001.mp4"
    assert summary["results"][0]["billingDetails"] == {"Neural": "50", "TalkingAvatarDuration": "4"}


def test_narration_uses_speech_when_espeak_is_installed(tmp_path: Path):
    from avatarflow.emulator.speech import synthesize

    narration = narration_of(TEXT, "PlainText", "en-US-AvaNeural")
    speech = synthesize(narration, tmp_path / "speech.wav")
    if espeak_paths() is None:
        assert speech is None
    else:
        assert speech is not None
        assert speech.seconds == pytest.approx(TEXT_SECONDS, rel=0.5)


def test_a_tone_replaces_speech_when_disabled(tmp_path: Path):
    with Emulator(tmp_path, EmulatorConfig(speech=False, width=64, height=36)) as emulator:
        api = Api(emulator)
        api.put("tone-01", ga_body())
        job = api.wait("tone-01")
        path = _download(job["outputs"]["result"], tmp_path / "tone.mp4")
        api.close()
    info = probe(path)
    assert info.audio_codecs == ["aac"]
    assert (info.width, info.height) == (64, 36)
    assert info.duration == pytest.approx(TEXT_SECONDS, rel=0.10)


def test_a_soft_track_keeps_the_cue_text_as_written(tmp_path: Path):
    """What ffmpeg would read as markup in the subtitles it is given (``<...>`` in SRT,
    ``\\N`` and ``{\\...}`` in ASS) reaches the mov_text track as text."""
    said = r"Use Vec<T> when a < b & c > d, {braces}, C:\new and {\b1} too."
    script = tmp_path / "cues.ass"
    script.write_text(ass([Cue(0.0, 1.5, said)]), encoding="utf-8")
    video = tmp_path / "cues.mp4"
    ffmpeg = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    lavfi = ["-f", "lavfi", "-i", "color=c=black:s=64x64:r=10:d=2"]
    subprocess.run(
        [
            *ffmpeg,
            *lavfi,
            "-i",
            str(script),
            "-map",
            "0:v",
            "-map",
            "1:s",
            "-c:v",
            "libx264",
            "-c:s",
            "mov_text",
            "-t",
            "2",
            str(video),
        ],
        check=True,
        timeout=60,
    )
    track = subprocess.run(
        [*ffmpeg, "-i", str(video), "-map", "0:s", "-f", "webvtt", "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert track.splitlines()[-1].replace("\u2060", "") == said
