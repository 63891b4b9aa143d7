"""Costs that grow with the catalogue, counted (never timed): requests, 429s, renders."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from avatarflow import fastpath, yamlsafe
from avatarflow.client import ServiceConfig, SpeechClient
from avatarflow.credentials import KeyCredential
from avatarflow.emulator import Emulator, EmulatorConfig
from avatarflow.emulator.requestlog import RequestRecord, create_counts, read_request_log
from avatarflow.pacing import CreatePacer
from avatarflow.payload import HASH_FORMAT, canonical_json, content_hash
from avatarflow.runner import RunOptions

from .emulator_fixtures import HEADERS, ga_body
from .helpers import Opened, course, open_course, record_rendered, run_cli

REPO = Path(__file__).resolve().parent.parent


def many_videos(root: Path, n: int) -> Path:
    """A course of ``n`` short videos sharing one template."""
    entries = "".join(
        f"  - id: v{i:04d}\n    vars: {{title: Part {i}}}\n"
        f"    text: Part {i} of {{{{ course }}}}.\n"
        for i in range(n)
    )
    manifest = (
        "version: 1\nname: big\n"
        "defaults:\n  template: narration.ssml.j2\n  voice: en-US-AvaMultilingualNeural\n"
        "  avatar: {character: lisa, style: graceful-sitting}\n"
        "  video: {format: mp4, codec: h264}\n  vars: {course: Scale}\n"
        f"videos:\n{entries}"
    )
    return course(root, manifest)


def emulator_log(manifest: Path) -> list[RequestRecord]:
    return read_request_log(manifest.parent / ".avatarflow" / "big" / "emulator" / "service")


# -- no-op apply ------------------------------------------------------------------------
def test_noop_apply_of_a_large_course_sends_no_request(tmp_path: Path) -> None:
    manifest = many_videos(tmp_path, 300)
    project = open_course(manifest, "emulator")
    state = project.load_state()
    for request in project.requests:
        record_rendered(project, state, request)

    result = run_cli("apply", str(manifest), "--emulator", "--yes")

    assert result.code == 0, result.err
    assert "No changes." in result.out
    assert emulator_log(manifest) == []  # the emulator was not even started


# -- polling ----------------------------------------------------------------------------
async def _poll(emulator: Emulator, project: Opened, ids: set[str]) -> None:
    config = ServiceConfig(endpoint=emulator.url, credential=KeyCredential("k"))
    async with SpeechClient(config) as client:
        runner = project.runner(project.load_state(), client, RunOptions())
        seen = await runner.poll_jobs(ids)
    assert set(seen) == ids
    assert {job.status for job in seen.values() if job is not None} == {"NotStarted"}


@pytest.mark.parametrize(
    ("in_flight", "older", "lists", "gets"), [(150, 60, 2, 0), (3, 0, 1, 0), (1, 0, 0, 1)]
)
def test_polling_in_flight_jobs_costs_one_list_request_per_100_jobs(
    tmp_path: Path, in_flight: int, older: int, lists: int, gets: int
) -> None:
    project = open_course(course(tmp_path / "c"))
    config = EmulatorConfig(queue_seconds=3600.0, max_active_jobs=1000)
    with Emulator(tmp_path / "emu", config) as emulator:
        old = [f"old-{i:03d}" for i in range(older)]
        new = [f"job-{i:03d}" for i in range(in_flight)]
        with httpx.Client(base_url=emulator.url, headers=HEADERS) as http:

            def create(name: str) -> int:
                url = f"/avatar/batchsyntheses/{name}"
                return http.put(
                    url, params={"api-version": "2024-08-01"}, json=ga_body()
                ).status_code

            with ThreadPoolExecutor(8) as pool:  # the jobs in flight are the newest, as in a run
                assert set(pool.map(create, old)) <= {201}
                assert set(pool.map(create, new)) == {201}
        asyncio.run(_poll(emulator, project, set(new)))
    # Read once the emulator has stopped: a request is logged after its answer is sent.
    polls = [r for r in read_request_log(tmp_path / "emu") if r.kind != "create"]

    assert Counter(r.kind for r in polls) == Counter({"list": lists, "get": gets}) - Counter()


# -- create throttle --------------------------------------------------------------------
def test_creates_are_paced_under_the_create_throttle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented 2 creates per minute, with the minute shrunk to 0.25 s.
    config = {"width": 16, "height": 16, "creates_per_minute": 2, "time_scale": 240}
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps(config))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)
    manifest = many_videos(tmp_path, 20)

    result = run_cli("apply", str(manifest), "--emulator", "--yes")

    assert result.code == 0, result.err
    log = emulator_log(manifest)
    throttled = [r for r in log if r.kind == "create" and r.status == 429]
    # Honouring Retry-After alone meets a 429 after every burst of two creates; pacing
    # learns the limit from the first one and then keeps to it.
    assert 1 <= len(throttled) <= 4
    counts = create_counts(tmp_path / ".avatarflow" / "big" / "emulator" / "service")
    assert len(counts) == 20 and set(counts.values()) == {1}  # paced, never paid twice


def test_pacer_learns_the_window_from_the_first_429_and_keeps_to_it() -> None:
    now = [0.0]
    pacer = CreatePacer(clock=lambda: now[0], margin=0.0)
    pacer.observe(201, None)
    pacer.observe(201, None)
    assert pacer.delay() == 0.0  # nothing known yet: creates go at once
    pacer.observe(429, 30.0)  # two admitted at t=0, the next slot at t=30: 2 per 30 s
    assert (pacer.limit, pacer.window) == (2, 30.0)
    now[0] = 30.0
    pacer.observe(201, None)
    assert pacer.delay() == 0.0  # one admission in the last 30 s: one more may go
    pacer.observe(201, None)
    assert pacer.delay() == 30.0
    now[0] = 40.0
    assert pacer.delay() == 20.0
    pacer.observe(400, None)  # neither admitted nor throttled: nothing learned
    assert pacer.delay() == 20.0
    now[0] = 60.0
    pacer.observe(429, 1.5)  # the window was 1.5 s too short
    assert (pacer.limit, pacer.window) == (2, 31.5)


# -- identical results from the fast paths --------------------------------------------
NARRATIONS = [  # (narration, whether the fast path can take it)
    ("", True),
    ("Plain words only.\n", True),
    ("Two trailing newlines.\n\n", True),
    ("Windows\r\nline\rends\r\n", True),
    ("In {{ course }}, {{title}} and {{  n  }} again: {{ course }}.\n", True),
    ("A dict {{ video }} and a flag {{ flag }} and none {{ nothing }}", True),
    ("Falls back: {{ course | upper }} {% if n %}yes{% endif %} {# note #}", False),
    ("Constants {{ true }} {{ none }}", False),
    ("Brace { alone } and {{ course }} }", False),
]


@pytest.mark.parametrize(("raw", "fast_path"), NARRATIONS)
def test_simple_narrations_render_exactly_as_jinja(raw: str, fast_path: bool) -> None:
    context = {
        "course": "Git & <Teams>",
        "title": "Intro",
        "n": 3,
        "flag": True,
        "nothing": None,
        "video": {"id": "a", "index": 0},
    }
    env = SandboxedEnvironment(undefined=StrictUndefined)
    expected = env.from_string(raw).render(context)
    fast = fastpath.render_simple_narration(raw, context)
    assert fast == (expected if fast_path else None)


def test_undefined_variable_in_a_narration_is_left_to_jinja_for_its_message() -> None:
    assert fastpath.render_simple_narration("Hi {{ missing }}", {}) is None


def test_content_hash_is_the_sha256_of_the_canonical_envelope() -> None:
    body = {"inputs": [{"content": 'é <x/> "q"'}], "avatarConfig": {"b": 1, "a": None}}
    envelope = {"format": HASH_FORMAT, "surface": "ga", "body": body}
    expected = hashlib.sha256(canonical_json(envelope).encode()).hexdigest()
    assert content_hash("ga", body) == expected


def test_libyaml_and_pure_python_loading_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "manifests" / "git-course.yaml").read_text()
    fast = yamlsafe.load_yaml(text, "git-course.yaml")
    monkeypatch.setattr(fastpath, "CParser", None)  # no libyaml events: nodes only
    monkeypatch.setattr(yamlsafe, "_FAST_LOADER", None)  # and the pure-Python parser
    slow = yamlsafe.load_yaml(text, "git-course.yaml")
    assert fast.data == slow.data and fast.lines == slow.lines
    assert len(fast.lines) > 50
