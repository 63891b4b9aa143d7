"""A saved plan (``plan -o FILE``) and the check that ``apply FILE`` applies exactly it.

The file holds the plan as ``plan --json`` prints it, plus the manifest it was made
for (relative to the file) and the target. ``apply FILE`` plans again and compares, per
video, the action, the request hash and whether it is paid, and the state the plan was
made on (lineage and each render's fingerprint): any difference refuses the apply
before anything is sent, naming what changed. The saved plan is the confirmation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .display import SYMBOLS, plan_json
from .errors import ConfigError, PlanChangedError
from .planner import ActionKind, Plan
from .state import atomic_write

KIND = "avatarflow-plan"
FORMAT = 1


@dataclass(frozen=True)
class SavedPlan:
    path: Path
    manifest: Path
    target: str
    data: dict[str, Any]


def save(plan: Plan, manifest: Path, target: str, path: Path) -> None:
    manifest_at = os.path.relpath(manifest.resolve(), path.resolve().parent)
    data = {"kind": KIND, "format": FORMAT, "manifest": manifest_at, "target": target}
    data["plan"] = plan_json(plan)
    atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def is_saved_plan(path: Path) -> bool:
    """A file ``plan -o`` wrote (a manifest is YAML, never this JSON object)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and b'"kind"' in head and KIND.encode() in head


def load(path: Path) -> SavedPlan:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable saved plan ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ConfigError(f"{path}: not a plan saved by avatarflow plan -o")
    if data.get("format") != FORMAT:
        raise ConfigError(f"{path}: saved plan format {data.get('format')} is not {FORMAT}")
    manifest = (path.parent / str(data.get("manifest", ""))).resolve()
    target = str(data.get("target", "azure"))
    if target not in ("azure", "emulator") or not isinstance(data.get("plan"), dict):
        raise ConfigError(f"{path}: the saved plan is damaged")
    return SavedPlan(path, manifest, target, data)


def _describe(kind: str, paid: bool) -> str:
    symbol = SYMBOLS.get(ActionKind(kind), " ") if kind in ActionKind._value2member_map_ else "?"
    return f"{symbol} {kind} ({'paid' if paid else 'free'})"


def differences(saved: SavedPlan, fresh: Plan) -> list[str]:
    """What no longer holds of ``saved``, as one phrase per difference."""
    old: dict[str, Any] = saved.data["plan"]
    now = plan_json(fresh)
    changes: list[str] = []
    if old.get("lineage") != now["lineage"]:
        changes.append("the state is another one (lineage differs)")
    before = {a["video"]: a for a in old.get("actions", []) if isinstance(a, dict)}
    after = {a["video"]: a for a in now["actions"]}
    for video in sorted(before.keys() | after.keys()):
        was, is_ = before.get(video), after.get(video)
        if was is None or is_ is None:
            changes.append(f"{video}: {'added to' if was is None else 'removed from'} the plan")
            continue
        if was.get("input_hash") != is_["input_hash"]:
            changes.append(f"{video}: its request changed")
        elif (was.get("action"), was.get("paid")) != (is_["action"], is_["paid"]):
            old_text = _describe(str(was.get("action")), bool(was.get("paid")))
            changes.append(
                f"{video}: was {old_text}, is now {_describe(is_['action'], is_['paid'])}"
            )
    if not changes and old.get("serials") != now["serials"]:
        changes.append("the state changed since the plan was saved")
    return changes


def check(saved: SavedPlan, fresh: Plan) -> None:
    changes = differences(saved, fresh)
    if changes:
        raise PlanChangedError(
            f"{saved.path.name} no longer holds; nothing was sent: "
            + "; ".join(changes)
            + ". Save a new plan"
        )
