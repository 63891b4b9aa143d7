"""avatarflow: plan and apply talking-avatar videos with Azure AI Speech batch synthesis.

Library first::

    from avatarflow import Project
    project = Project.open("manifests/git-course.yaml")
    plan = project.plan()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import AvatarflowError, UserError
    from .manifest import Manifest, load_manifest
    from .planner import Action, ActionKind, Plan
    from .project import Project
    from .pull import PullResult, pull

# Exported names and their modules, imported on first use: a plan recalled from its memo
# never loads pydantic models, Jinja or YAML, and the command line starts faster for it.
_EXPORTS = {
    "Action": "planner",
    "ActionKind": "planner",
    "AvatarflowError": "errors",
    "Manifest": "manifest",
    "Plan": "planner",
    "Project": "project",
    "PullResult": "pull",
    "UserError": "errors",
    "load_manifest": "manifest",
    "pull": "pull",
}

__all__ = [
    "Action",
    "ActionKind",
    "AvatarflowError",
    "Manifest",
    "Plan",
    "Project",
    "PullResult",
    "UserError",
    "__version__",
    "load_manifest",
    "pull",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarflow' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
