"""Every fault mode as a client sees it, the fault spec grammar, the request log, config."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from avatarflow.emulator import (
    Emulator,
    EmulatorConfig,
    FailRule,
    Faults,
    Rate,
    create_counts,
    read_request_log,
)
from avatarflow.emulator.faults import FaultInjector

from .emulator_fixtures import GA_VERSION, KEY, Api, EmulatorFactory, ga_body, preview_body

pytest_plugins = ["tests.emulator_fixtures"]

LIST = "/avatar/batchsyntheses"
PARAMS = {"api-version": GA_VERSION}


# --- grammar --------------------------------------------------------------------------


def test_fault_spec_grammar():
    faults = Faults.parse(
        "throttle=2@create/get, retry_after=3, error=25%, error_status=503, drop=0.1@download,"
        "lose_create=1, lose_create=intro-*, stuck=*-stuck, stuck=x*, fail=*03-*:InvalidSsml,"
        "fail=bad*:BadThing:It broke, truncate=2, expire_urls=1, seed=9"
    )
    assert faults.throttle == Rate(count=2, kinds=frozenset({"create", "get"}))
    assert faults.retry_after == 3.0
    assert faults.error is not None and faults.error.fraction == 0.25
    assert faults.error_status == 503
    assert faults.drop == Rate(fraction=0.1, kinds=frozenset({"download"}))
    assert (faults.lose_create, faults.lose_create_ids) == (1, ("intro-*",))
    assert faults.stuck == ("*-stuck", "x*")
    assert faults.fail[0].pattern == "*03-*" and faults.fail[0].code == "InvalidSsml"
    assert faults.fail[1] == FailRule("bad*", "BadThing", "It broke")
    assert (faults.truncate, faults.expire_urls, faults.seed) == (2, 1, 9)
    assert faults.is_stuck("job-stuck") and not faults.is_stuck("job-ok")
    assert Faults.parse("") == Faults()


@pytest.mark.parametrize(
    "spec",
    ["nonsense=1", "throttle", "throttle=x", "error_status=418", "drop=2@upload", "throttle=150%"],
)
def test_bad_fault_specs_are_rejected(spec: str):
    with pytest.raises(ValueError):
        Faults.parse(spec)


def test_fractions_are_reproducible_with_a_seed():
    def draws(seed: int) -> list[str | None]:
        injector = FaultInjector(Faults.parse(f"error=50%,seed={seed}"))
        return [injector.request_fault("get") for _ in range(40)]

    assert draws(4) == draws(4)
    assert draws(4) != draws(5)
    assert 5 < draws(4).count("error") < 35


# --- request faults -------------------------------------------------------------------


def test_throttle_count_answers_429_with_retry_after(make_emulator: EmulatorFactory):
    api = Api(make_emulator(faults=Faults.parse("throttle=2,retry_after=7")))
    first, second, third = (api.http.get(LIST, params=PARAMS) for _ in range(3))
    for response in (first, second):
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.headers["x-ms-error-code"] == "TooManyRequests"
        assert response.json()["error"]["code"] == "TooManyRequests"
    assert third.status_code == 200
    faults = [r.fault for r in api.emulator.request_log()]
    assert faults == ["throttle", "throttle", None]
    api.close()


def test_throttle_can_target_one_route_kind(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=3600, faults=Faults.parse("throttle=1@create")))
    assert api.http.get(LIST, params=PARAMS).status_code == 200
    assert api.put("kind-01", ga_body()).status_code == 429
    assert api.put("kind-01", ga_body()).status_code == 201
    api.close()


def test_create_throttle_follows_the_documented_rate(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=3600, creates_per_minute=2, time_scale=60.0))
    assert api.put("rate-1", ga_body()).status_code == 201
    assert api.put("rate-2", ga_body()).status_code == 201
    limited = api.put("rate-3", ga_body())
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    wait_ms = int(limited.headers["retry-after-ms"])
    assert 0 < wait_ms <= 1000
    assert api.get("rate-3").status_code == 404  # nothing was created
    time.sleep(wait_ms / 1000 + 0.05)
    assert api.put("rate-3", ga_body()).status_code == 201
    assert api.emulator.create_counts() == {"rate-1": 1, "rate-2": 1, "rate-3": 1}
    api.close()


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalServerError"), (503, "ServiceUnavailable")]
)
def test_server_errors(make_emulator: EmulatorFactory, status: int, code: str):
    api = Api(make_emulator(faults=Faults.parse(f"error=1,error_status={status}")))
    response = api.http.get(LIST, params=PARAMS)
    assert response.status_code == status
    assert response.headers["x-ms-error-code"] == code
    assert api.http.get(LIST, params=PARAMS).status_code == 200
    api.close()


def test_dropped_connections(make_emulator: EmulatorFactory):
    api = Api(make_emulator(faults=Faults.parse("drop=1")))
    with pytest.raises(httpx.RemoteProtocolError):
        api.http.get(LIST, params=PARAMS)
    assert api.http.get(LIST, params=PARAMS).status_code == 200
    assert [(r.status, r.fault) for r in api.emulator.request_log()] == [(0, "drop"), (200, None)]
    api.close()


def test_lost_create_response_still_creates_the_job(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=3600, faults=Faults.parse("lose_create=1")))
    with pytest.raises(httpx.RemoteProtocolError):
        api.put("lost-01", ga_body())
    assert api.get("lost-01").status_code == 200  # the client can adopt it by id
    again = api.put("lost-01", ga_body())
    assert again.status_code == 400 and "already exists" in again.text
    assert api.emulator.create_counts() == {"lost-01": 1}
    (record,) = [r for r in api.emulator.request_log() if r.created]
    assert (record.status, record.fault) == (0, "lose_create")
    api.close()


def test_lost_create_by_glob_on_preview_display_name(make_emulator: EmulatorFactory):
    api = Api(make_emulator(queue_seconds=3600, faults=Faults.parse("lose_create=intro-*")))
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(preview_body(displayName="intro-video"))
    listed = api.http.get("/api/texttospeech/3.1-preview1/batchsynthesis/talkingavatar").json()
    assert [job["displayName"] for job in listed["values"]] == ["intro-video"]
    assert api.post(preview_body(displayName="outro-video")).status_code == 201
    assert api.post(preview_body(displayName="intro-video")).status_code == 201  # once per name
    api.close()


# --- job faults -----------------------------------------------------------------------


def test_stuck_jobs_stay_not_started_until_the_fault_is_lifted(make_emulator: EmulatorFactory):
    emulator = make_emulator(faults=Faults.parse("stuck=*-stuck"))
    api = Api(emulator)
    api.put("a-stuck", ga_body())
    api.put("a-free", ga_body())
    assert api.wait("a-free")["status"] == "Succeeded"
    assert api.get("a-stuck").json()["status"] == "NotStarted"
    emulator.faults = Faults()
    assert api.wait("a-stuck")["status"] == "Succeeded"
    api.close()


def test_failed_jobs_carry_the_chosen_error(make_emulator: EmulatorFactory):
    api = Api(make_emulator(faults=Faults.parse("fail=*03-*:InvalidSsml:Line 2 is broken")))
    api.put("course-03-intro", ga_body())
    job = api.wait("course-03-intro")
    assert job["status"] == "Failed"
    assert job["properties"]["error"] == {"code": "InvalidSsml", "message": "Line 2 is broken"}
    assert job["properties"]["failedCount"] == 1
    assert job["properties"]["succeededCount"] == 0
    summary = httpx.get(job["outputs"]["summary"]).json()
    assert summary["status"] == "Failed"
    api.close()


def test_failed_preview_jobs_match_the_display_name(make_emulator: EmulatorFactory):
    api = Api(make_emulator(faults=Faults.parse("fail=broken*:BadThing")))
    job_id = api.post(preview_body(displayName="broken-one")).json()["id"]
    job = api.wait(job_id, preview=True)
    assert job["status"] == "Failed"
    assert job["properties"]["error"]["code"] == "BadThing"
    api.close()


# --- download faults ------------------------------------------------------------------


def test_truncated_downloads(make_emulator: EmulatorFactory):
    emulator = make_emulator(faults=Faults.parse("truncate=1"))
    api = Api(emulator)
    api.put("cut-01", ga_body())
    url = api.wait("cut-01")["outputs"]["result"]
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    full = httpx.get(url)
    assert len(full.content) == int(full.headers["Content-Length"])
    api.close()


def test_expired_result_urls(make_emulator: EmulatorFactory):
    api = Api(make_emulator(faults=Faults.parse("expire_urls=1")))
    api.put("old-url", ga_body())
    job = api.wait("old-url")
    expired = httpx.get(job["outputs"]["result"])
    assert expired.status_code == 403
    assert expired.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert "<Code>AuthenticationFailed</Code>" in expired.text
    fresh = api.get("old-url").json()["outputs"]["result"]
    assert httpx.get(fresh).status_code == 200
    api.close()


def test_result_urls_expire_after_url_ttl(make_emulator: EmulatorFactory):
    api = Api(make_emulator(url_ttl_seconds=0.0))
    api.put("no-ttl", ga_body())
    response = httpx.get(api.wait("no-ttl")["outputs"]["result"])
    assert response.status_code == 403
    assert "Signed expiry time" in response.text
    api.close()


def test_tampered_signatures_are_refused(api: Api):
    api.put("tamper", ga_body())
    url = api.wait("tamper")["outputs"]["result"]
    assert httpx.get(url).status_code == 200
    other_job = url.replace("/tamper/", "/tamper2/")
    assert httpx.get(other_job).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403


# --- request log, create counts, config ----------------------------------------------


def test_request_log_records_routes_without_secrets(make_emulator: EmulatorFactory):
    emulator = make_emulator()
    api = Api(emulator)
    api.put("logged", ga_body(), headers={"Authorization": "Bearer secret-token-123"})
    job = api.wait("logged")
    httpx.get(job["outputs"]["result"])
    httpx.get(job["outputs"]["summary"])
    api.delete("logged")
    api.http.get(LIST, params=PARAMS)
    kinds = [r.kind for r in emulator.request_log()]
    assert kinds[0] == "create" and kinds[-3:] == ["summary", "delete", "list"]
    assert "get" in kinds and "download" in kinds
    text = (emulator.data_dir / "requests.jsonl").read_text()
    sig = job["outputs"]["result"].split("sig=")[1]
    for secret in (KEY, "secret-token-123", sig, "sig="):
        assert secret not in text
    download = next(r for r in emulator.request_log() if r.kind == "download")
    assert (download.job_id, download.name, download.status) == ("logged", "logged", 200)
    api.close()


def test_create_counts_add_up_across_emulator_processes(tmp_path: Path):
    for run in range(2):
        with Emulator(tmp_path, EmulatorConfig(queue_seconds=3600)) as emulator:
            api = Api(emulator)
            api.put(f"run-{run}", ga_body())
            api.put("run-0", ga_body())  # the second run's attempt is refused: not paid
            api.post(preview_body(displayName="same-name"))
            api.close()
    assert create_counts(tmp_path) == {"run-0": 1, "run-1": 1, "same-name": 2}
    assert len(read_request_log(tmp_path)) == 6


def test_config_from_environment():
    environ = {
        "AVATARFLOW_EMULATOR_CONFIG": json.dumps(
            {
                "queue_seconds": 2,
                "width": 640,
                "height": 360,
                "creates_per_minute": 2,
                "faults": "throttle=1",
            }
        ),
        "AVATARFLOW_EMULATOR_FAULTS": "stuck=abc*",
    }
    config = EmulatorConfig.from_env(environ)
    assert (config.queue_seconds, config.width, config.height) == (2, 640, 360)
    assert config.creates_per_minute == 2
    assert config.faults.stuck == ("abc*",) and config.faults.throttle is None
    assert EmulatorConfig.from_env({}) == EmulatorConfig()
    with pytest.raises(ValueError, match="unknown emulator config"):
        EmulatorConfig.from_env({"AVATARFLOW_EMULATOR_CONFIG": '{"colour": 1}'})


def test_config_key_is_not_shown_in_repr():
    assert KEY not in repr(EmulatorConfig(key=KEY))
