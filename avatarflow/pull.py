"""``avatarflow.pull``: a checkout's videos from the video stores, with no Speech request.

For every video of the manifest whose render delivered a video, the output is put in
place from the local store, else the team store (verified by size and sha256 on the way
out). Outputs this checkout wrote for videos no longer in the manifest are removed
(only while they are still the bytes avatarflow wrote). Every verified output on disk
that a store lacks is put into it, so an upload cut short is finished here. What no
store holds is reported with what rendering it would cost; nothing is rendered, and no
committed file is written.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .display import symbol
from .errors import StorageError
from .lock import command_line
from .planner import ActionKind
from .state import OutputFile, State, StateRecord
from .videostore import StoredObject, VideoStores
from .workspace import TargetName, Workspace

if TYPE_CHECKING:
    from .payload import VideoRequest
    from .planner import Action, Plan

SUBTITLE_SUFFIX = ".vtt"  # external subtitles beside their video, as the runner saves them
FETCHERS = 4  # videos copied out of the stores at once

Report = Callable[[str, str | None, str], None]  # (kind, video id, message)


@dataclass
class PullResult:
    fetched: dict[str, str] = field(default_factory=dict)  # video id -> store name
    up_to_date: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)  # video ids whose output was uploaded
    missing: list[str] = field(default_factory=list)  # needs a render (paid) or a download
    paid_renders: int = 0  # of the missing ones, how many only a new render brings back

    @property
    def complete(self) -> bool:
        return not self.missing


def pull(
    manifest: Path | str,
    target: TargetName = "azure",
    *,
    lock_timeout: float = 0.0,
    on_event: Report | None = None,
) -> PullResult:
    """Materialise the checkout's videos from the stores (see the module docstring)."""
    from .build import build_requests
    from .stores import load_state, migrate, open_store, video_stores
    from .workflow import full_plan, open_manifest

    loaded, workspace = open_manifest(manifest, target)
    built = build_requests(loaded)
    workspace.check_output_paths(loaded, built.requests)
    report: Report = on_event or (lambda kind, video, message: None)
    stores = video_stores(loaded, workspace)
    with open_store(loaded, workspace).lock(command_line(), lock_timeout):
        state, read = load_state(open_store(loaded, workspace), workspace, built)
        migrate(state)
        state.remove_stale_temp_files()
        workspace.remove_partial_downloads()
        plan, _ = full_plan(loaded, workspace, built, state, read)
        state.batch()
        try:
            result = _pull(workspace, stores, state, plan, report)
        finally:
            state.flush()
        sync_stores(workspace, stores, state, report, result)
        workspace.save_hashes()
        state.flush()
    return result


def _pull(
    workspace: Workspace, stores: VideoStores, state: State, plan: Plan, report: Report
) -> PullResult:
    result = PullResult()
    fetches: list[Action] = []  # each with its request and a record that delivered a video
    for action in plan.actions:
        record = action.record
        if action.kind is ActionKind.NOOP:
            result.up_to_date.append(action.video_id)
        elif action.kind is ActionKind.FORGET:
            output = record.output if record is not None else None
            if output is not None and remove_written(workspace, output):
                result.removed.append(action.video_id)
                report("removed", action.video_id, f"removed {output.path}")
            state.forget(action.video_id)
        elif (
            action.kind in (ActionKind.DOWNLOAD, ActionKind.REUSE)
            and action.request is not None
            and record is not None
            and record.output is not None
        ):
            fetches.append(action)
        else:
            result.missing.append(action.video_id)
            result.paid_renders += action.paid
            why = "; ".join(action.reasons)
            cost = "a paid render" if action.paid else "apply"
            report("missing", action.video_id, f"{symbol(action.kind)} {why} (needs {cost})")
    # The copies last, after every removal (none can then take a file just put in place),
    # a few at once: a team store's downloads wait on the network, a local copy on its
    # fsync. The records are written here, one at a time, in the plan's order.
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        placed_all = pool.map(lambda action: _place(workspace, stores, action), fetches)
        try:
            for action, placed in zip(fetches, placed_all, strict=True):
                _placed(workspace, state, result, report, action, placed)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # a failure or Ctrl-C starts no other copy
            raise
    return result


