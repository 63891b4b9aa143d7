"""The REST client against a real HTTP server on loopback, for both API surfaces."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import types
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from avatarflow import client as client_module
from avatarflow.answers import MAX_ANSWER_BYTES
from avatarflow.client import (
    BearerTokenCredential,
    CreateOutcomeUnknown,
    JobExistsError,
    KeyCredential,
    RemoteJob,
    ResultUnavailableError,
    RetryPolicy,
    ServiceConfig,
    SpeechClient,
)
from avatarflow.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    DownloadError,
    NotFoundError,
    ServerError,
    ThrottledError,
    TransportError,
    UntrustedAnswerError,
)
from avatarflow.retry import parse_retry_after

from .httpstub import Recorded, Reply, StubServer, free_port

KEY = "k3y-Secret-0123456789abcdef"
GA = "2024-08-01"
PREVIEW = "3.1-preview1"
GA_JOBS = "/avatar/batchsyntheses"
PREVIEW_JOBS = "/api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class RecordingSleep:
    """Stands in for asyncio.sleep: records the client's computed waits, returns at once."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.waits: list[float] = []
        self._on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self._on_sleep is not None:
            self._on_sleep()


def make_config(
    server: StubServer,
    *,
    api_version: str = GA,
    sleep: RecordingSleep | None = None,
    credential: Any = None,
    max_attempts: int = 4,
    **retry: Any,
) -> ServiceConfig:
    policy = RetryPolicy(
        max_attempts=max_attempts,
        initial_wait=0.5,
        max_wait=4.0,
        sleep=sleep or RecordingSleep(),
        **retry,
    )
    return ServiceConfig(
        endpoint=server.url,
        api_version=api_version,
        credential=credential or KeyCredential(KEY),
        retry=policy,
    )


def ga_job(job_id: str, status: str = "NotStarted", **props: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": status,
        "createdDateTime": "2024-03-06T07:34:08.9487009Z",
        "lastActionDateTime": "2024-03-06T07:34:12.5698769",
        "inputKind": "SSML",
        "properties": {"timeToLiveInHours": 744, **props},
        "avatarConfig": {"talkingAvatarCharacter": "lisa"},
    }


PREVIEW_NAME = "course-01-welcome-0123456789ab"


def preview_job(job_id: str, status: str = "NotStarted", **props: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "displayName": PREVIEW_NAME,
        "status": status,
        "createdDateTime": "2023-10-19T12:23:03.350Z",
        "lastActionDateTime": "2023-10-19T12:23:06.320Z",
        "customProperties": {"avatarflowHash": "abc123"},
        "properties": {"timeToLive": "P31D", **props},
    }


GA_BODY = {
    "inputKind": "SSML",
    "inputs": [{"content": "<speak>Hi</speak>"}],
    "avatarConfig": {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "graceful-sitting"},
}


# --------------------------------------------------------------------------- create


def test_ga_create_puts_the_body_under_the_chosen_id_with_the_key() -> None:
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(201, ga_job("job-1")))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server)) as client:
                job = await client.create("job-1", GA_BODY)
                assert client.request_counts == {"create": 1}
                return job

        job = run(scenario())
        sent = server.requests[0]

    assert job.id == "job-1" and job.status == "NotStarted" and not job.is_final
    assert sent.query == {"api-version": GA}
    assert sent.json() == GA_BODY
    assert sent.headers["ocp-apim-subscription-key"] == KEY
    assert sent.headers["content-type"] == "application/json"


def test_preview_create_posts_and_returns_the_server_chosen_id() -> None:
    server_id = "c48b4cf5-957f-4a0f-96af-a4e3e71bd6b6"
    with StubServer() as server:
        server.route("POST", PREVIEW_JOBS, Reply(201, preview_job(server_id)))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                return await client.create("course-01", {"displayName": PREVIEW_NAME})

        job = run(scenario())
        sent = server.requests[0]

    assert job.id == server_id
    assert job.custom_properties == {"avatarflowHash": "abc123"}
    assert sent.query == {}  # the preview surface has no api-version parameter
    assert sent.json() == {"displayName": PREVIEW_NAME}


