"""The video store: content-addressed, verified in and out, kill-safe (local and Azurite)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatarflow import oslock
from avatarflow.atomicfile import TEMP_MARK
from avatarflow.errors import StorageError
from avatarflow.videostore import (
    BlobVideoStore,
    LocalVideoStore,
    StoredObject,
    VideoStores,
    remove_dead_temps,
)

from .azurite import Azurite
from .helpers import temp_files

pytest_plugins = ["tests.azurite"]

BIG = 2_500_000  # more than two copy chunks: a kill lands mid-copy


def video(
    tmp_path: Path, name: str = "v.mp4", size: int = 3000, seed: int = 1
) -> tuple[Path, StoredObject]:
    data = (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]
    path = tmp_path / name
    path.write_bytes(data)
    return path, StoredObject(hashlib.sha256(data).hexdigest(), size)


def visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_local_put_then_get_gives_the_same_bytes(tmp_path: Path) -> None:
    store = LocalVideoStore(tmp_path / "store")
    source, obj = video(tmp_path)
    assert store.put(source, obj) is True
    assert store.put(source, obj) is False  # already there: nothing copied
    assert store.has(obj)
    dest = tmp_path / "out" / "01.mp4"
    assert store.get(obj, dest) is True
    assert dest.read_bytes() == source.read_bytes()
    assert list(store.objects()) == [obj]


def test_local_store_defaults_to_the_user_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARFLOW_CACHE_DIR", str(tmp_path / "c"))
    assert LocalVideoStore().root == tmp_path / "c" / "videos"
    monkeypatch.delenv("AVATARFLOW_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert LocalVideoStore().root == tmp_path / "x" / "avatarflow" / "videos"


def test_a_source_that_is_not_the_named_object_is_refused(tmp_path: Path) -> None:
    store = LocalVideoStore(tmp_path / "store")
    source, obj = video(tmp_path)
    wrong = StoredObject("0" * 64, obj.size)
    with pytest.raises(StorageError, match="sha256 differs"):
        store.put(source, wrong)
    with pytest.raises(StorageError, match="bytes instead of"):
        store.put(source, StoredObject(obj.sha256, obj.size + 1))
    assert visible_files(tmp_path / "store") == []


def test_a_corrupt_local_object_is_never_handed_out_and_is_dropped(tmp_path: Path) -> None:
    store = LocalVideoStore(tmp_path / "store")
    source, obj = video(tmp_path)
    store.put(source, obj)
    stored = store.path(obj)
    stored.write_bytes(b"x" * obj.size)  # bit rot with the same length
    dest = tmp_path / "out.mp4"
    assert store.get(obj, dest) is False
    assert not dest.exists()
    assert not stored.exists()
    assert temp_files(tmp_path) == []
    assert store.put(source, obj) is True  # the next verified output replaces it


def test_a_get_never_leaves_half_a_file_in_place_of_the_old_one(tmp_path: Path) -> None:
    store = LocalVideoStore(tmp_path / "store")
    source, obj = video(tmp_path)
    store.put(source, obj)
    store.path(obj).write_bytes(source.read_bytes()[:-1] + b"!")
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"old video")
    assert store.get(obj, dest) is False
    assert dest.read_bytes() == b"old video"


KILL_SCRIPT = """
import sys
from pathlib import Path
from avatarflow.videostore import LocalVideoStore, StoredObject
store = LocalVideoStore(Path(sys.argv[1]))
obj = StoredObject(sys.argv[3], int(sys.argv[4]))
if sys.argv[5] == "put":
    store.put(Path(sys.argv[2]), obj)
else:
    store.get(obj, Path(sys.argv[2]))