def _place(
    workspace: Workspace, stores: VideoStores, action: Action
) -> tuple[str, StateRecord] | None:
    assert action.record is not None and action.request is not None
    return place_from_store(workspace, stores, action.record, action.request)


def _placed(
    workspace: Workspace,
    state: State,
    result: PullResult,
    report: Report,
    action: Action,
    placed: tuple[str, StateRecord] | None,
) -> None:
    """What one copy out of the stores leaves: its record, or the video as missing."""
    record, request = action.record, action.request
    assert record is not None and record.output is not None and request is not None
    if placed is None:
        result.missing.append(action.video_id)
        report("missing", action.video_id, "in no video store: apply downloads it")
        return
    source, placed_record = placed
    state.put(placed_record)
    state.note_stored(record.output.sha256, ["local", source])
    result.fetched[action.video_id] = source
    shown = workspace.display(workspace.output_path(request))
    report("fetched", action.video_id, f"put {shown} in place from the {source} store")


def fetch_video(stores: VideoStores, record: StateRecord, target: Path) -> str | None:
    """Put the video of ``record`` at ``target`` from the stores, with its external
    subtitles beside it when it has some; the store it came from, or None."""
    assert record.output is not None
    obj = StoredObject(record.output.sha256, record.output.size)
    subtitles = record.subtitles
    if subtitles is not None:
        sidecar = StoredObject(subtitles.sha256, subtitles.size)
        if stores.where(sidecar) is None or stores.fetch(sidecar, _sidecar(target)) is None:
            return None
    return stores.fetch(obj, target)


def _sidecar(video: Path) -> Path:
    return video.with_suffix(SUBTITLE_SUFFIX)


def place_from_store(
    workspace: Workspace, stores: VideoStores, record: StateRecord, request: VideoRequest
) -> tuple[str, StateRecord] | None:
    """Put the recorded video of ``request`` at its output path from the stores: the
    store it came from and the record that says so, or None when no store has it. The
    store checked the bytes against their sha256 while copying, so they are not hashed
    again."""
    assert record.output is not None
    target = workspace.output_path(request)
    source = fetch_video(stores, record, target)
    if source is None:
        return None
    shown = workspace.display(target)
    workspace.hashes.record(shown, target, record.output.sha256)
    output = OutputFile(path=shown, size=record.output.size, sha256=record.output.sha256)
    return source, record.model_copy(update={"status": "downloaded", "output": output})


def remove_written(workspace: Workspace, output: OutputFile) -> bool:
    """Remove an output avatarflow wrote, if it is still that file (same sha256); anything
    else there is the user's. Whether it was removed."""
    path = workspace.root / output.path
    if path.is_symlink() or not path.is_file():
        return False
    if workspace.hashes.sha256(output.path, path, verify=True) != output.sha256:
        return False  # changed since avatarflow wrote it: the user's now
    path.unlink()
    return True


def sync_stores(
    workspace: Workspace,
    stores: VideoStores,
    state: State,
    report: Report,
    result: PullResult | None = None,
) -> None:
    """Put every current, verified output, and the external subtitles beside it (a
    teammate's pull needs both), that a store is not known to hold into it."""
    names = tuple(store.name for store in stores.all)
    facts = getattr(state.store, "facts", None)
    if facts is None:
        return
    check = workspace.output_checker()
    for video_id, record in state.records.items():
        files = [f for f in (record.output, record.subtitles) if f is not None]
        unstored = [f for f in files if not facts.is_stored(f.sha256, names)]
        if record.output is None or not unstored or check(record) != "ok":
            continue
        for file in unstored:
            try:
                added = stores.put(workspace.root / file.path, StoredObject(file.sha256, file.size))
            except StorageError as exc:
                report("info", video_id, f"not stored: {exc}")
                continue
            facts.mark_stored(file.sha256, names)
            if added:
                report("stored", video_id, f"stored {file.path} in the {' and '.join(added)} store")
                if result is not None and video_id not in result.stored:
                    result.stored.append(video_id)
    facts.save()
