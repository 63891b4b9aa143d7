"""One test per validation rule: the emulator rejects what the service rejects, with 400."""

from __future__ import annotations

from typing import Any

import pytest

from .emulator_fixtures import Api, EmulatorFactory, ga_body, preview_body

pytest_plugins = ["tests.emulator_fixtures"]

TWO_INPUTS = [{"content": "one"}, {"content": "two"}]
GA_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "input kind required": ({"inputKind": None}, "inputKind is required"),
    "input kind enum": ({"inputKind": "PreSynthesizedAudio"}, "$.inputKind invalid"),
    "voice required for plain text": ({"synthesisConfig__voice": None}, "voice is required"),
    "synthesis config required for plain text": (
        {"synthesisConfig": None},
        "synthesisConfig is required",
    ),
    "inputs required": ({"inputs": None}, "The inputs is required."),
    "inputs not empty": ({"inputs": []}, "non-empty array"),
    "at most 1000 inputs": (
        {
            "inputs": [{"content": "x"}] * 1001,
            "properties": {"destinationContainerUrl": "https://a.example/videos?sig=s"},
        },
        "at most 1000",
    ),
    "content not empty": ({"inputs": [{"content": " "}]}, "inputs[0].content must not be empty"),
    "content required": ({"inputs": [{}]}, "inputs[0].content is required"),
    "several inputs need a destination": ({"inputs": TWO_INPUTS}, "destinationContainerUrl"),
    "destination must be a url": (
        {"properties": {"destinationContainerUrl": "nope"}},
        "container SAS URL",
    ),
    "expired destination sas": (
        {
            "inputs": TWO_INPUTS,
            "properties": {
                "destinationContainerUrl": "https://a.example/videos?se=2020-01-01T00:00:00Z&sig=s"
            },
        },
        "expired SAS URI",
    ),
    "destination path needs a destination": (
        {"properties": {"destinationPath": "x"}},
        "needs properties.destinationContainerUrl",
    ),
    "character required": (
        {"avatarConfig__talkingAvatarCharacter": None},
        "talkingAvatarCharacter is required",
    ),
    "avatar config required": ({"avatarConfig": None}, "avatarConfig is required"),
    "style required for standard video avatars": (
        {"avatarConfig__talkingAvatarStyle": None},
        "talkingAvatarStyle is required",
    ),
    "video format enum": ({"avatarConfig__videoFormat": "avi"}, "videoFormat invalid"),
    "video codec enum": ({"avatarConfig__videoCodec": "mpeg2"}, "videoCodec invalid"),
    "mp4 cannot carry vp9": ({"avatarConfig__videoCodec": "vp9"}, "cannot be used"),
    "webm cannot carry h264": ({"avatarConfig__videoFormat": "webm"}, "cannot be used"),
    "webm cannot carry hevc (the default codec)": (
        {"avatarConfig__videoFormat": "webm", "avatarConfig__videoCodec": None},
        "cannot be used",
    ),
    "subtitle type enum": ({"avatarConfig__subtitleType": "burned"}, "subtitleType invalid"),
    "transparent needs webm and vp9": (
        {"avatarConfig__backgroundColor": "transparent"},
        "transparent background",
    ),
    "alpha 00 counts as transparent": (
        {
            "avatarConfig__videoFormat": "webm",
            "avatarConfig__videoCodec": "av1",
            "avatarConfig__backgroundColor": "#00000000",
        },
        "transparent background",
    ),
    "background colour format": ({"avatarConfig__backgroundColor": "red"}, "#RRGGBBAA"),
    "ttl at most 744 hours": ({"properties": {"timeToLiveInHours": 745}}, "timeToLiveInHours"),
    "ttl at least one hour": ({"properties": {"timeToLiveInHours": 0}}, "timeToLiveInHours"),
    "bitrate positive": ({"avatarConfig__bitrateKbps": 0}, "bitrateKbps must be positive"),
    "customized is a boolean": ({"avatarConfig__customized": "yes"}, "true or false"),
    "photo avatar base model enum": (
        {"avatarConfig__photoAvatarBaseModel": "vasa-9"},
        "photoAvatarBaseModel invalid",
    ),
    "crop needs both corners": (
        {"avatarConfig__videoCrop": {"topLeft": {"x": 0, "y": 0}}},
        "bottomRight is required",
    ),
    "crop must be a rectangle": (
        {
            "avatarConfig__videoCrop": {
                "topLeft": {"x": 10, "y": 10},
                "bottomRight": {"x": 5, "y": 50},
            }
        },
        "non-empty rectangle",
    ),
    "custom voice deployment id": (
        {"customVoices": {"my-voice": "not valid!"}},
        "valid deployment id",
    ),
    "background image is a url": (
        {"avatarConfig__backgroundImage": "file:///x.png"},
        "http(s) URL",
    ),
    "scene zoom positive": (
        {"avatarConfig__scene": {"zoom": 0}, "avatarConfig__photoAvatarBaseModel": "vasa-1"},
        "scene.zoom is out of range",
    ),
    "scene of a video avatar": (
        {"avatarConfig__scene": {"zoom": 1}},
        "avatarConfig.scene is supported for photo avatars only",
    ),
}