def test_create_is_not_retried_after_a_5xx() -> None:
    sleep = RecordingSleep()
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(500, {"error": {"message": "boom"}}))

        async def scenario() -> None:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                await client.create("job-1", GA_BODY)

        with pytest.raises(CreateOutcomeUnknown) as caught:
            run(scenario())
        assert server.count() == 1

    assert caught.value.job_id == "job-1"
    assert caught.value.status_code == 500
    assert isinstance(caught.value, TransportError)
    assert sleep.waits == []


def test_create_is_not_retried_after_a_dropped_connection() -> None:
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(drop=True))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.create("job-1", GA_BODY)

        with pytest.raises(CreateOutcomeUnknown) as caught:
            run(scenario())
        assert server.count() == 1

    assert caught.value.job_id == "job-1"
    assert "may or may not have been created" in str(caught.value)


def test_preview_create_with_unknown_outcome_has_no_id_to_look_up() -> None:
    with StubServer() as server:
        server.route("POST", PREVIEW_JOBS, Reply(503, {"code": "ServiceUnavailable"}))

        async def scenario() -> None:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                await client.create("course-01", {"displayName": "course-01"})

        with pytest.raises(CreateOutcomeUnknown) as caught:
            run(scenario())

    assert caught.value.job_id is None


def test_create_is_retried_after_429_honouring_retry_after() -> None:
    sleep = RecordingSleep()
    throttled = Reply(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "30"})
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", throttled, Reply(201, ga_job("job-1")))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                return await client.create("job-1", GA_BODY)

        job = run(scenario())
        assert server.count("PUT") == 2

    assert job.id == "job-1"
    assert sleep.waits == [30.0]


def test_create_is_retried_when_the_connection_was_refused() -> None:
    # Nothing listens on the port until the client's first back-off: the first attempt
    # is refused, which proves nothing was sent, so the second attempt is safe.
    server = StubServer(port=free_port())
    server.route("PUT", f"{GA_JOBS}/job-1", Reply(201, ga_job("job-1")))

    def start_server() -> None:
        server.start()

    sleep = RecordingSleep(on_sleep=start_server)
    try:

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                return await client.create("job-1", GA_BODY)

        job = run(scenario())
    finally:
        server.stop()

    assert job.id == "job-1"
    assert len(sleep.waits) == 1
    assert server.count("PUT") == 1


def test_create_gives_up_on_refused_connections_without_claiming_an_unknown_outcome() -> None:
    server = StubServer(port=free_port())  # never started
    sleep = RecordingSleep()

    async def scenario() -> None:
        async with SpeechClient(make_config(server, sleep=sleep, max_attempts=3)) as client:
            await client.create("job-1", GA_BODY)

    with pytest.raises(TransportError) as caught:
        run(scenario())

    assert not isinstance(caught.value, CreateOutcomeUnknown)
    assert len(sleep.waits) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": {"code": "BadRequest", "message": "The id 'job-1' already exists."}}),
        (409, {"error": {"code": "Conflict", "message": "Conflict"}}),
    ],
)
def test_ga_create_of_an_existing_id_raises_job_exists(status: int, body: Any) -> None:
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(status, body))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.create("job-1", GA_BODY)

        with pytest.raises(JobExistsError) as caught:
            run(scenario())

    assert isinstance(caught.value, BadRequestError)
    assert caught.value.job_id == "job-1"


def test_a_plain_bad_request_quotes_the_service_message_and_is_not_retried() -> None:
    body = {"error": {"code": "BadRequest", "message": "The inputs is required."}}
    headers = {"apim-request-id": "req-42", "x-ms-error-code": "BadRequest"}
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(400, body, headers))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.create("job-1", {})

        with pytest.raises(BadRequestError) as caught:
            run(scenario())
        assert server.count() == 1

    assert not isinstance(caught.value, JobExistsError)
    assert caught.value.code == "BadRequest"
    assert caught.value.request_id == "req-42"
    assert "The inputs is required." in str(caught.value)
    assert "req-42" in str(caught.value)


