"""avatarflow: plan and apply talking-avatar videos with Azure AI Speech batch synthesis.

Library first::

    from avatarflow import Project
    project = Project.open("manifests/git-course.yaml")
    plan = project.plan()
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AvatarflowError, UserError
from .manifest import Manifest, load_manifest
from .planner import Action, ActionKind, Plan
from .project import Project

__all__ = [
    "Action",
    "ActionKind",
    "AvatarflowError",
    "Manifest",
    "Plan",
    "Project",
    "UserError",
    "__version__",
    "load_manifest",
]