@pytest.mark.parametrize("rule", sorted(GA_RULES))
def test_ga_rule(queued_api: Api, rule: str):
    changes, message = GA_RULES[rule]
    response = queued_api.put("rule-check", ga_body(**changes))
    assert response.status_code == 400, response.text
    assert response.headers["x-ms-error-code"] == "BadRequest"
    assert message in response.json()["error"]["message"]
    assert queued_api.get("rule-check").status_code == 404  # nothing was created


@pytest.mark.parametrize(
    "changes",
    [
        {"inputKind": "plaintext"},
        {
            "inputKind": "SSML",
            "synthesisConfig": None,
            "inputs": [{"content": "<speak version='1.0' xml:lang='en-US'>Hi there</speak>"}],
        },
        {"inputKind": "ssml", "inputs": [{"content": "<speak>Hi</speak>"}]},
        {"avatarConfig__talkingAvatarStyle": None, "avatarConfig__customized": True},
        {"avatarConfig__talkingAvatarStyle": None, "avatarConfig__photoAvatarBaseModel": "vasa-1"},
        {
            "avatarConfig__videoFormat": "WEBM",
            "avatarConfig__videoCodec": "vp9",
            "avatarConfig__backgroundColor": "transparent",
        },
        {"avatarConfig__videoFormat": "webm", "avatarConfig__videoCodec": "av1"},
        {"avatarConfig__videoCodec": "av1"},
        {"avatarConfig__subtitleType": "External_File"},
        {"properties": {"timeToLiveInHours": 744}},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items())[:60],
)
def test_ga_accepts_valid_variants(queued_api: Api, changes: dict[str, Any]):
    response = queued_api.put("valid-variant", ga_body(**changes))
    assert response.status_code == 201, response.text


def test_id_rule_is_enforced(queued_api: Api):
    for bad in ("ab", "-starts-with-dash", "ends-with-dot.", "has space", "x" * 65, "ünï"):
        response = queued_api.put(bad, ga_body())
        assert response.status_code == 400, bad
        assert "is invalid" in response.json()["error"]["message"]
    for good in ("abc", "a.b_c-d", "A" * 64):
        assert queued_api.put(good, ga_body()).status_code == 201, good


def test_an_existing_id_is_rejected_with_already_exists(queued_api: Api):
    assert queued_api.put("twice", ga_body()).status_code == 201
    again = queued_api.put("twice", ga_body())
    assert again.status_code == 400
    assert again.headers["x-ms-error-code"] == "BadRequest"
    assert "already exists" in again.json()["error"]["message"]
    assert queued_api.emulator.create_counts() == {"twice": 1}


def test_operation_id_reuse_with_another_body_is_rejected(queued_api: Api):
    headers = {"Operation-Id": "op-shared"}
    assert queued_api.put("first-op", ga_body(), headers=headers).status_code == 201
    other = queued_api.put("second-op", ga_body(description="changed"), headers=headers)
    assert other.status_code == 400
    assert "Operation-Id" in other.json()["error"]["message"]


def test_body_over_500_kib_is_rejected(queued_api: Api):
    big = ga_body(inputs=[{"content": "word " * 110_000}])
    response = queued_api.put("too-big", big)
    assert response.status_code == 400
    assert "at most 512000" in response.json()["error"]["message"]


def test_body_that_is_not_json_is_rejected(queued_api: Api):
    response = queued_api.put(
        "not-json", None, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_active_job_limit(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=3600.0, max_active_jobs=2))
    try:
        assert api.put("active-1", ga_body()).status_code == 201
        assert api.post(preview_body()).status_code == 201  # both surfaces count
        third = api.put("active-3", ga_body())
        assert third.status_code == 400
        assert "2 jobs" in third.json()["error"]["message"]
    finally:
        api.close()


PREVIEW_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "display name required": ({"displayName": None}, "displayName is required"),
    "text type required": ({"textType": None}, "textType is required"),
    "text type enum": ({"textType": "Markdown"}, "textType invalid"),
    "text required": ({"inputs": [{"text": ""}]}, "inputs[0].text must not be empty"),
    "properties required": ({"properties": None}, "properties is required"),
    "ttl iso format": ({"properties__timeToLive": "12 hours"}, "ISO-8601"),
    "ttl at most 31 days": ({"properties__timeToLive": "P32D"}, "at most P31D"),
    "custom properties at most 10": (
        {"customProperties": {f"k{n}": "v" for n in range(11)}},
        "at most 10",
    ),
    "custom property value at most 256": ({"customProperties": {"k": "v" * 257}}, "at most 256"),
    "style required": ({"properties__talkingAvatarStyle": None}, "talkingAvatarStyle"),
    "kBitrate positive": ({"properties__kBitrate": -1}, "kBitrate must be positive"),
}


@pytest.mark.parametrize("rule", sorted(PREVIEW_RULES))
def test_preview_rule(queued_api: Api, rule: str):
    changes, message = PREVIEW_RULES[rule]
    response = queued_api.post(preview_body(**changes))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidRequest"
    assert message in body["message"]
    assert response.headers["x-ms-error-code"] == "InvalidRequest"