# --------------------------------------------------------------------------- get / list / delete


def test_ga_get_normalises_a_succeeded_job() -> None:
    sas = "https://blob.example/out/job-1/0001.mp4?sv=2023&sig=SIGNATURE123"
    body = ga_job(
        "job-1",
        "Succeeded",
        sizeInBytes=344460,
        durationInMilliseconds=2520,
        billingDetails={"neuralCharacters": 29, "talkingAvatarDurationSeconds": 2},
    )
    body["outputs"] = {"result": sas, "summary": "https://blob.example/summary.json?sig=X"}
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(200, body))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server)) as client:
                return await client.get("job-1")

        job = run(scenario())

    assert job.is_final and job.succeeded
    assert job.size_in_bytes == 344460 and job.duration_ms == 2520
    assert job.billing == {"neuralCharacters": 29, "talkingAvatarDurationSeconds": 2}
    assert job.result_url == sas
    assert job.created == datetime(2024, 3, 6, 7, 34, 8, 948700, tzinfo=UTC)
    assert job.last_action is not None and job.last_action.tzinfo is UTC
    assert "SIGNATURE123" not in repr(job)


def test_preview_get_normalises_ticks_size_and_names() -> None:
    body = preview_job("abc", "Succeeded", audioSize=336780, durationInTicks=25200000)
    with StubServer() as server:
        server.route("GET", f"{PREVIEW_JOBS}/abc", Reply(200, body))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                return await client.get("abc")

        job = run(scenario())
        assert server.requests[0].query == {}

    assert job.size_in_bytes == 336780
    assert job.duration_ms == 2520
    assert job.display_name == "course-01-welcome-0123456789ab"


def test_failed_and_unknown_statuses_are_carried_not_rejected() -> None:
    failed = ga_job("job-1", "Failed", error={"code": "InvalidSsml", "message": f"bad {KEY}"})
    failed_job = RemoteJob.from_api(failed)
    strange = RemoteJob.from_api(ga_job("job-2", "Paused"))

    assert failed_job.is_final and failed_job.failed
    assert failed_job.error_code == "InvalidSsml"
    assert failed_job.error_message is not None and KEY not in failed_job.error_message
    assert strange.status == "Paused" and not strange.is_final


def test_get_of_a_missing_job_raises_not_found_with_the_service_words() -> None:
    body = {"error": {"code": "NotFound", "message": "The specified entity can't be found."}}
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/gone", Reply(404, body, {"apim-request-id": "r-1"}))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.get("gone")

        with pytest.raises(NotFoundError) as caught:
            run(scenario())
        assert server.count() == 1

    assert caught.value.status_code == 404 and caught.value.code == "NotFound"
    assert "can't be found" in str(caught.value) and "r-1" in str(caught.value)


def test_ga_list_follows_next_links_across_three_pages() -> None:
    jobs = [ga_job(f"job-{i}") for i in range(5)]

    def page(request: Recorded) -> Reply:
        skip = int(request.query.get("skip", "0"))
        body: dict[str, Any] = {"value": jobs[skip : skip + 2]}
        if skip == 0:  # the documented shape: trailing slash, other parameter order
            body["nextLink"] = f"{server.url}{GA_JOBS}/?maxpagesize=2&skip=2&api-version={GA}"
        elif skip == 2:  # a regional host name: followed on the configured endpoint
            body["nextLink"] = "https://westeurope.api.cognitive.microsoft.com" + (
                f"{GA_JOBS}?api-version={GA}&skip=4&maxpagesize=2"
            )
        return Reply(200, body)

    with StubServer() as server:
        server.route("GET", GA_JOBS, page)
        server.route("GET", f"{GA_JOBS}/", page)

        async def scenario() -> list[str]:
            async with SpeechClient(make_config(server)) as client:
                ids = [job.id async for job in client.list_jobs(page_size=2)]
                assert client.request_counts == {"list": 3}
                return ids

        ids = run(scenario())
        first = server.requests[0]

    assert ids == [f"job-{i}" for i in range(5)]
    assert first.query == {"api-version": GA, "skip": "0", "maxpagesize": "2"}
    assert [r.path for r in server.requests] == [GA_JOBS, f"{GA_JOBS}/", GA_JOBS]
    assert all(r.headers["ocp-apim-subscription-key"] == KEY for r in server.requests)


