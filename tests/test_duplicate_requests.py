"""Two videos whose built requests are byte-identical (one request hash) cost one render.

The plan lists one paid render and the other video as a free reuse saying why; apply
makes exactly one paid create (counted in the emulator's request log) and writes both
outputs (checked by sha256); the summary uses the plan's words. On the embedded
emulator, real videos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avatarflow import workflow
from avatarflow.options import ApplyOptions
from avatarflow.planner import ActionKind
from avatarflow.statcache import sha256_file

from .helpers import MANIFEST, course, creates, emulate, open_course, run_cli

# ``b`` says what ``a`` says: the same request, under another id.
TWINS = MANIFEST.replace("Hello from video b.", "Hello from video a.")


@pytest.fixture
def twins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    emulate(monkeypatch)
    manifest = course(tmp_path, TWINS)
    requests = {r.video_id: r for r in open_course(manifest, "emulator").requests}
    assert requests["a"].content_hash == requests["b"].content_hash  # the premise
    assert requests["a"].content_hash != requests["c"].content_hash
    return manifest


def plan_json(manifest: Path, *args: str) -> dict[str, Any]:
    result = run_cli("plan", str(manifest), "--emulator", "--json", *args)
    assert result.code == 0, result
    data: dict[str, Any] = json.loads(result.out)
    return data


def outputs(manifest: Path) -> dict[str, str]:
    folder = manifest.parent / "build" / "videos-drafts"
    return {p.stem: sha256_file(p) for p in sorted(folder.glob("*.mp4"))}


def test_identical_requests_cost_one_render_and_both_outputs_are_written(twins: Path) -> None:
    plan = plan_json(twins)
    actions = {a["video"]: a for a in plan["actions"]}
    assert plan["summary"]["paid"] == 2  # a and c; b is a's render
    assert (actions["a"]["action"], actions["a"]["paid"]) == ("create", True)
    assert (actions["b"]["action"], actions["b"]["paid"]) == ("reuse", False)
    assert actions["b"]["reasons"] == ["same request as a: rendered once for both, no extra cost"]
    text = run_cli("plan", str(twins), "--emulator").out
    assert "= b  same request as a: rendered once for both, no extra cost" in text
    assert "2 to create, 0 to re-render, 0 to resume, 0 to fetch, 1 to reuse" in text

    result = workflow.apply(twins, ApplyOptions(emulator=True))
    assert result.ok and result.summary is not None
    project = open_course(twins, "emulator")
    made = creates(twins)
    assert len(made) == plan["summary"]["paid"] == 2  # one paid create per request
    assert sorted(made) == sorted(project.request(v).synthesis_id for v in ("a", "c"))
    # The summary's words are the plan's: 2 created, 1 reused, 2 paid creates.
    done = result.summary.done
    assert (done[ActionKind.CREATE], done[ActionKind.REUSE]) == (2, 1)
    assert result.summary.counts["jobs"] == 2

    # Both outputs in place, the same bytes, vouched for by the one render's record.
    files = outputs(twins)
    assert sorted(files) == ["a", "b", "c"] and files["a"] == files["b"] != files["c"]
    state = project.load_state()
    assert state.records["a"].output is not None and state.records["b"].output is not None
    assert state.records["b"].output.sha256 == files["b"]
    assert state.records["b"].output.path == "build/videos-drafts/b.mp4"
    assert state.records["a"].remote_id == state.records["b"].remote_id
    renders = list((project.workspace.state_dir / "renders").glob("*.json"))
    assert len(renders) == 2

    again = run_cli("plan", str(twins), "--emulator", "--detailed-exitcode")
    assert (again.code, again.out) == (0, "No changes. Every video is up to date.\n")
    assert len(creates(twins)) == 2


def test_the_apply_summary_says_reused_for_the_twin(twins: Path) -> None:
    result = run_cli("apply", str(twins), "--emulator", "--yes")
    assert result.code == 0, result
    rows = {
        cells[0]: cells[1]
        for line in result.err.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 2
    }
    assert (rows["created"], rows["reused"], rows["jobs created (paid creates)"]) == ("2", "1", "2")
    assert rows["re-rendered"] == rows["fetched"] == "0"
    assert "put build/videos-drafts/b.mp4 in place from the local store" in result.err
    assert len(creates(twins)) == 2


def test_a_selection_of_the_twin_alone_pays_for_it_and_the_other_reuses_it(twins: Path) -> None:
    result = workflow.apply(twins, ApplyOptions(emulator=True, only=("b",)))
    assert result.ok and result.summary is not None
    selected = {a.video_id: a.kind for a in result.plan.changes}
    assert selected == {"b": ActionKind.CREATE}  # its render is no longer a's to make
    assert creates(twins) == [open_course(twins, "emulator").request("b").synthesis_id]

    plan = plan_json(twins)
    kinds = {a["video"]: (a["action"], a["paid"]) for a in plan["actions"]}
    assert kinds["a"][1] is False and kinds["a"][0] in ("reuse", "download")
    assert plan["summary"]["paid"] == 1  # c only
    assert workflow.apply(twins, ApplyOptions(emulator=True)).ok
    assert len(creates(twins)) == 2
    files = outputs(twins)
    assert files["a"] == files["b"]


def test_a_twin_whose_render_failed_is_reported_and_nothing_is_paid_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulate(monkeypatch, "fail=demo-a-*:InvalidInput:bad avatar")
    manifest = course(tmp_path, TWINS)
    events: list[str] = []
    result = workflow.apply(
        manifest, ApplyOptions(emulator=True), on_event=lambda e: events.append(str(e))
    )
    assert result.summary is not None and not result.ok
    assert sorted(result.summary.failed) == ["a", "b"]
    assert len(creates(manifest)) == 2  # a (failed) and c: b was never submitted
    assert "b" not in outputs(manifest)
    assert any("not put in place: same request as a, whose render did not" in e for e in events)
    # The next plan lists one paid render for both again, never two.
    plan = plan_json(manifest)
    kinds = {a["video"]: (a["action"], a["paid"]) for a in plan["actions"]}
    assert kinds["a"] == ("rerender", True) and kinds["b"] == ("reuse", False)
