"""avatarflow: plan and apply talking-avatar videos with Azure AI Speech batch synthesis.

Library first: the command line is a thin layer over these functions::

    import avatarflow
    result = avatarflow.plan("manifests/git-course.yaml")
    print(result.plan.counts())
    avatarflow.apply("manifests/git-course.yaml", avatarflow.ApplyOptions(emulator=True),
                     on_event=lambda event: print(event.video_id, event.message))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# typing.TYPE_CHECKING's value (and mypy reads the name the same way), without importing
# typing: ``avatarflow --help`` imports this package and little else.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .coursevideo import Export, export
    from .errors import AvatarflowError, UserError
    from .events import Event, LockWait, PlanReady, Progress, Starting
    from .manifest import Manifest, load_manifest
    from .options import (
        ApplyOptions,
        ExportOptions,
        PlanOptions,
        PruneOptions,
        ReviewOptions,
        StatusOptions,
    )
    from .planner import Action, ActionKind, Plan
    from .pull import PullResult, pull
    from .reviewpage import ReviewPage, review
    from .workflow import (
        ApplyResult,
        PlanResult,
        Pruning,
        UnusedRender,
        VideoStatus,
        apply,
        plan,
        prune,
        status,
        validate,
    )

# Exported names and their modules, imported on first use: a plan recalled from its memo
# never loads pydantic models, Jinja or YAML, and the command line starts faster for it.
_EXPORTS = {
    "Action": "planner",
    "ActionKind": "planner",
    "ApplyOptions": "options",
    "ApplyResult": "workflow",
    "AvatarflowError": "errors",
    "Event": "events",
    "Export": "coursevideo",
    "ExportOptions": "options",
    "LockWait": "events",
    "Manifest": "manifest",
    "Plan": "planner",
    "PlanOptions": "options",
    "PlanReady": "events",
    "PlanResult": "workflow",
    "Progress": "events",
    "PruneOptions": "options",
    "Pruning": "workflow",
    "PullResult": "pull",
    "ReviewOptions": "options",
    "ReviewPage": "reviewpage",
    "Starting": "events",
    "StatusOptions": "options",
    "UnusedRender": "workflow",
    "UserError": "errors",
    "VideoStatus": "workflow",
    "apply": "workflow",
    "export": "coursevideo",
    "load_manifest": "manifest",
    "plan": "workflow",
    "prune": "workflow",
    "pull": "pull",
    "review": "reviewpage",
    "status": "workflow",
    "validate": "workflow",
}

__all__ = [
    "Action",
    "ActionKind",
    "ApplyOptions",
    "ApplyResult",
    "AvatarflowError",
    "Event",
    "Export",
    "ExportOptions",
    "LockWait",
    "Manifest",
    "Plan",
    "PlanOptions",
    "PlanReady",
    "PlanResult",
    "Progress",
    "PruneOptions",
    "Pruning",
    "PullResult",
    "ReviewOptions",
    "ReviewPage",
    "Starting",
    "StatusOptions",
    "UnusedRender",
    "UserError",
    "VideoStatus",
    "__version__",
    "apply",
    "export",
    "load_manifest",
    "plan",
    "prune",
    "pull",
    "review",
    "status",
    "validate",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarflow' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