def test_preview_list_follows_at_next_links_across_three_pages() -> None:
    jobs = [preview_job(f"p-{i}") for i in range(5)]

    def page(request: Recorded) -> Reply:
        skip = int(request.query.get("skip", "0"))
        body: dict[str, Any] = {"values": jobs[skip : skip + 2]}
        if skip + 2 < len(jobs):
            body["@nextLink"] = f"{server.url}{PREVIEW_JOBS}?skip={skip + 2}&top=2"
        return Reply(200, body)

    with StubServer() as server:
        server.route("GET", PREVIEW_JOBS, page)

        async def scenario() -> list[str]:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                return [job.id async for job in client.list_jobs(page_size=2)]

        ids = run(scenario())

    assert ids == [f"p-{i}" for i in range(5)]
    assert server.requests[0].query == {"skip": "0", "top": "2"}
    assert server.count() == 3


def test_delete_reports_whether_the_job_was_still_there() -> None:
    not_found = Reply(404, {"error": {"code": "NotFound", "message": "gone"}})
    with StubServer() as server:
        server.route("DELETE", f"{GA_JOBS}/job-1", Reply(204), not_found)

        async def scenario() -> tuple[bool, bool]:
            async with SpeechClient(make_config(server)) as client:
                return await client.delete("job-1"), await client.delete("job-1")

        assert run(scenario()) == (True, False)
        assert server.requests[0].query == {"api-version": GA}


def test_preview_delete_of_a_missing_job_can_be_an_error() -> None:
    with StubServer() as server:
        server.route("DELETE", f"{PREVIEW_JOBS}/abc", Reply(404, {"code": "NotFound"}))

        async def scenario() -> None:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                await client.delete("abc", missing_ok=False)

        with pytest.raises(NotFoundError):
            run(scenario())


# --------------------------------------------------------------------------- retries


def test_retry_after_is_honoured_on_get() -> None:
    sleep = RecordingSleep()
    throttled = Reply(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "7"})
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", throttled, Reply(200, ga_job("job-1")))

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                return await client.get("job-1")

        assert run(scenario()).id == "job-1"
        assert server.count() == 2

    assert sleep.waits == [7.0]


def test_azure_millisecond_retry_after_wins_over_seconds() -> None:
    sleep = RecordingSleep()
    headers = {"Retry-After": "2", "retry-after-ms": "1500"}
    with StubServer() as server:
        server.route(
            "GET", f"{GA_JOBS}/job-1", Reply(429, None, headers), Reply(200, ga_job("job-1"))
        )

        async def scenario() -> None:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                await client.get("job-1")

        run(scenario())

    assert sleep.waits == [1.5]


def test_a_retry_after_beyond_the_limit_is_raised_instead_of_waited_out() -> None:
    sleep = RecordingSleep()
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(429, None, {"Retry-After": "600"}))

        async def scenario() -> None:
            config = make_config(server, sleep=sleep, max_retry_after=60.0)
            async with SpeechClient(config) as client:
                await client.get("job-1")

        with pytest.raises(ThrottledError) as caught:
            run(scenario())
        assert server.count() == 1

    assert caught.value.retry_after == 600.0
    assert sleep.waits == []


