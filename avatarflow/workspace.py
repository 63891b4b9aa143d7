"""Where one target of one manifest keeps its files: state, outputs, their stat cache."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import atomicfile
from .errors import ManifestError
from .machine import CACHE_DIR, cache_dir
from .statcache import FILE_NAME, StatCache, StatKey, stat_key

if TYPE_CHECKING:  # a plan recalled from its memo builds no workspace
    from .manifest import LoadedManifest, Manifest
    from .payload import VideoRequest
    from .planner import OutputCheck
    from .state import OutputFile, StateRecord

TargetName = Literal["azure", "emulator"]
EMULATOR_DIR = "emulator"


def target_name(emulator: bool) -> TargetName:
    return "emulator" if emulator else "azure"


def _draft_setting(model: Manifest) -> str:
    """The draft folder as the manifest gives it, or its default beside the outputs."""
    return model.draft_dir or f"{model.output_dir.rstrip('/')}-drafts"


@dataclass(frozen=True)
class Workspace:
    """The folders of one target beside its manifest. Drafts never mix with finals.

    ``state_setting`` is the state folder as the manifest names it (relative, symlinks
    left in place): the plan memo compares files by that path."""

    root: Path
    target: TargetName
    state_dir: Path
    output_dir: Path
    state_setting: str

    @classmethod
    def of(cls, manifest: LoadedManifest, target: TargetName = "azure") -> Workspace:
        model = manifest.model

        def inside(relative: str, key: str) -> Path:
            path = (manifest.root / relative).resolve()
            if not path.is_relative_to(manifest.root):
                raise ManifestError(
                    f"{relative!r} points outside the manifest's folder", manifest.location((key,))
                )
            return path

        state_root = inside(model.state_dir, "state_dir") / model.name
        output = inside(model.output_dir, "output_dir")
        # Checked for both targets, so that validate reports what apply --emulator refuses.
        draft = inside(_draft_setting(model), "draft_dir")
        extra = [EMULATOR_DIR] if target == "emulator" else []
        setting = as_configured(manifest.root, os.path.join(model.state_dir, model.name, *extra))
        state_dir = state_root / EMULATOR_DIR if target == "emulator" else state_root
        return cls(
            manifest.root,
            target,
            state_dir,
            draft if target == "emulator" else output,
            setting,
        )

    @cached_property
    def hashes(self) -> StatCache:
        """Hashes of this target's outputs by stat, in an uncommitted cache folder."""
        state_dir = self.state_dir
        return StatCache(state_dir / CACHE_DIR / FILE_NAME, lambda: cache_dir(state_dir))

    def save_hashes(self) -> None:
        """Write the stat cache of output hashes, if it was read and has changed."""
        if "hashes" in vars(self):  # not read: nothing new to write
            self.hashes.save()

    @property
    def is_emulator(self) -> bool:
        return self.target == "emulator"

    @property
    def emulator_data_dir(self) -> Path:
        return self.state_dir / "service"

    def display(self, path: Path) -> str:
        """``path`` relative to the manifest, as every message shows paths."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def remove_partial_downloads(self) -> None:
        """Temp files of downloads or pulls cut short (only under the state lock)."""
        atomicfile.remove_stale(self.output_dir)

    def output_path(self, request: VideoRequest) -> Path:
        return self.output_dir / self.output_name(request)

    def output_name(self, request: VideoRequest) -> str:
        video = request.rendered.video.fields.video
        ext = video.format if video and video.format else "mp4"
        stem = request.rendered.video.output_stem or request.video_id  # variants: a folder each
        return f"{stem}.{ext}"

    def check_output_paths(self, manifest: LoadedManifest, requests: list[VideoRequest]) -> None:
        """Refuse, before anything is sent, an output path that apply could not safely
        replace with a regular file: a symlink (whose target the user may care about),
        a folder, a FIFO; or an output folder that is not a folder."""
        folder = self.output_dir
        if folder.exists() and not folder.is_dir():
            model = manifest.model
            key, configured = "output_dir", model.output_dir
            if self.is_emulator:
                key = "draft_dir" if model.draft_dir else key
                configured = _draft_setting(model)
            raise ManifestError(
                f"output folder {configured!r} exists and is not a folder",
                manifest.location((key,)),
            )
        for request in requests:
            path = self.output_path(request)
            try:
                mode = os.lstat(path).st_mode  # one stat per output, not three
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISLNK(mode):
                problem = "is a symbolic link"
            elif not stat.S_ISREG(mode):
                problem = "exists and is not a regular file"
            else:
                continue
            raise ManifestError(
                f"output {self.display(path)} {problem}; avatarflow writes only regular "
                "files there (move it away)",
                request.rendered.video.locate("id"),
            )

    def output_checker(self, *, verify: bool = False) -> OutputChecker:
        return OutputChecker(self, verify)


def as_configured(root: Path, setting: str) -> str:
    """A folder as the manifest names it, relative to the manifest when inside it,
    symlinks left in place: a memo then follows a symlink that is pointed elsewhere."""
    joined = os.path.normpath(os.path.join(root, setting))
    return os.path.relpath(joined, root)


class OutputChecker:
    """Is a recorded output on disk, byte for byte? ``verify`` ignores the stat cache.

    ``read`` is what it looked at: the stat of each output by its path in the state,
    which is the plan memo's fingerprint of the outputs."""

    def __init__(self, workspace: Workspace, verify: bool) -> None:
        self._root = str(workspace.root)  # a str: pathlib costs more here
        self._workspace = workspace  # its stat cache is read at the first hash asked for
        self._verify = verify
        self.read: dict[str, StatKey] = {}

    def __call__(self, record: StateRecord) -> OutputCheck:
        return self.check(file_ref(record.output), file_ref(record.subtitles))

    def check(
        self, output: FileRef | None, subtitles: FileRef | None, st: os.stat_result | None = None
    ) -> OutputCheck:
        """The check of a recorded output and its subtitles by (path, size, sha256);
        ``st`` is the output's ``lstat`` when the caller has already taken it."""
        if output is None:
            return "missing"
        relative, size, sha256 = output
        path = os.path.join(self._root, relative)
        if st is None:
            try:
                st = os.lstat(path)  # one stat per output: plan makes 10,000 of these
            except (FileNotFoundError, NotADirectoryError):
                return "missing"
        self.read[relative] = stat_key(st)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return "modified"  # a symlink or a folder is never the file we downloaded
        if self._workspace.hashes.sha256(relative, path, st, verify=self._verify) != sha256:
            return "modified"
        if subtitles is not None and not self._intact(subtitles):
            return "missing"  # its external .vtt: downloaded again with the video
        return "ok"

    def _intact(self, file: FileRef) -> bool:
        relative, size, sha256 = file
        path = os.path.join(self._root, relative)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        self.read[relative] = stat_key(st)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        return self._workspace.hashes.sha256(relative, path, st, verify=self._verify) == sha256


# A recorded file as the output checks need it: its path from the manifest, size, sha256.
FileRef = tuple[str, int, str]


def file_ref(file: OutputFile | None) -> FileRef | None:
    return None if file is None else (file.path, file.size, file.sha256)
