"""The emulator and the client against Microsoft's published OpenAPI for batch avatar.

Microsoft's files live beside the repository, in ``../shared/reference/openapi/`` (CI lays
``shared`` beside the checkout; a git worktree finds it beside its main checkout). The
schemas are made strict: an object may hold only the properties its definition lists,
so that a field the service does not document (``internalId``) cannot slip into the
emulator's answers. Request bodies may in addition carry the avatar fields that Learn
documents for batch and the OpenAPI lacks (``useBuiltInVoice``, ``photoAvatarBaseModel``,
``scene``, see the reference's README). Every documented operation is exercised:
create, get, list, delete and the operation status, with their error answers.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from avatarflow.emulator import Emulator

from .emulator_fixtures import Api, EmulatorFactory, ga_body
from .helpers import example, open_course, run_cli

pytest_plugins = ["tests.emulator_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    "2024-08-01": "BatchAvatar/stable/2024-08-01/batchavatar.json",
    "2024-04-15-preview": "BatchAvatar/preview/2024-04-15-preview/batchavatar.json",
}
# Documented for batch by Learn ("Batch synthesis properties for text to speech avatar"),
# not (yet) in the OpenAPI: a client may send them.
LEARN_AVATAR_FIELDS = {"useBuiltInVoice", "photoAvatarBaseModel", "scene"}
OPERATIONS = {
    "BatchSyntheses_Create",
    "BatchSyntheses_Get",
    "BatchSyntheses_List",
    "BatchSyntheses_Delete",
    "Operations_Get",
}


def openapi_folder() -> Path | None:
    candidates = [ROOT.parent / "shared" / "reference" / "openapi"]
    git = ROOT / ".git"
    if git.is_file():  # a worktree: "gitdir: <main checkout>/.git/worktrees/<name>"
        gitdir = git.read_text().partition("gitdir:")[2].strip()
        main = Path(gitdir.split("/.git/")[0]) if "/.git/" in gitdir else None
        if main is not None:
            candidates.append(main.parent / "shared" / "reference" / "openapi")
    return next((c for c in candidates if (c / SPECS["2024-08-01"]).is_file()), None)


@cache
def spec(version: str) -> dict[str, Any]:
    folder = openapi_folder()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("Microsoft's OpenAPI files are missing from ../shared/reference/openapi")
        pytest.skip("Microsoft's OpenAPI files are not beside this checkout")
    data: dict[str, Any] = json.loads((folder / SPECS[version]).read_text("utf-8"))
    return data


def strict(definitions: dict[str, Any], extra: dict[str, set[str]]) -> dict[str, Any]:
    """``definitions`` where no object takes a property it does not define."""
    result = copy.deepcopy(definitions)
    for name, schema in result.items():
        if isinstance(schema, dict) and "properties" in schema:
            schema.setdefault("additionalProperties", False)
            for field in extra.get(name, set()):
                schema["properties"].setdefault(field, {})
    return result


def validator(version: str, definition: str, *, request: bool = False) -> Any:
    extra = {"BatchAvatarConfig": LEARN_AVATAR_FIELDS} if request else {}
    definitions = strict(spec(version)["definitions"], extra)
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    return jsonschema.Draft4Validator(schema)


def assert_valid(version: str, definition: str, data: Any, *, request: bool = False) -> None:
    errors = sorted(
        validator(version, definition, request=request).iter_errors(data), key=lambda e: e.path
    )
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors)


def response_schema(version: str, operation: str, status: str) -> str | None:
    """The definition an operation documents for a status (None: no body)."""
    for item in spec(version)["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation:
                response = op["responses"].get(status) or op["responses"]["default"]
                ref = response.get("schema", {}).get("$ref")
                return str(ref).rsplit("/", 1)[-1] if ref else None
    raise AssertionError(f"{operation} is not in the spec")


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> Emulator:
    return make_emulator(width=160, height=90)


@pytest.mark.parametrize("version", list(SPECS))
def test_the_spec_documents_the_operations_exercised_here(version: str) -> None:
    documented = {
        op["operationId"]
        for item in spec(version)["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert documented == OPERATIONS


@pytest.mark.parametrize("version", list(SPECS))
def test_every_answer_of_the_emulator_fits_the_spec(emulator: Emulator, version: str) -> None:
    api = Api(emulator)
    params = {"api-version": version}
    try:
        created = api.http.put("/avatar/batchsyntheses/contract-ok", params=params, json=ga_body())
        assert created.status_code == 201, created.text
        check = response_schema(version, "BatchSyntheses_Create", "201")
        assert check is not None
        assert_valid(version, check, created.json())
        operation = api.http.get(created.headers["Operation-Location"])
        assert operation.status_code == 200
        assert_valid(version, "Operation", operation.json())

        failing = ga_body(inputKind="SSML", synthesisConfig=None, inputs=[{"content": "<speak"}])
        bad = api.http.put("/avatar/batchsyntheses/contract-bad", params=params, json=failing)
        assert bad.status_code == 201, bad.text
        for job_id in ("contract-ok", "contract-bad"):
            api.wait(job_id)
            got = api.http.get(f"/avatar/batchsyntheses/{job_id}", params=params)
            assert got.status_code == 200
            assert_valid(version, "BatchSynthesis", got.json())
            assert "internalId" not in got.json()

        listed = api.http.get("/avatar/batchsyntheses", params={**params, "maxpagesize": 1})
        assert listed.status_code == 200 and "nextLink" in listed.json()
        assert_valid(version, "PaginatedBatchSynthesis", listed.json())

        deleted = api.http.delete("/avatar/batchsyntheses/contract-ok", params=params)
        assert deleted.status_code == 204 and deleted.content == b""
        assert response_schema(version, "BatchSyntheses_Delete", "204") is None

        errors = [
            api.http.get("/avatar/batchsyntheses/contract-ok", params=params),  # 404
            api.http.put("/avatar/batchsyntheses/contract-2", params=params, json={}),  # 400
            api.http.get("/avatar/operations/unknown-op", params=params),  # 404
            httpx.get(f"{emulator.url}/avatar/batchsyntheses", params=params),  # 401
        ]
        assert [e.status_code for e in errors] == [404, 400, 404, 401]
        for error in errors:
            assert_valid(version, "ErrorResponse", error.json())
    finally:
        api.close()


def test_the_strict_schema_refuses_an_undocumented_field() -> None:
    job = {"id": "job-1", "inputKind": "SSML", "avatarConfig": {"talkingAvatarCharacter": "a"}}
    assert_valid("2024-08-01", "BatchSynthesis", job)
    with pytest.raises(AssertionError, match="internalId"):
        assert_valid("2024-08-01", "BatchSynthesis", {**job, "internalId": "5a25b929"})


@pytest.mark.parametrize("version", list(SPECS))
def test_the_clients_request_bodies_fit_the_spec(tmp_path: Path, version: str) -> None:
    manifest = example(tmp_path)
    requests = open_course(manifest, "emulator").requests
    assert requests
    for request in requests:
        assert_valid(version, "BatchSynthesis", request.submit_body(0), request=True)


def test_microsofts_voice_sync_request_is_accepted_and_rendered(emulator: Emulator) -> None:
    # RequestExamples.cs of Microsoft's batch avatar sample: no synthesisConfig at all.
    body = {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hi, I'm a custom avatar speaking with my own voice."}],
        "avatarConfig": {
            "talkingAvatarCharacter": "my-voice-sync-avatar",
            "customized": True,
            "useBuiltInVoice": True,
            "videoFormat": "mp4",
            "videoCodec": "h264",
        },
    }
    assert_valid("2024-08-01", "BatchSynthesis", body, request=True)
    api = Api(emulator)
    try:
        created = api.put("voice-sync-1", body)
        assert created.status_code == 201, created.text
        job = api.wait("voice-sync-1")
        assert job["status"] == "Succeeded", job
        assert "synthesisConfig" not in job
        video = httpx.get(job["outputs"]["result"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        # A standard voice is still required without the avatar's own voice.
        del body["avatarConfig"]["useBuiltInVoice"]
        refused = api.put("voice-sync-2", body)
        assert refused.status_code == 400 and "synthesisConfig" in refused.text
    finally:
        api.close()


def test_scene_is_refused_for_video_avatars(emulator: Emulator) -> None:
    api = Api(emulator)
    try:
        scene = {"zoom": 1.2}
        refused = api.put("scene-1", ga_body(avatarConfig__scene=scene))
        assert refused.status_code == 400 and "photo avatars only" in refused.text
        photo = ga_body(
            avatarConfig={
                "talkingAvatarCharacter": "anika",
                "photoAvatarBaseModel": "vasa-1",
                "scene": scene,
            }
        )
        accepted = api.put("scene-2", photo)
        assert accepted.status_code == 201, accepted.text
    finally:
        api.close()


def test_a_voice_sync_video_is_expressible_in_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "course.yaml"
    manifest.write_text(
        "version: 1\n"
        "name: voice-sync\n"
        "videos:\n"
        "  - id: hello\n"
        "    input_kind: plain_text\n"
        "    avatar: {character: my-voice-sync-avatar, customized: true,"
        " use_built_in_voice: true}\n"
        "    text: Hello, this is my own voice.\n"
    )
    (request,) = open_course(manifest, "emulator").requests
    body = request.submit_body(0)
    assert "synthesisConfig" not in body
    assert body["avatarConfig"]["useBuiltInVoice"] is True
    assert_valid("2024-08-01", "BatchSynthesis", body, request=True)
    result = run_cli("apply", str(manifest), "--emulator", "--yes")
    assert result.code == 0, result.err
    record = open_course(manifest, "emulator").load_state().records["hello"]
    assert record.status == "downloaded" and record.output is not None

    manifest.write_text(manifest.read_text().replace(" use_built_in_voice: true", ""))
    result = run_cli("plan", str(manifest), "--emulator")
    assert result.code == 1
    assert "a plain_text video needs a voice (or avatar.use_built_in_voice" in result.err