def test_retry_after_accepts_an_http_date() -> None:
    now = datetime(2024, 3, 6, 7, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Wed, 06 Mar 2024 07:00:12 GMT", now=now) == 12.0
    assert parse_retry_after("Wed, 06 Mar 2024 06:59:00 GMT", now=now) == 0.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after("soon", now=now) is None


def test_5xx_and_dropped_connections_are_retried_for_get_with_capped_backoff() -> None:
    sleep = RecordingSleep()
    with StubServer() as server:
        server.route(
            "GET",
            f"{GA_JOBS}/job-1",
            Reply(503, {"error": {"code": "ServiceUnavailable"}}),
            Reply(drop=True),
            Reply(502, "Bad Gateway"),
            Reply(200, ga_job("job-1", "Running")),
        )

        async def scenario() -> RemoteJob:
            async with SpeechClient(make_config(server, sleep=sleep)) as client:
                job = await client.get("job-1")
                assert client.request_counts == {"get": 4}
                return job

        assert run(scenario()).status == "Running"
        assert server.count() == 4

    # windows 0.5, 1, 2 (cap 4) with half of each fixed and half jittered
    assert len(sleep.waits) == 3
    for wait, window in zip(sleep.waits, [0.5, 1.0, 2.0], strict=True):
        assert window / 2 <= wait <= window


def test_get_gives_up_after_the_last_attempt() -> None:
    sleep = RecordingSleep()
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(500, {"error": {"message": "down"}}))

        async def scenario() -> None:
            async with SpeechClient(make_config(server, sleep=sleep, max_attempts=3)) as client:
                await client.get("job-1")

        with pytest.raises(ServerError):
            run(scenario())
        assert server.count() == 3

    assert len(sleep.waits) == 2
    assert all(wait <= 4.0 for wait in sleep.waits)


def test_backoff_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=5.0, jitter=lambda low, high: high)

    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


# --------------------------------------------------------------------------- auth and secrets


def test_bearer_tokens_are_sent_and_refreshed_before_expiry() -> None:
    now = [1000.0]
    fetched: list[str] = []

    def fetch() -> tuple[str, float]:
        token = f"eyJ-token-{len(fetched)}-abcdefgh"
        fetched.append(token)
        return token, now[0] + 3600

    credential = BearerTokenCredential(fetch, refresh_margin=300, clock=lambda: now[0])
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(200, ga_job("job-1")))

        async def scenario() -> None:
            async with SpeechClient(make_config(server, credential=credential)) as client:
                await client.get("job-1")
                await client.get("job-1")
                now[0] += 3400  # within the refresh margin of the expiry
                await client.get("job-1")

        run(scenario())
        sent = [r.headers.get("authorization") for r in server.requests]

    assert sent == [f"Bearer {fetched[0]}", f"Bearer {fetched[0]}", f"Bearer {fetched[1]}"]
    assert all("ocp-apim-subscription-key" not in r.headers for r in server.requests)


def test_the_key_never_appears_in_error_text() -> None:
    echo = {"error": {"code": "Unauthorized", "message": f"Key {KEY} is not valid"}}
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(401, echo))
        server.route("GET", f"{GA_JOBS}/job-2", Reply(400, f"Ocp-Apim-Subscription-Key: {KEY}"))

        async def scenario(job_id: str) -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.get(job_id)

        with pytest.raises(AuthError) as auth:
            run(scenario("job-1"))
        with pytest.raises(BadRequestError) as bad:
            run(scenario("job-2"))

    for error in (auth.value, bad.value):
        assert KEY not in str(error) and KEY not in repr(error.args)
    assert "is not valid" in str(auth.value)
    assert "AZURE_SPEECH_KEY" in str(auth.value)


def test_preview_and_problem_details_error_bodies_are_quoted() -> None:
    flat = {
        "code": "InvalidRequest",
        "message": "Bad input.",
        "innerError": {"code": "X", "message": "y"},
    }
    problem = {
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": {"Properties.DestinationContainerUrl": ["The SAS URI is expired."]},
    }
    with StubServer() as server:
        server.route("GET", f"{PREVIEW_JOBS}/a", Reply(400, flat))
        server.route("GET", f"{PREVIEW_JOBS}/b", Reply(400, problem))

        async def scenario(job_id: str) -> None:
            async with SpeechClient(make_config(server, api_version=PREVIEW)) as client:
                await client.get(job_id)

        with pytest.raises(BadRequestError) as first:
            run(scenario("a"))
        with pytest.raises(BadRequestError) as second:
            run(scenario("b"))

    assert first.value.code == "InvalidRequest" and "Bad input. (X: y)" in str(first.value)
    assert "DestinationContainerUrl: The SAS URI is expired." in str(second.value)


