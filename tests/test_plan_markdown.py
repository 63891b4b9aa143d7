"""plan --format markdown parsed by a real Markdown parser, and the CI recipe's commands
run in order against the emulator."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from .course_fixtures import REPO, VIDEOS, apply_drafts, copy_example
from .helpers import run_cli

ADDED = "Delete merged branches | keep *things* tidy."


pytestmark = pytest.mark.usefixtures("fast_emulator")


def tables(markdown: str) -> list[list[list[dict[str, Any]]]]:
    """Every table as rows of cells; a cell is its text plus the inline marks inside it."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(markdown)
    found: list[list[list[dict[str, Any]]]] = []
    for token in tokens:
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            found[-1].append([])
        elif token.type == "inline" and found and found[-1]:
            children = token.children or []
            cell = {
                "text": "".join(c.content for c in children if c.type in ("text", "code_inline")),
                "strong": _marked(children, "strong"),
                "struck": _marked(children, "s"),
            }
            found[-1][-1].append(cell)
    return found


def _marked(children: list[Any], tag: str) -> list[str]:
    runs: list[str] = []
    inside = False
    for child in children:
        if child.type == f"{tag}_open":
            inside, runs = True, [*runs, ""]
        elif child.type == f"{tag}_close":
            inside = False
        elif inside:
            runs[-1] += child.content
    return runs


def test_markdown_plan_has_the_summary_the_changes_and_the_word_diff(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    apply_drafts(manifest)
    script = manifest.parent / "scripts" / "03-branches.txt"
    script.write_text(script.read_text().replace("Create one for", f"{ADDED} Create one for"))
    (manifest.parent / "scripts" / "02-commits.txt").write_text("Commits, rewritten.\n")
    result = run_cli("plan", str(manifest), "--emulator", "--format", "markdown")
    assert result.code == 0, result.err
    summary, changes = tables(result.out)

    header, counts = summary
    assert [c["text"] for c in header][:2] == ["to create", "to re-render"]
    assert [c["text"] for c in counts][:2] == ["0", "2"]
    assert [c["text"] for c in header][-2:] == ["characters", "minutes"]

    assert [c["text"] for c in changes[0]] == ["", "video", "action", "reason", "narration"]
    rows = {row[1]["text"]: row for row in changes[1:]}
    assert list(rows) == ["02-commits", "03-branches"]
    branches = rows["03-branches"]
    assert branches[0]["text"] == "~" and branches[2]["text"] == "re-render"
    assert branches[3]["text"] == "script changed"
    assert branches[4]["strong"] == [ADDED]  # the escaped | and * came through as text
    assert branches[4]["struck"] == []
    commits = rows["02-commits"]
    assert commits[4]["strong"] == ["Commits, rewritten."]
    assert commits[4]["struck"][0].startswith("A commit is a snapshot")
    assert commits[4]["text"].startswith("Commits & history <basics>.")  # kept, escaped
    assert "**Estimate:** 2 paid render(s)" in result.out


def test_markdown_plan_without_changes(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    apply_drafts(manifest, "--only", "01-welcome")
    result = run_cli(
        "plan", str(manifest), "--emulator", "--format", "markdown", "--only-not-an-option"
    )
    assert result.code == 1  # an unknown flag is refused, not ignored
    apply_drafts(manifest)
    result = run_cli("plan", str(manifest), "--emulator", "--format", "markdown")
    assert result.code == 0 and tables(result.out) == []
    assert "**No changes.** Every video is up to date." in result.out


def workflow_commands() -> list[tuple[str, str]]:
    """(job, command) of every avatarflow line of the recipe's ``run:`` steps, in order."""
    workflow = yaml.safe_load((REPO / "docs" / "ci" / "github-actions.yml").read_text())
    commands: list[tuple[str, str]] = []
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                if line.strip().startswith("avatarflow "):
                    commands.append((job_name, line.strip()))
    return commands


def test_the_ci_recipe_runs_in_order_against_the_emulator(tmp_path: Path) -> None:
    commands = workflow_commands()
    assert [job for job, _ in commands] == ["plan"] * 2 + ["apply"] * 4
    env = {
        **os.environ,
        "MANIFEST": "manifests/git-course.yaml",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_COLOR": "1",
    }
    copy_example(tmp_path)
    for _, command in commands:
        # The draft target stands in for Azure: the same commands, the embedded emulator.
        words = command.split(" ", 2)
        target = [] if words[1] == "validate" else ["--emulator"]  # validate sends nothing
        emulated = " ".join([*words[:2], *target, *words[2:]])
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", emulated],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    plan = (tmp_path / "plan.md").read_text()
    _, changes = tables(plan)
    assert [row[1]["text"] for row in changes[1:]] == VIDEOS
    assert (tmp_path / "review" / "index.html").is_file()
    assert (tmp_path / "review" / "course.mp4").stat().st_size > 10_000
    assert shlex.split(commands[-1][1])[-1] == "review/course.mp4"
