"""Typed options of the library's commands (the command-line flags, one field each)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_PARALLELISM = 200  # jobs in flight: the service allows 200 per resource


@dataclass(frozen=True)
class PlanOptions:
    emulator: bool = False  # the draft target: the embedded emulator's state and folder
    verify: bool = False  # hash every output instead of trusting the stat cache
    refresh: bool = False  # ask the service about the jobs the plan relies on


@dataclass(frozen=True)
class ApplyOptions:
    emulator: bool = False
    only: tuple[str, ...] = ()  # globs of video ids
    exclude: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()  # ids to render again even if unchanged
    parallelism: int = 20
    timeout: float | None = None  # seconds a job may take from its submission
    delete_remote: bool = False  # delete each remote job after its download
    lock_timeout: float = 0.0  # seconds to wait for the state lock
    refresh: bool = False  # ask the service about the jobs the plan relies on, first
    # Refuse, before anything is sent, a plan estimated above this (the manifest's
    # prices' currency) or with more paid renders; None: the manifest's ``budget``.
    max_cost: float | None = None
    max_renders: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise ValueError(f"parallelism must be between 1 and {MAX_PARALLELISM}")
        if (self.max_cost is not None and self.max_cost < 0) or (
            self.max_renders is not None and self.max_renders < 0
        ):
            raise ValueError("max_cost and max_renders must not be negative")

    @property
    def selects(self) -> bool:
        """A selection says nothing of the other videos: no plan memo then."""
        return bool(self.only or self.exclude or self.replace)


@dataclass(frozen=True)
class StatusOptions:
    emulator: bool = False
    refresh: bool = False  # ask the service for each job's current state
    verify: bool = False


@dataclass(frozen=True)
class PruneOptions:
    emulator: bool = False
    delete_files: bool = False  # also delete the outputs of removed videos
    remote: bool = False  # also delete the remote jobs of removed videos
    lock_timeout: float = 0.0
    keep_days: float = 30.0  # unused renders younger than this stay (other branches)
    store: bool = False  # also drop pruned renders' videos from the local video store


@dataclass(frozen=True)
class ReviewOptions:
    emulator: bool = False
    out_dir: Path | None = None  # the page's folder (default: build/review beside the videos)


@dataclass(frozen=True)
class ExportOptions:
    emulator: bool = False
    only: tuple[str, ...] = ()  # globs of video ids