# --------------------------------------------------------------------------- download


VIDEO = bytes(range(256)) * 4096  # 1 MiB, more than one chunk


def test_download_streams_to_disk_and_keeps_the_key_off_foreign_hosts(tmp_path: Path) -> None:
    progress: list[tuple[int, int | None]] = []
    with StubServer() as api, StubServer() as blobs:
        blobs.route("GET", "/out/0001.mp4", Reply(200, VIDEO))
        url = f"{blobs.url}/out/0001.mp4?sv=2023&sig=SECRETSIG"

        async def scenario() -> tuple[int, str]:
            async with SpeechClient(make_config(api)) as client:
                result = await client.download(
                    url, tmp_path / "v.part", len(VIDEO), lambda n, t: progress.append((n, t))
                )
                assert client.request_counts == {"download": 1}
                return result

        size, sha = run(scenario())
        sent = blobs.requests[0]

    assert (size, sha) == (len(VIDEO), hashlib.sha256(VIDEO).hexdigest())
    assert (tmp_path / "v.part").read_bytes() == VIDEO
    assert progress[-1] == (len(VIDEO), len(VIDEO))
    assert "ocp-apim-subscription-key" not in sent.headers
    assert "authorization" not in sent.headers
    assert sent.query["sig"] == "SECRETSIG"


def test_download_from_the_endpoint_host_carries_the_key(tmp_path: Path) -> None:
    with StubServer() as server:
        server.route("GET", "/results/job-1/0001.mp4", Reply(200, b"video"))

        async def scenario() -> tuple[int, str]:
            async with SpeechClient(make_config(server)) as client:
                return await client.download(f"{server.url}/results/job-1/0001.mp4", tmp_path / "v")

        assert run(scenario())[0] == 5
        assert server.requests[0].headers["ocp-apim-subscription-key"] == KEY


def test_a_truncated_download_is_detected_retried_and_cleaned_up(tmp_path: Path) -> None:
    sleep = RecordingSleep()
    with StubServer() as blobs:
        blobs.route("GET", "/out/0001.mp4", Reply(200, VIDEO, truncate_at=1000))

        async def scenario() -> None:
            async with SpeechClient(make_config(blobs, sleep=sleep, max_attempts=3)) as client:
                await client.download(f"{blobs.url}/out/0001.mp4", tmp_path / "v.part")

        with pytest.raises(DownloadError) as caught:
            run(scenario())
        assert blobs.count() == 3

    assert not isinstance(caught.value, ResultUnavailableError)
    assert not (tmp_path / "v.part").exists()


def test_a_download_of_another_size_than_the_job_reported_fails(tmp_path: Path) -> None:
    with StubServer() as blobs:
        blobs.route("GET", "/out/0001.mp4", Reply(200, b"short"))

        async def scenario() -> None:
            async with SpeechClient(make_config(blobs)) as client:
                await client.download(f"{blobs.url}/out/0001.mp4", tmp_path / "v", 344460)

        with pytest.raises(DownloadError, match="344460"):
            run(scenario())
        assert blobs.count() == 1

    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [(403, "AuthenticationFailed", "expired"), (404, "BlobNotFound", "gone")],
)
def test_an_expired_or_deleted_result_url_says_so(
    tmp_path: Path, status: int, code: str, reason: str
) -> None:
    with StubServer() as api, StubServer() as blobs:
        blobs.route("GET", "/out/0001.mp4", Reply(status, "<Error/>", {"x-ms-error-code": code}))

        async def scenario() -> None:
            async with SpeechClient(make_config(api)) as client:
                await client.download(
                    f"{blobs.url}/out/0001.mp4?se=2024&sig=SIGSIG", tmp_path / "v"
                )

        with pytest.raises(ResultUnavailableError) as caught:
            run(scenario())
        assert blobs.count() == 1

    assert caught.value.reason == reason and caught.value.expired == (reason == "expired")
    assert caught.value.code == code
    assert "SIGSIG" not in str(caught.value)


