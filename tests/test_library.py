"""The library: the README's script renders the example course, the functions report
their progress, and the package's names load only when used."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import avatarflow
from avatarflow.emulator.requestlog import read_request_log
from avatarflow.events import Event, PlanReady, Progress, Starting

from .helpers import copy_example, course, record_all

REPO = Path(__file__).resolve().parent.parent
FAST = json.dumps({"width": 160, "height": 90})


def readme_script() -> str:
    """The Python block of the README's "From Python" section, exactly as printed."""
    text = (REPO / "README.md").read_text("utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section shows one script"
    return str(blocks[0])


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVATARFLOW_EMULATOR_CONFIG": FAST}
    env.pop("AVATARFLOW_EMULATOR_FAULTS", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_readme_script_renders_the_example_course(tmp_path: Path) -> None:
    script = readme_script()
    assert len(script.strip().splitlines()) <= 12
    copy_example(tmp_path)
    done = run_python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    videos = sorted(p.name for p in (tmp_path / "manifests/build/videos-drafts").glob("*.mp4"))
    assert len(videos) == 6 and all(
        (tmp_path / "manifests/build/videos-drafts" / v).stat().st_size > 1000 for v in videos
    )
    service = tmp_path / "manifests/.avatarflow/git-course/emulator/service"
    assert sum(r.kind == "create" for r in read_request_log(service)) == 6
    lines = done.stdout.splitlines()
    assert lines[0].startswith("- plan: 6 change(s)")  # the progress callback saw the plan
    saved = {line.split()[0] for line in lines if " saved build/videos-drafts/" in line}
    assert saved == {v.removesuffix(".mp4") for v in videos}  # … and every download
    assert lines[-1] == "{<ActionKind.CREATE: 'create'>: 6} ok"
    again = run_python(script, tmp_path)  # nothing left to do: no request at all
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "{} ok"
    assert sum(r.kind == "create" for r in read_request_log(service)) == 6


def test_apply_reports_the_plan_then_each_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", FAST)
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)
    manifest = course(tmp_path)
    seen: list[Progress] = []
    asked: list[int] = []

    def confirm(plan: avatarflow.Plan) -> bool:
        asked.append(len(plan.changes))
        return False

    options = avatarflow.ApplyOptions(emulator=True)
    refused = avatarflow.apply(manifest, options, on_event=seen.append, confirm=confirm)
    assert asked == [3] and refused.summary is None
    assert [type(e) for e in seen] == [PlanReady]  # refused: nothing was started
    assert not (tmp_path / "build/videos-drafts").exists()

    seen.clear()
    result = avatarflow.apply(manifest, options, on_event=seen.append)
    assert result.ok and result.summary is not None
    assert result.summary.counts["downloaded"] == 3
    assert [type(e) for e in seen[:2]] == [PlanReady, Starting]
    steps = [e for e in seen if isinstance(e, Event)]
    assert {e.video_id for e in steps if e.kind == "downloaded"} == {"a", "b", "c"}
    rows = {row.video: row for row in avatarflow.status(manifest, avatarflow.StatusOptions(True))}
    assert {v: (r.status, r.output, r.current) for v, r in rows.items()} == {
        v: ("downloaded", "ok", True) for v in "abc"
    }


def test_prune_forgets_removed_videos(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)
    manifest.write_text(
        manifest.read_text().replace("  - id: c\n    text: Hello from video c.\n", "")
    )
    offered: list[list[str]] = []

    def confirm(pruning: avatarflow.Pruning) -> bool:
        offered.append([r.video_id for r in pruning.videos])
        assert pruning.renders == []  # each render ended moments ago: kept for a branch
        return True

    options = avatarflow.PruneOptions(delete_files=True)
    assert avatarflow.prune(manifest, options, confirm=confirm) == ["c"]
    assert offered == [["c"]]
    assert not (tmp_path / "build/videos/c.mp4").exists()
    assert (tmp_path / "build/videos/a.mp4").exists()
    assert avatarflow.prune(manifest, options) == []
    assert not avatarflow.plan(manifest).plan.has_changes


def test_a_recalled_plan_loads_no_parser(tmp_path: Path) -> None:
    """The library's plan answers from the memo too, without pydantic, Jinja or YAML."""
    manifest = course(tmp_path)
    record_all(manifest)
    # Files written a moment ago are "racy" and never match a memo: tests lift the window.
    start = "import sys, avatarflow, avatarflow.planmemo as m; m.RACY_NS = 0\n"
    full = start + f"r = avatarflow.plan({str(manifest)!r}); assert not r.recalled, r"
    assert run_python(full, tmp_path).returncode == 0
    recall = (
        start
        + f"""
again = avatarflow.plan({str(manifest)!r})
loaded = sorted(m for m in ("pydantic", "jinja2", "yaml") if m in sys.modules)
print(again.recalled, again.plan.has_changes, len(again.plan.actions), loaded)
"""
    )
    done = run_python(recall, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "3", "[]"]


def test_every_exported_name_loads_on_first_use() -> None:
    names = set(avatarflow.__all__) - {"__version__"}
    # Restated on purpose (it repeats __all__): a change to the public names shows here.
    assert names == {
        "Action",
        "ActionKind",
        "ApplyOptions",
        "ApplyResult",
        "AvatarflowError",
        "Event",
        "Export",
        "ExportOptions",
        "LockWait",
        "Manifest",
        "Plan",
        "PlanOptions",
        "PlanReady",
        "PlanResult",
        "Progress",
        "PruneOptions",
        "Pruning",
        "PullResult",
        "ReviewOptions",
        "ReviewPage",
        "Starting",
        "StatusOptions",
        "UnusedRender",
        "UserError",
        "VideoStatus",
        "apply",
        "export",
        "load_manifest",
        "plan",
        "prune",
        "pull",
        "review",
        "status",
        "validate",
    }
    for name in names:
        assert getattr(avatarflow, name) is not None, name
    assert callable(avatarflow.review) and callable(avatarflow.export)  # not their modules
    with pytest.raises(AttributeError, match="no attribute 'Project'"):
        avatarflow.Project  # noqa: B018  # the hub is gone


def test_the_architecture_lists_every_module() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text("utf-8")
    modules_table = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w/]+\.py)`", modules_table, re.M))
    package = REPO / "avatarflow"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert sorted(modules - listed) == []
    assert sorted(listed - modules) == []  # nor a module that is gone
