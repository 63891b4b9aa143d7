"""The one atomic-write helper: old or new content, never half; one temp-name rule that
the sweep and the scaffolded ``.gitignore`` know."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from avatarflow import atomicfile
from avatarflow.backends.local import LocalStore
from avatarflow.machine import cache_dir
from avatarflow.scaffold import scaffold

from .helpers import ignored_by_git, temp_files


class Boom(Exception):
    pass


def test_a_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "record.json"
    atomicfile.write_bytes(target, b"old")
    atomicfile.write_bytes(target, b"new", durable=False)
    assert target.read_bytes() == b"new"
    assert temp_files(tmp_path) == []


def test_a_write_cut_short_keeps_the_old_file_and_removes_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    atomicfile.write_bytes(target, b"old")
    seen: dict[str, bytes] = {}

    def fail() -> None:
        seen.update((p.name, p.read_bytes()) for p in temp_files(tmp_path))
        raise Boom

    with pytest.raises(Boom):
        atomicfile.write_bytes(target, b"new", before_commit=fail)
    assert list(seen.values()) == [b"new"]  # the new content was in the temp file
    assert next(iter(seen)).startswith(".record.json.avatarflow-tmp-")
    assert target.read_bytes() == b"old"
    assert temp_files(tmp_path) == []


def test_private_files_are_for_the_user_only(tmp_path: Path) -> None:
    atomicfile.write_bytes(tmp_path / "secret", b"x", private=True)
    atomicfile.write_bytes(tmp_path / "video", b"x")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "video").stat().st_mode) & 0o044 == 0o044


def test_the_sweep_removes_temp_files_only(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / ".hidden.json").write_text("{}")
    torn = atomicfile.new_temp(tmp_path / "a.json")
    assert atomicfile.remove_stale(tmp_path) == 1
    assert not torn.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.json", "a.json"]


def test_the_local_store_sweeps_the_state_and_its_stat_cache(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = LocalStore(state, ".avatarflow/demo")
    cache = cache_dir(state)
    torn = [
        atomicfile.new_temp(state / "state.json"),
        atomicfile.new_temp(state / "renders" / f"{'a' * 64}.json"),
        atomicfile.new_temp(cache / "outputs.json"),
        # A state write keeps its temp file in the per-machine folder, out of git's sight.
        atomicfile.new_temp(state / "state.json", temp_dir=cache),
    ]
    assert store.remove_stale_temp_files() == 4
    assert not any(p.exists() for p in torn)


def test_git_ignores_temp_files_in_a_scaffolded_course(tmp_path: Path) -> None:
    scaffold(tmp_path, "demo")
    torn = atomicfile.new_temp(tmp_path / ".avatarflow" / "demo" / "videos" / "a.json")
    record = tmp_path / ".avatarflow" / "demo" / "videos" / "a.json"
    record.write_text("{}")
    assert ignored_by_git(tmp_path, torn, record) == [str(torn)]
