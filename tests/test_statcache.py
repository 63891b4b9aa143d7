"""The stat cache of output hashes: reused while a file's stat is unchanged, never trusted
over a changed file, disposable, and never committed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avatarflow.machine import cache_dir
from avatarflow.planner import ActionKind
from avatarflow.statcache import OpenFolder, sha256_file, stat_key

from .helpers import course, open_course, record_all, run_cli

REPO = Path(__file__).resolve().parent.parent
HOUR_NS = 3600 * 10**9


def _age_outputs(manifest: Path) -> list[Path]:
    """Date every output an hour back: older than the racy window, as outputs usually are."""
    outputs = sorted((manifest.parent / "build" / "videos").glob("*.mp4"))
    for path in outputs:
        old = path.stat().st_mtime_ns - HOUR_NS
        os.utime(path, ns=(old, old))
    return outputs


def _cache_file(manifest: Path) -> Path:
    return manifest.parent / ".avatarflow" / "demo" / ".cache" / "outputs.json"


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    manifest = course(tmp_path)
    record_all(manifest)
    _age_outputs(manifest)
    return manifest


def _plan_bytes_hashed(manifest: Path) -> tuple[int, list[ActionKind]]:
    project = open_course(manifest)
    plan = project.plan()
    return project.workspace.hashes.bytes_hashed, [a.kind for a in plan.actions]


def test_a_second_plan_reads_no_output_bytes(rendered: Path) -> None:
    total = sum(p.stat().st_size for p in _age_outputs(rendered))
    first, kinds = _plan_bytes_hashed(rendered)
    assert first == total and set(kinds) == {ActionKind.NOOP}
    second, kinds = _plan_bytes_hashed(rendered)
    assert second == 0 and set(kinds) == {ActionKind.NOOP}


def test_a_tampered_output_of_the_same_size_is_downloaded_again(rendered: Path) -> None:
    _plan_bytes_hashed(rendered)
    path = rendered.parent / "build" / "videos" / "b.mp4"
    old = path.stat()
    path.write_bytes(b"x" * old.st_size)
    # Even with its old mtime put back, the inode's ctime gives the write away.
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    result = run_cli("plan", str(rendered), "--json")
    actions = {a["video"]: a["action"] for a in json.loads(result.out)["actions"]}
    assert actions["b"] == ActionKind.DOWNLOAD.value, actions
    assert actions["a"] == actions["c"] == ActionKind.NOOP.value


def test_a_file_written_just_before_the_cache_is_hashed_again(tmp_path: Path) -> None:
    manifest = course(tmp_path)
    record_all(manifest)  # outputs written now: within the racy window of the next save
    _plan_bytes_hashed(manifest)
    again, _ = _plan_bytes_hashed(manifest)
    assert again > 0


def test_verify_hashes_everything_and_catches_what_the_stat_hides(rendered: Path) -> None:
    _plan_bytes_hashed(rendered)
    path = rendered.parent / "build" / "videos" / "a.mp4"
    path.write_bytes(b"y" * path.stat().st_size)
    old = path.stat().st_mtime_ns - HOUR_NS
    os.utime(path, ns=(old, old))
    # Forge a cache entry that vouches for the new stat with the old hash (bit rot that
    # leaves the stat alone looks the same): only --verify reads the bytes.
    cache = _cache_file(rendered)
    data = json.loads(cache.read_text())
    st = path.stat()
    data["entries"]["build/videos/a.mp4"][:4] = [
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        st.st_ctime_ns,
    ]
    cache.write_text(json.dumps(data))
    assert "No changes." in run_cli("plan", str(rendered)).out
    rows = json.loads(run_cli("status", str(rendered), "--json").out)
    assert {r["video"]: r["output"] for r in rows}["a"] == "ok"
    rows = json.loads(run_cli("status", str(rendered), "--json", "--verify").out)
    assert {r["video"]: r["output"] for r in rows} == {"a": "modified", "b": "ok", "c": "ok"}
    verified = run_cli("plan", str(rendered), "--verify", "--json")
    actions = {a["video"]: a["action"] for a in json.loads(verified.out)["actions"]}
    assert actions["a"] == ActionKind.DOWNLOAD.value


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"version": 1, "entries": 3}', b"\xff"])
def test_a_corrupt_cache_is_ignored_and_rebuilt(rendered: Path, garbage: bytes) -> None:
    _plan_bytes_hashed(rendered)
    _cache_file(rendered).write_bytes(garbage)
    hashed, kinds = _plan_bytes_hashed(rendered)
    assert hashed > 0 and set(kinds) == {ActionKind.NOOP}
    assert _plan_bytes_hashed(rendered)[0] == 0


def test_a_missing_output_is_missing_whatever_the_cache_says(rendered: Path) -> None:
    _plan_bytes_hashed(rendered)
    (rendered.parent / "build" / "videos" / "c.mp4").unlink()
    project = open_course(rendered)
    kinds = {a.video_id: a.kind for a in project.plan().actions}
    assert kinds["c"] is ActionKind.DOWNLOAD


def test_the_per_machine_folder_ignores_itself_where_git_knows_nothing_of_avatarflow(
    tmp_path: Path,
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    state_dir = tmp_path / ".avatarflow" / "demo"
    cache = cache_dir(state_dir) / "outputs.json"
    record = state_dir / "renders" / f"{'a' * 64}.json"
    for path in (cache, record):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    ignored = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", str(cache), str(record)],
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [str(cache)]
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    listed = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files"], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == [str(record.relative_to(tmp_path))]


def test_apply_records_each_download_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_EMULATOR_CONFIG", json.dumps({"width": 160, "height": 90}))
    monkeypatch.delenv("AVATARFLOW_EMULATOR_FAULTS", raising=False)
    manifest = course(tmp_path)
    assert run_cli("apply", str(manifest), "--emulator", "--yes").code == 0
    project = open_course(manifest, "emulator")
    state = project.load_state()
    cache = tmp_path / ".avatarflow" / "demo" / "emulator" / ".cache" / "outputs.json"
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == len(state.records) == 3
    for record in state.records.values():
        assert record.output is not None
        path = tmp_path / record.output.path
        st = path.stat()
        assert entries[record.output.path] == [
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_ctime_ns,
            sha256_file(path),
        ]
        assert sha256_file(path) == record.output.sha256


def test_a_symlink_in_place_of_an_output_is_never_taken_for_it(rendered: Path) -> None:
    _plan_bytes_hashed(rendered)
    path = rendered.parent / "build" / "videos" / "a.mp4"
    copy = rendered.parent / "copy.mp4"
    copy.write_bytes(path.read_bytes())  # same bytes: only the link itself is wrong
    path.unlink()
    path.symlink_to(copy)
    rows = json.loads(run_cli("status", str(rendered), "--json").out)
    assert {r["video"]: r["output"] for r in rows} == {"a": "modified", "b": "ok", "c": "ok"}


@pytest.mark.parametrize("opened", [True, False], ids=["folder-opened", "paths-joined"])
def test_the_stats_of_many_files_are_each_file_s_own(tmp_path: Path, opened: bool) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name * 3, "utf-8")
    (tmp_path / "link").symlink_to("a")
    names = ["c", "a", "link", "b"]
    with OpenFolder(str(tmp_path)) as folder:
        if not opened:
            folder.close()  # as where dir_fd is not supported: each name joined
        assert [stat_key(st) for st in folder.stats(names)] == [
            stat_key(os.lstat(tmp_path / name)) for name in names
        ]
        followed = folder.stats(["link"], follow=True)[0]
        assert stat_key(followed) == stat_key(os.stat(tmp_path / "a"))
        with pytest.raises(FileNotFoundError):
            folder.stats(["a", "missing"])
        found = folder.stats_or_none(["a", "missing", "b", "a/inside"])
        assert [None if st is None else stat_key(st) for st in found] == [
            stat_key(os.lstat(tmp_path / "a")),
            None,
            stat_key(os.lstat(tmp_path / "b")),
            None,
        ]
