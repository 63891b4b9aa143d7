"""init's next steps and offline schema; the wording of prune and --only."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from .helpers import MANIFEST, course, record_all, run_cli


def test_init_writes_its_schema_and_prints_next_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("init", "new-course")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[:2] == ["Next steps:", "  cd new-course"]
    assert "  2. avatarflow validate course.yaml" in lines
    assert any(line.startswith("  3. avatarflow apply --emulator course.yaml") for line in lines)
    manifest = tmp_path / "new-course" / "course.yaml"
    first = manifest.read_text("utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=manifest.schema.json"
    schema_file = manifest.parent / "manifest.schema.json"
    assert schema_file.read_text("utf-8") == run_cli("schema").out  # offline, and current
    schema = json.loads(schema_file.read_text("utf-8"))
    assert not str(schema.get("$id", "")).startswith("http")  # no address that exists nowhere
    jsonschema.validate(yaml.safe_load(manifest.read_text("utf-8")), schema)
    assert run_cli("validate", str(manifest)).code == 0


def removed_c(tmp_path: Path) -> Path:
    manifest = course(tmp_path)
    record_all(manifest)
    manifest.write_text(MANIFEST.replace("  - id: c\n    text: Hello from video c.\n", ""))
    return manifest


def test_prune_without_yes_asks_for_its_own_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("prune", str(removed_c(tmp_path)))
    assert result.code == 1
    assert result.err == ("Error: prune needs confirmation: run it on a terminal or pass --yes\n")
    assert "apply" not in result.err


def test_only_suggests_videos_of_the_manifest_not_removed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("apply", str(removed_c(tmp_path)), "--yes", "--only", "bb")
    assert result.code == 1
    assert result.err == "Error: no video matches 'bb' (did you mean 'b'?); videos: a, b\n"