def test_an_expired_url_is_replaced_by_the_refresh_and_its_failure_is_final(
    tmp_path: Path,
) -> None:
    with StubServer() as api, StubServer() as blobs:
        expired = Reply(403, "<Error/>", {"x-ms-error-code": "AuthenticationFailed"})
        blobs.route("GET", "/old/0001.mp4", expired)
        blobs.route("GET", "/new/0001.mp4", Reply(200, VIDEO))
        blobs.route("GET", "/never/0001.mp4", expired)
        asked: list[str] = []

        async def fresh_url(failure: DownloadError) -> tuple[str, int | None] | None:
            asked.append(type(failure).__name__)
            return (f"{blobs.url}/new/0001.mp4", len(VIDEO)) if len(asked) == 1 else None

        async def scenario(path: str) -> tuple[int, str]:
            async with SpeechClient(make_config(api)) as client:
                return await client.download(
                    f"{blobs.url}/{path}/0001.mp4", tmp_path / "v", refresh=fresh_url
                )

        assert run(scenario("old"))[0] == len(VIDEO)  # one fresh URL, at once
        assert (blobs.count(path="/old/0001.mp4"), blobs.count(path="/new/0001.mp4")) == (1, 1)
        with pytest.raises(ResultUnavailableError):  # the refresh has no other URL
            run(scenario("never"))
        assert blobs.count(path="/never/0001.mp4") == 1
    assert asked == ["ResultUnavailableError", "ResultUnavailableError"]


def test_a_relative_result_path_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = ServiceConfig(endpoint="http://127.0.0.1:9", credential=KeyCredential(KEY))
        async with SpeechClient(config) as client:
            await client.download("results/job-1/0001.mp4", tmp_path / "v")

    with pytest.raises(DownloadError, match="absolute"):
        run(scenario())


# --------------------------------------------------------------------------- configuration


def test_from_env_builds_regional_endpoints_per_surface() -> None:
    env = {"AZURE_SPEECH_REGION": "westeurope", "AZURE_SPEECH_KEY": KEY}

    ga = ServiceConfig.from_env(environ=env)
    preview = ServiceConfig.from_env(PREVIEW, environ=env)

    assert ga.endpoint == "https://westeurope.api.cognitive.microsoft.com"
    assert ga.surface == "ga" and ga.api_version == GA
    assert preview.endpoint == "https://westeurope.customvoice.api.speech.microsoft.com"
    assert preview.surface == "preview"
    assert isinstance(ga.credential, KeyCredential)
    assert KEY not in repr(ga)


def test_from_env_endpoint_wins_and_explicit_values_win_over_the_environment() -> None:
    env = {
        "AZURE_SPEECH_ENDPOINT": "http://127.0.0.1:8765/",
        "AZURE_SPEECH_REGION": "westeurope",
        "AZURE_SPEECH_KEY": KEY,
    }

    assert ServiceConfig.from_env(environ=env).endpoint == "http://127.0.0.1:8765"
    assert (
        ServiceConfig.from_env(region="swedencentral", environ=env).endpoint
        == "https://swedencentral.api.cognitive.microsoft.com"
    )
    assert ServiceConfig.from_env(endpoint="http://localhost:1", environ=env).endpoint == (
        "http://localhost:1"
    )


def test_from_env_without_endpoint_or_region_names_the_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.from_env(environ={"AZURE_SPEECH_KEY": KEY})

    assert "AZURE_SPEECH_ENDPOINT" in str(caught.value)
    assert "AZURE_SPEECH_REGION" in str(caught.value)


