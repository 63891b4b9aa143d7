"""A manifest together with its target: where state and videos live, and the plan."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from .backends.local import RECORDS_DIR, LocalStore
from .destination import Destination
from .destination import resolve as resolve_destination
from .errors import ConfigError, ManifestError
from .manifest import LoadedManifest, Manifest, load_manifest
from .packing import check_packable
from .payload import DESTINATION_RESERVE, VideoRequest, build_request
from .planmemo import Observed, remember, snapshot_folder
from .planner import OutputCheck, Plan, make_plan
from .render import Renderer
from .statcache import CACHE_DIR, FILE_NAME, StatCache, stat_key
from .state import State, StateRecord, StateStore
from .suggest import did_you_mean

TargetName = Literal["azure", "emulator"]
EMULATOR_DIR = "emulator"


@dataclass(frozen=True)
class Target:
    """Where one target keeps its state and its videos. Drafts never mix with finals."""

    name: TargetName
    state_dir: Path
    output_dir: Path

    @property
    def is_emulator(self) -> bool:
        return self.name == "emulator"


def _draft_setting(model: Manifest) -> str:
    """The draft folder as the manifest gives it, or its default beside the outputs."""
    return model.draft_dir or f"{model.output_dir.rstrip('/')}-drafts"


class Project:
    """Library entry point: ``Project.open("course.yaml").plan()``."""

    def __init__(self, manifest: LoadedManifest, target: TargetName = "azure") -> None:
        self.manifest = manifest
        self.target = self._target(target)
        # Everything the plan read, as it read it: what a plan memo is made of.
        self.observed = Observed(manifest=manifest.sha256 or None)
        self._observed_state: State | None = None
        self._root = str(manifest.root)

    @classmethod
    def open(cls, path: Path | str, target: TargetName = "azure") -> Project:
        path = Path(path)
        return cls(load_manifest(path, display_path=path.name), target)

    # -- paths ---------------------------------------------------------------------
    def _inside(self, relative: str, key: str) -> Path:
        root = self.manifest.root
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise ManifestError(
                f"{relative!r} points outside the manifest's folder", self.manifest.location((key,))
            )
        return path

    def _target(self, name: TargetName) -> Target:
        model = self.manifest.model
        state_root = self._inside(model.state_dir, "state_dir") / model.name
        output = self._inside(model.output_dir, "output_dir")
        # Checked for both targets, so that validate reports what apply --emulator refuses.
        draft = self._inside(_draft_setting(model), "draft_dir")
        if name == "azure":
            return Target(name, state_root, output)
        return Target(name, state_root / EMULATOR_DIR, draft)

    def display(self, path: Path) -> str:
        """``path`` relative to the manifest, as every message shows paths."""
        try:
            return str(path.relative_to(self.manifest.root))
        except ValueError:
            return str(path)

    @property
    def emulator_data_dir(self) -> Path:
        return self.target.state_dir / "service"

    @property
    def pack_max_inputs(self) -> int | None:
        """Inputs per packed job, or None when videos are not packed."""
        service = self.manifest.model.service
        return service.pack_max_inputs if service.pack else None

    def destination(self) -> Destination:
        """The container jobs write to, with its SAS from the environment."""
        service = self.manifest.model.service
        if not service.destination_container_url:
            raise ConfigError(
                "this state holds videos written to a destination container but the manifest "
                "names no service.destination_container_url to read them from"
            )
        return resolve_destination(
            service.destination_container_url,
            service.destination_path,
            drafts=self.target.is_emulator,
        )

    def output_path(self, request: VideoRequest) -> Path:
        video = request.rendered.video.fields.video
        ext = video.format if video and video.format else "mp4"
        stem = request.rendered.video.output_stem or request.video_id  # variants: a folder each
        return self.target.output_dir / f"{stem}.{ext}"

    def check_output_paths(self) -> None:
        """Refuse, before anything is sent, an output path that apply could not safely
        replace with a regular file: a symlink (whose target the user may care about),
        a folder, a FIFO; or an output folder that is not a folder."""
        folder = self.target.output_dir
        if folder.exists() and not folder.is_dir():
            model = self.manifest.model
            key, configured = "output_dir", model.output_dir
            if self.target.is_emulator:
                key = "draft_dir" if model.draft_dir else key
                configured = _draft_setting(model)
            raise ManifestError(
                f"output folder {configured!r} exists and is not a folder",
                self.manifest.location((key,)),
            )
        for request in self.requests:
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

    # -- the pipeline --------------------------------------------------------------
    @cached_property
    def requests(self) -> list[VideoRequest]:
        """Every video rendered and turned into its request; raises on the first problem."""
        renderer = Renderer(self.manifest)
        model = self.manifest.model
        reserve = DESTINATION_RESERVE if model.service.destination_container_url else 0
        # Before rendering: a template edited meanwhile then differs from its memo.
        templates = self._as_configured(self.manifest.model.templates_dir)
        self.observed.templates = snapshot_folder(self.manifest.root / templates)
        self.observed.templates_dir = templates
        requests = [
            build_request(rendered, model.name, model.service.api_version, reserve)
            for rendered in renderer.render_all()
        ]
        self.observed.inputs = dict(renderer.input_digests)
        if model.service.pack:
            for request in requests:
                check_packable(request)
        return requests

    def warnings(self) -> list[str]:
        return [w for r in self.requests for w in r.rendered.warnings]

    def request(self, video_id: str) -> VideoRequest:
        for request in self.requests:
            if request.video_id == video_id:
                return request
        known = [r.video_id for r in self.requests]
        hint = did_you_mean(video_id, known)
        raise ManifestError(
            f"no video {video_id!r} in the manifest{hint}; videos: {', '.join(known)}",
            self.manifest.location(("videos",)),
        )

    def local_store(self) -> LocalStore:
        """The target's state directory beside the manifest."""
        return LocalStore(self.target.state_dir, self.display(self.target.state_dir))

    def remote_store(self) -> StateStore | None:
        """The team's remote state, when the manifest names one (never for drafts)."""
        settings = self.manifest.model.service.state
        if self.target.is_emulator or settings.backend == "local":
            return None
        from .backends.azureblob import AzureBlobStore

        assert settings.container_url is not None  # the manifest model checks it
        return AzureBlobStore(
            settings.container_url, settings.name or f"{self.manifest.model.name}.json"
        )

    def store(self) -> StateStore:
        """Where this target's state lives; each call reads afresh from a new store."""
        return self.remote_store() or self.local_store()

    def load_state(self) -> State:
        """Read the state afresh, noting what a plan memo needs of what was read."""
        store = self.store()
        started_ns = time.time_ns()  # before the first stat
        state = store.load()
        self._observe(store, state, started_ns)
        return state

    def _observe(self, store: StateStore, state: State, started_ns: int) -> None:
        observed = self.observed
        observed.started_ns, observed.stats, observed.listings = started_ns, {}, {}
        self._observed_state = state
        if not isinstance(store, LocalStore):
            observed.complete = False  # a remote state has no stat to compare
            return
        folder = self._configured_state_dir()
        observed.state_dir = folder
        for name, key in store.read_stats.items():
            observed.stats[f"{folder}/{name}"] = key
        if store.listing is not None:
            observed.listings[f"{folder}/{RECORDS_DIR}"] = store.listing

    def _as_configured(self, setting: str) -> str:
        """A folder as the manifest names it, relative to the manifest when inside it,
        symlinks left in place: a memo then follows a symlink that is pointed elsewhere."""
        joined = os.path.normpath(os.path.join(self.manifest.root, setting))
        return os.path.relpath(joined, self.manifest.root)

    def _configured_state_dir(self) -> str:
        model = self.manifest.model
        parts = [model.state_dir, model.name, *([EMULATOR_DIR] if self.target.is_emulator else [])]
        return self._as_configured(os.path.join(*parts))

    def remember(self, plan: Plan, warnings: list[str]) -> bool:
        """Memoise ``plan`` when it found nothing to do (see :mod:`avatarflow.planmemo`)."""
        return remember(self.manifest.path, self.target.name, plan, self.observed, warnings)

    @cached_property
    def output_hashes(self) -> StatCache:
        """Hashes of this target's outputs by stat, in an uncommitted cache folder."""
        return StatCache(self.target.state_dir / CACHE_DIR / FILE_NAME)

    def check_output(self, record: StateRecord, *, verify: bool = False) -> OutputCheck:
        """Is the recorded output on disk, byte for byte? ``verify`` ignores the cache."""
        if record.output is None:
            return "missing"
        path = os.path.join(self._root, record.output.path)  # a str: pathlib costs more here
        try:
            st = os.lstat(path)  # one stat per output: plan makes 10,000 of these
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        self.observed.stats[record.output.path] = stat_key(st)
        if not stat.S_ISREG(st.st_mode) or st.st_size != record.output.size:
            return "modified"  # a symlink or a folder is never the file we downloaded
        digest = self.output_hashes.sha256(record.output.path, path, st, verify=verify)
        return "ok" if digest == record.output.sha256 else "modified"

    def plan(
        self,
        state: State | None = None,
        *,
        remote_gone: frozenset[str] = frozenset(),
        replace: frozenset[str] = frozenset(),
        verify: bool = False,
    ) -> Plan:
        """``verify`` hashes every output instead of trusting the stat cache."""
        state = state if state is not None else self.load_state()
        if state is not self._observed_state or remote_gone or replace:
            self.observed.complete = False  # not all of it was read here: nothing to vouch for
        plan = make_plan(
            self.requests,
            state,
            lambda record: self.check_output(record, verify=verify),
            remote_gone=remote_gone,
            replace=replace,
        )
        self.output_hashes.save()
        return plan