"""


def _killed(point: str, *args: str) -> None:
    env = {**os.environ, "AVATARFLOW_KILL_AT": f"{point}:2"}
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *args], env=env, check=False)
    assert done.returncode == -9


def test_sigkill_during_a_local_put_leaves_no_object_and_its_temp_is_cleaned(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    source, obj = video(tmp_path, size=BIG)
    _killed("mid-store-put", str(root), str(source), obj.sha256, str(obj.size), "put")
    store = LocalVideoStore(root)
    assert not store.has(obj)
    assert list(store.objects()) == []
    temps = temp_files(root)
    assert len(temps) == 1  # the dead writer's, invisible as an object
    os.utime(temps[0], (1, 1))  # older than the grace period
    assert store.put(source, obj) is True
    assert temp_files(root) == []
    assert store.path(obj).read_bytes() == source.read_bytes()


def test_a_temp_file_whose_writer_lives_is_kept(tmp_path: Path) -> None:
    tmp = tmp_path / f".x{TEMP_MARK}1"
    pattern = f".*{TEMP_MARK}*"
    with open(tmp, "wb") as handle:
        assert oslock.try_lock(handle.fileno())
        os.utime(tmp, (1, 1))
        assert remove_dead_temps(tmp_path, pattern) == 0
    assert remove_dead_temps(tmp_path, pattern) == 1


def test_sigkill_during_a_local_get_leaves_the_old_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    source, obj = video(tmp_path, size=BIG)
    LocalVideoStore(root).put(source, obj)
    dest = tmp_path / "out" / "v.mp4"
    dest.parent.mkdir()
    dest.write_bytes(b"previous branch's video")
    _killed("mid-pull", str(root), str(dest), obj.sha256, str(obj.size), "get")
    assert dest.read_bytes() == b"previous branch's video"
    assert LocalVideoStore(root).get(obj, dest)
    assert dest.read_bytes() == source.read_bytes()


# -- the team store on Azurite --------------------------------------------------------
@pytest.fixture
def team(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> BlobVideoStore:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    container = azurite.new_container("videos")
    return BlobVideoStore(f"{azurite.blob_url}/{container}")


def test_team_store_round_trip_and_listing(team: BlobVideoStore, tmp_path: Path) -> None:
    source, obj = video(tmp_path, size=BIG)
    assert team.put(source, obj) is True
    fresh = BlobVideoStore(team.container_url)
    assert fresh.has(obj)
    assert fresh.put(source, obj) is False
    dest = tmp_path / "b" / "v.mp4"
    assert fresh.get(obj, dest) is True
    assert dest.read_bytes() == source.read_bytes()
    blob = fresh.container.get_blob_client("sha256/" + obj.sha256).get_blob_properties()
    assert blob.metadata == {"sha256": obj.sha256}


def test_team_store_refuses_a_source_that_is_not_the_object(
    team: BlobVideoStore, tmp_path: Path
) -> None:
    source, obj = video(tmp_path)
    with pytest.raises(StorageError, match="changed while it was uploaded"):
        team.put(source, StoredObject("1" * 64, obj.size))
    assert BlobVideoStore(team.container_url).listing() == {}


def test_a_corrupt_team_object_is_not_handed_out(team: BlobVideoStore, tmp_path: Path) -> None:
    _, obj = video(tmp_path)
    team.container.upload_blob("sha256/" + obj.sha256, b"y" * obj.size)
    dest = tmp_path / "out" / "v.mp4"
    assert BlobVideoStore(team.container_url).get(obj, dest) is False
    assert not dest.exists()


UPLOAD_KILL = """
import sys
from pathlib import Path
from avatarflow.videostore import BlobVideoStore, StoredObject
BlobVideoStore(sys.argv[1]).put(Path(sys.argv[2]), StoredObject(sys.argv[3], int(sys.argv[4])))
"""


def test_sigkill_during_an_upload_leaves_no_object(team: BlobVideoStore, tmp_path: Path) -> None:
    source, obj = video(tmp_path, size=BIG)
    env = {**os.environ, "AVATARFLOW_KILL_AT": "mid-store-upload"}
    args = [team.container_url, str(source), obj.sha256, str(obj.size)]
    done = subprocess.run([sys.executable, "-c", UPLOAD_KILL, *args], env=env, check=False)
    assert done.returncode == -9
    assert BlobVideoStore(team.container_url).listing() == {}
    assert BlobVideoStore(team.container_url).put(source, obj) is True


def test_stores_fetch_from_the_team_and_keep_a_local_copy(
    team: BlobVideoStore, tmp_path: Path
) -> None:
    source, obj = video(tmp_path)
    team.put(source, obj)
    stores = VideoStores(LocalVideoStore(tmp_path / "local"), BlobVideoStore(team.container_url))
    assert stores.where(obj) == "team"
    assert stores.fetch(obj, tmp_path / "o" / "v.mp4") == "team"
    assert stores.where(obj) == "local"
    missing = StoredObject("2" * 64, 10)
    assert stores.where(missing) is None
    assert stores.fetch(missing, tmp_path / "o" / "w.mp4") is None
    other, obj2 = video(tmp_path, "w.mp4", seed=2)
    assert stores.put(other, obj2) == ["local", "team"]
    assert stores.put(other, obj2) == []


def test_pull_copies_several_videos_at_once_and_records_them_in_the_plan_s_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first two copies out of the store meet at a barrier: a pull that copied one
    video at a time would leave the first one waiting there until it broke."""
    import threading

    from avatarflow.pull import pull
    from avatarflow.videostore import LocalVideoStore

    from .helpers import course, record_all

    manifest = course(tmp_path)
    record_all(manifest)
    assert pull(manifest).stored == ["a", "b", "c"]  # every output into the local store
    for name in ("a", "b", "c"):
        (tmp_path / "build" / "videos" / f"{name}.mp4").unlink()
    barrier, calls, real_get = threading.Barrier(2, timeout=30), [], LocalVideoStore.get

    def get(store: LocalVideoStore, obj: StoredObject, dest: Path) -> bool:
        calls.append(dest.name)
        if len(calls) <= 2:
            barrier.wait()  # BrokenBarrierError (the pull fails) unless two run at once
        return real_get(store, obj, dest)

    monkeypatch.setattr(LocalVideoStore, "get", get)
    events: list[tuple[str, str | None]] = []
    result = pull(manifest, on_event=lambda kind, video, _: events.append((kind, video)))
    assert result.fetched == {"a": "local", "b": "local", "c": "local"}
    assert events == [("fetched", "a"), ("fetched", "b"), ("fetched", "c")]
    assert sorted(calls) == ["a.mp4", "b.mp4", "c.mp4"]
    for name in ("a", "b", "c"):
        assert (tmp_path / "build" / "videos" / f"{name}.mp4").exists()
    assert pull(manifest).up_to_date == ["a", "b", "c"]  # and the records say so
