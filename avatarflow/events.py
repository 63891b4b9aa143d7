"""What the workflow reports while it runs: the events a progress callback receives.

``apply`` reports, in order: ``PlanReady`` (the plan it will carry out, before any
confirmation), ``Starting`` (confirmed, and the state is still the one planned), then
one ``Event`` per step of a video. ``LockWait`` comes whenever a command waits for the
state lock. Every event has a ``message`` a script may print as it is, and the
``video_id`` it is about (None: the whole command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .planner import Plan
    from .pricing import Prices


@dataclass(frozen=True)
class Event:
    """One step of one video (``video_id`` None: of the whole run)."""

    kind: str  # submitted, adopted, status, downloaded, failed, timeout, forgot, deleted, info
    video_id: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _AboutThePlan:
    """An event about the whole plan, no one video."""

    plan: Plan
    video_id: None = field(default=None, init=False)


@dataclass(frozen=True)
class PlanReady(_AboutThePlan):
    """The plan a command will carry out; ``pack_max_inputs`` when its renders are packed."""

    pack_max_inputs: int | None = None
    prices: Prices | None = None  # the manifest's, for the plan's money

    @property
    def message(self) -> str:
        return f"plan: {len(self.plan.changes)} change(s) of {len(self.plan.actions)} video(s)"


@dataclass(frozen=True)
class Starting(_AboutThePlan):
    """The plan is confirmed and its state unchanged: jobs are about to be sent."""

    @property
    def message(self) -> str:
        return f"applying {len(self.plan.changes)} change(s)"


@dataclass(frozen=True)
class LockWait:
    """The state is locked by another command; this one waits (``--lock-timeout``)."""

    message: str
    video_id: None = None


EventSink = Callable[[Event], None]
Progress = Event | PlanReady | Starting | LockWait
ProgressSink = Callable[[Progress], None]
