"""Every route of both API surfaces: status codes, headers and bodies as the service sends them."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from avatarflow.emulator import Emulator

from .emulator_fixtures import (
    GA_VERSION,
    HEADERS,
    KEY,
    PREVIEW_ROOT,
    Api,
    EmulatorFactory,
    ga_body,
    preview_body,
)

pytest_plugins = ["tests.emulator_fixtures"]

GA_CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
GA_MOVED_ON_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?$")
PREVIEW_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_ga_create_answers_201_with_operation_headers_and_echoed_defaults(queued_api: Api):
    body = ga_body(
        avatarConfig__videoFormat=None, avatarConfig__videoCodec=None, description="hash:abc"
    )
    response = queued_api.put("intro-01", body)

    assert response.status_code == 201
    operation_id = response.headers["Operation-Id"]
    assert response.headers["Operation-Location"] == (
        f"{queued_api.emulator.url}/avatar/operations/{operation_id}?api-version={GA_VERSION}"
    )
    assert uuid.UUID(response.headers["apim-request-id"])
    job = response.json()
    assert job["id"] == "intro-01" and job["status"] == "NotStarted"
    assert GA_CREATED_RE.match(job["createdDateTime"])
    assert job["lastActionDateTime"].endswith("Z")
    assert job["inputKind"] == "PlainText"
    assert job["customVoices"] == {}
    assert job["description"] == "hash:abc"
    assert job["properties"] == {"timeToLiveInHours": 744}
    assert job["synthesisConfig"] == {"voice": "en-US-AvaMultilingualNeural"}
    assert job["avatarConfig"] == {
        "talkingAvatarCharacter": "lisa",
        "talkingAvatarStyle": "graceful-sitting",
        "videoFormat": "Mp4",
        "videoCodec": "hevc",
        "subtitleType": "soft_embedded",
        "bitrateKbps": 2000,
        "customized": False,
    }
    assert "inputs" not in job and "outputs" not in job


def test_ga_create_never_echoes_destination_container(queued_api: Api):
    body = ga_body(
        inputs=[{"content": "one"}, {"content": "two"}],
        properties={"destinationContainerUrl": "https://acct.blob.example/videos?sig=s"},
    )
    response = queued_api.put("multi-01", body)
    assert response.status_code == 201, response.text
    assert "destinationContainerUrl" not in response.text
    assert "destinationContainerUrl" not in queued_api.get("multi-01").text


def test_ga_create_uses_the_operation_id_header_and_operation_route(queued_api: Api):
    response = queued_api.put("op-01", ga_body(), headers={"Operation-Id": "my-op-1"})
    assert response.headers["Operation-Id"] == "my-op-1"

    operation = queued_api.http.get(
        "/avatar/operations/my-op-1", params={"api-version": GA_VERSION}
    )
    assert operation.status_code == 200
    assert operation.json() == {"id": "my-op-1", "status": "NotStarted"}

    missing = queued_api.http.get("/avatar/operations/nope", params={"api-version": GA_VERSION})
    assert missing.status_code == 404
    assert missing.headers["x-ms-error-code"] == "NotFound"


def test_ga_get_of_a_succeeded_job_has_outputs_billing_and_no_z(api: Api):
    assert api.put("done-01", ga_body()).status_code == 201
    job = api.wait("done-01")

    assert job["status"] == "Succeeded"
    assert GA_MOVED_ON_RE.match(job["lastActionDateTime"])
    props = job["properties"]
    assert props["succeededCount"] == 1 and props["failedCount"] == 0
    assert props["sizeInBytes"] > 1000
    assert props["durationInMilliseconds"] == 4000  # 10 words at 150 words per minute
    assert props["billingDetails"] == {"neuralCharacters": 50, "talkingAvatarDurationSeconds": 4}
    result = job["outputs"]["result"]
    assert re.match(
        rf"^{api.emulator.url}/_blob/batchsynthesis-output/[0-9a-f]{{32}}/done-01/"
        r"0001\.mp4\?.*sig=",
        result,
    )
    assert job["outputs"]["summary"].split("?")[0].endswith("/done-01/summary.json")
    operation = api.http.get(f"/avatar/operations/{job['id']}", params={"api-version": GA_VERSION})
    assert operation.status_code == 404  # operation ids are not job ids


def test_ga_get_unknown_job_is_404_with_error_shape(api: Api):
    response = api.get("never-created")
    assert response.status_code == 404
    assert response.headers["x-ms-error-code"] == "NotFound"
    assert uuid.UUID(response.headers["apim-request-id"])
    assert response.json()["error"]["code"] == "NotFound"
    assert "never-created" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/avatar/batchsyntheses", "/avatar/batchsyntheses/"])
def test_ga_list_pages_with_value_and_next_link(queued_api: Api, path: str):
    ids = [f"page-job-{n}" for n in range(5)]
    for job_id in ids:
        assert queued_api.put(job_id, ga_body()).status_code == 201

    seen: list[str] = []
    pages = 0
    url: str | None = f"{path}?api-version={GA_VERSION}&maxpagesize=2"
    while url:
        response = queued_api.http.get(url)
        assert response.status_code == 200
        body = response.json()
        assert set(body) <= {"value", "nextLink"}
        seen += [job["id"] for job in body["value"]]
        url = body.get("nextLink")
        if url:
            assert url.startswith(f"{queued_api.emulator.url}/avatar/batchsyntheses/?")
            assert "api-version=2024-08-01" in url and "maxpagesize=2" in url
        pages += 1
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first


def test_ga_list_caps_maxpagesize_at_100(queued_api: Api):
    response = queued_api.http.get(
        "/avatar/batchsyntheses", params={"api-version": GA_VERSION, "maxpagesize": 500}
    )
    assert response.status_code == 200
    assert response.json() == {"value": []}


def test_ga_list_rejects_negative_skip(queued_api: Api):
    response = queued_api.http.get(
        "/avatar/batchsyntheses", params={"api-version": GA_VERSION, "skip": -1}
    )
    assert response.status_code == 400


def test_ga_delete_of_an_active_job_is_400(queued_api: Api):
    queued_api.put("busy-01", ga_body())
    response = queued_api.delete("busy-01")
    assert response.status_code == 400
    assert response.headers["x-ms-error-code"] == "BadRequest"
    assert "NotStarted" in response.json()["error"]["message"]


def test_ga_delete_removes_the_job_and_its_outputs(api: Api):
    api.put("gone-01", ga_body())
    job = api.wait("gone-01")

    response = api.delete("gone-01")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get("gone-01").status_code == 404
    assert api.delete("gone-01").status_code == 404
    blob = httpx.get(job["outputs"]["result"])
    assert blob.status_code == 404
    assert blob.headers["x-ms-error-code"] == "BlobNotFound"
    assert "<Code>BlobNotFound</Code>" in blob.text


def test_ga_routes_require_an_api_version(queued_api: Api):
    response = queued_api.http.get("/avatar/batchsyntheses/x-01")
    assert response.status_code == 400
    assert "api-version" in response.json()["error"]["message"]
    unsupported = queued_api.http.get(
        "/avatar/batchsyntheses", params={"api-version": "2025-01-01"}
    )
    assert unsupported.status_code == 400


@pytest.mark.parametrize("version", ["2024-08-01", "2024-04-15-preview", "2024-04-01-preview"])
def test_ga_accepts_each_published_api_version(queued_api: Api, version: str):
    response = queued_api.http.put(
        f"/avatar/batchsyntheses/v-{version}", params={"api-version": version}, json=ga_body()
    )
    assert response.status_code == 201
    assert response.headers["Operation-Location"].endswith(f"api-version={version}")


def test_unknown_routes_are_404(queued_api: Api):
    assert queued_api.http.get("/nothing/here").status_code == 404
    response = queued_api.http.delete("/avatar/batchsyntheses", params={"api-version": GA_VERSION})
    assert response.status_code == 404


def test_missing_key_is_401_on_both_surfaces(emu: Emulator):
    with httpx.Client(base_url=emu.url) as anonymous:
        ga = anonymous.get("/avatar/batchsyntheses", params={"api-version": GA_VERSION})
        preview = anonymous.get(PREVIEW_ROOT)
    assert ga.status_code == 401 and ga.headers["x-ms-error-code"] == "Unauthorized"
    assert ga.json()["error"]["code"] == "Unauthorized"
    assert preview.status_code == 401 and preview.json()["code"] == "Unauthorized"


def test_any_key_or_bearer_token_is_accepted_without_a_configured_key(emu: Emulator):
    for headers in (
        {"Ocp-Apim-Subscription-Key": "whatever"},
        {"Authorization": "Bearer eyJ0eXAi.token"},
    ):
        response = httpx.get(
            f"{emu.url}/avatar/batchsyntheses", params={"api-version": GA_VERSION}, headers=headers
        )
        assert response.status_code == 200


def test_a_configured_key_must_match(make_emulator: EmulatorFactory):
    emulator = make_emulator(key=KEY)
    url = f"{emulator.url}/avatar/batchsyntheses"
    wrong = httpx.get(
        url, params={"api-version": GA_VERSION}, headers={"Ocp-Apim-Subscription-Key": "wrong"}
    )
    assert wrong.status_code == 401
    assert KEY not in wrong.text
    right = httpx.get(url, params={"api-version": GA_VERSION}, headers=HEADERS)
    assert right.status_code == 200


# --- preview surface ------------------------------------------------------------------


def test_preview_create_answers_201_with_a_server_id_and_echo(queued_api: Api):
    body = preview_body(
        customProperties={"avatarflow.hash": "abc123"},
        description="d",
        properties__timeToLive="PT12H",
    )
    response = queued_api.post(body)

    assert response.status_code == 201
    job = response.json()
    assert uuid.UUID(job["id"])
    assert response.headers["Location"].endswith(f"{PREVIEW_ROOT}/{job['id']}")
    assert job["displayName"] == "preview-job" and job["description"] == "d"
    assert job["textType"] == "PlainText"
    assert job["customProperties"] == {"avatarflow.hash": "abc123"}
    assert job["status"] == "NotStarted"
    assert PREVIEW_TIME_RE.match(job["createdDateTime"])
    assert PREVIEW_TIME_RE.match(job["lastActionDateTime"])
    props = job["properties"]
    assert props["timeToLive"] == "PT12H"
    assert props["outputFormat"] == "riff-24khz-16bit-mono-pcm"
    assert props["kBitrate"] == 2000 and props["customized"] is False
    assert props["videoFormat"] == "Mp4"
    assert "inputs" not in job


def test_preview_get_of_a_succeeded_job(api: Api):
    job_id = api.post(preview_body()).json()["id"]
    job = api.wait(job_id, preview=True)
    props = job["properties"]
    assert job["status"] == "Succeeded"
    assert props["durationInTicks"] == 4000 * 10_000
    assert props["duration"] == "PT4S"
    assert props["audioSize"] > 1000
    assert props["succeededAudioCount"] == 1 and props["failedAudioCount"] == 0
    assert props["billingDetails"] == {"customNeural": 0, "neural": 50}
    assert f"/_blob/batch-synthesis-output/{job_id}/0001.mp4?" in job["outputs"]["result"]


def test_preview_list_pages_with_values_and_at_next_link(queued_api: Api):
    ids = [queued_api.post(preview_body(displayName=f"p{n}")).json()["id"] for n in range(5)]
    seen: list[str] = []
    url: str | None = f"{PREVIEW_ROOT}?top=2"
    pages = 0
    while url:
        body = queued_api.http.get(url).json()
        assert set(body) <= {"values", "@nextLink"}
        seen += [job["id"] for job in body["values"]]
        url = body.get("@nextLink")
        pages += 1
    assert pages == 3
    assert seen == list(reversed(ids))
    assert queued_api.http.get(f"{PREVIEW_ROOT}/").status_code == 200


def test_preview_list_rejects_top_over_100(queued_api: Api):
    response = queued_api.http.get(PREVIEW_ROOT, params={"top": 101})
    assert response.status_code == 400
    assert response.headers["x-ms-error-code"] == "InvalidRequest"
    body = response.json()
    assert body["code"] == "InvalidRequest"
    assert body["innerError"]["code"] == "InvalidParameter"


def test_preview_delete_and_404(api: Api):
    job_id = api.post(preview_body()).json()["id"]
    api.wait(job_id, preview=True)
    assert api.http.delete(f"{PREVIEW_ROOT}/{job_id}").status_code == 204
    missing = api.pget(job_id)
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFound"


def test_preview_delete_of_an_active_job_is_400(queued_api: Api):
    job_id = queued_api.post(preview_body()).json()["id"]
    response = queued_api.http.delete(f"{PREVIEW_ROOT}/{job_id}")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidRequest"


def test_surfaces_do_not_see_each_others_jobs(queued_api: Api):
    job_id = queued_api.post(preview_body()).json()["id"]
    queued_api.put("ga-only", ga_body())
    assert queued_api.get(job_id).status_code == 404
    assert queued_api.pget("ga-only").status_code == 404