def test_plain_http_is_only_allowed_for_loopback_endpoints() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        ServiceConfig(endpoint="http://speech.example.com", credential=KeyCredential(KEY))
    with pytest.raises(ConfigError, match="api version"):
        ServiceConfig(endpoint="https://x.example", credential=KeyCredential(KEY), api_version="v9")


def test_without_a_key_entra_needs_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)

    with pytest.raises(ConfigError, match=r"pip install 'avatarflow\[entra\]'"):
        ServiceConfig.from_env(environ={"AZURE_SPEECH_REGION": "westeurope"})


def test_without_a_key_an_entra_token_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes: list[str] = []

    class FakeDefaultAzureCredential:
        def get_token(self, scope: str) -> Any:
            scopes.append(scope)
            return types.SimpleNamespace(token="entra-token-abcdef", expires_on=4_000_000_000)

    fake = types.ModuleType("azure.identity")
    fake.DefaultAzureCredential = FakeDefaultAzureCredential  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.identity", fake)
    config = ServiceConfig.from_env(environ={"AZURE_SPEECH_REGION": "westeurope"})

    headers = run(config.credential.auth_headers())

    assert headers == {"Authorization": "Bearer entra-token-abcdef"}
    assert scopes == ["https://cognitiveservices.azure.com/.default"]


def test_public_names() -> None:
    # Restated on purpose (it repeats __all__): a change to the public names shows here.
    assert set(client_module.__all__) == {
        "API_VERSIONS",
        "GA_API_VERSION",
        "PREVIEW_API_VERSION",
        "BearerTokenCredential",
        "CreateOutcomeUnknown",
        "Credential",
        "JobExistsError",
        "KeyCredential",
        "RemoteJob",
        "ResultUnavailableError",
        "RetryPolicy",
        "ServiceConfig",
        "SpeechClient",
        "entra_credential",
    }


# -- answers that do not fit the request ------------------------------------------------------


def test_statuses_are_matched_without_case_to_the_documented_set() -> None:
    assert RemoteJob.from_api(ga_job("job-1", "failed")).status == "Failed"
    assert RemoteJob.from_api(ga_job("job-1", " SUCCEEDED ")).status == "Succeeded"
    assert RemoteJob.from_api(ga_job("job-1", "Canceled")).status == "Canceled"


def test_a_get_answered_about_another_job_is_refused() -> None:
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(200, ga_job("job-2", "Succeeded")))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.get("job-1")

        with pytest.raises(UntrustedAnswerError, match="answered with job id 'job-2'"):
            run(scenario())


def test_an_answer_declared_over_the_cap_is_refused_unread() -> None:
    # (One without a length is read up to the cap: tests/test_hostile_answers.py.)
    huge = {**ga_job("job-1"), "padding": "x" * (MAX_ANSWER_BYTES + 10)}
    with StubServer() as server:
        server.route("GET", f"{GA_JOBS}/job-1", Reply(200, huge))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.get("job-1")

        with pytest.raises(UntrustedAnswerError, match="8,388,608"):
            run(scenario())


def test_a_listing_that_never_ends_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_LIST_PAGES", 5)

    def page(request: Any) -> Reply:
        skip = int(request.query.get("skip", "0")) + 100
        return Reply(200, {"value": [], "nextLink": f"{GA_JOBS}?skip={skip}"})

    with StubServer() as server:
        server.route("GET", GA_JOBS, page)

        async def scenario() -> list[RemoteJob]:
            async with SpeechClient(make_config(server)) as client:
                return [job async for job in client.list_jobs()]

        with pytest.raises(UntrustedAnswerError, match="after 5 pages"):
            run(scenario())
        assert server.count() == 5


def test_a_ga_create_answered_for_another_id_is_refused() -> None:
    with StubServer() as server:
        server.route("PUT", f"{GA_JOBS}/job-1", Reply(201, ga_job("job-9")))

        async def scenario() -> None:
            async with SpeechClient(make_config(server)) as client:
                await client.create("job-1", GA_BODY)

        with pytest.raises(UntrustedAnswerError, match="for job id 'job-9', not 'job-1'"):
            run(scenario())
