"""The planner: a pure function from (requests, state, what is on disk) to a Plan."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from .errors import SelectionError
from .lifecycle import IN_FLIGHT
from .suggest import did_you_mean

if TYPE_CHECKING:  # a plan recalled from its memo is built without rendering anything
    from .payload import VideoRequest
    from .state import State, StateRecord

OutputCheck = Literal["ok", "missing", "modified"]


class ActionKind(StrEnum):
    CREATE = "create"
    RERENDER = "rerender"
    RESUME = "resume"
    DOWNLOAD = "download"
    FORGET = "forget"
    NOOP = "noop"


SYMBOLS: dict[ActionKind, str] = {
    ActionKind.CREATE: "+",
    ActionKind.RERENDER: "~",
    ActionKind.RESUME: ">",
    ActionKind.DOWNLOAD: "↓",
    ActionKind.FORGET: "-",
}
LEGEND: dict[ActionKind, str] = {
    ActionKind.CREATE: "create (render a new video)",
    ActionKind.RERENDER: "re-render (the request changed)",
    ActionKind.RESUME: "resume a job already submitted",
    ActionKind.DOWNLOAD: "download again (no new render)",
    ActionKind.FORGET: "forget a video removed from the manifest",
}
FOOTER: dict[ActionKind, str] = {
    ActionKind.CREATE: "to create",
    ActionKind.RERENDER: "to re-render",
    ActionKind.RESUME: "to resume",
    ActionKind.DOWNLOAD: "to download",
    ActionKind.FORGET: "to forget",
}
# Actions that submit a new (paid) job.
PAID: frozenset[ActionKind] = frozenset({ActionKind.CREATE, ActionKind.RERENDER})

_AVATAR_KEYS = {
    "talkingAvatarCharacter",
    "talkingAvatarStyle",
    "customized",
    "photoAvatarBaseModel",
    "scene",
    "useBuiltInVoice",
    "avatarPosition",
    "avatarSize",
}
_WORDS_PER_MINUTE = 150
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Action:
    """What apply does for one video. ``request`` is set whenever it has work to do; an
    up-to-date video recalled from the plan memo carries only its identity."""

    kind: ActionKind
    video_id: str
    reasons: tuple[str, ...] = ()
    request: VideoRequest | None = None
    record: StateRecord | None = None
    synthesis_id: str | None = None
    input_hash: str | None = None

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.kind, " ")


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    lineage: str | None
    serials: Mapping[str, int] = field(default_factory=dict)

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind is not ActionKind.NOOP)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> Counter[ActionKind]:
        return Counter(a.kind for a in self.changes)

    def paid(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind in PAID)

    def estimate(self) -> tuple[int, float]:
        """Characters and minutes of narration that the paid actions will render."""
        chars = 0
        words = 0
        for action in self.paid():
            assert action.request is not None
            spoken = _TAG_RE.sub(" ", action.request.rendered.content)
            chars += len(" ".join(spoken.split()))
            words += len(spoken.split())
        return chars, words / _WORDS_PER_MINUTE

    def footer(self) -> str:
        counts = self.counts()
        if not counts:
            return "No changes. Every video is up to date."
        parts = [f"{counts.get(kind, 0)} {FOOTER[kind]}" for kind in FOOTER]
        return "Plan: " + ", ".join(parts) + "."

    def to_json(self) -> dict[str, Any]:
        chars, minutes = self.estimate()
        return {
            "format": 1,
            "lineage": self.lineage,
            "serials": dict(self.serials),
            "summary": {kind.value: self.counts().get(kind, 0) for kind in FOOTER},
            "estimate": {"characters": chars, "minutes": round(minutes, 2)},
            "actions": [
                {
                    "video": a.video_id,
                    "action": a.kind.value,
                    "symbol": a.symbol,
                    "reasons": list(a.reasons),
                    "synthesis_id": a.synthesis_id,
                    "input_hash": a.input_hash,
                }
                for a in self.actions
            ],
        }


def make_plan(
    requests: Iterable[VideoRequest],
    state: State,
    outputs: Callable[[StateRecord], OutputCheck],
    *,
    remote_gone: frozenset[str] = frozenset(),
    replace: frozenset[str] = frozenset(),
) -> Plan:
    """Decide, for every video, what ``apply`` must do and why. Reads, never writes."""
    actions: list[Action] = []
    wanted: set[str] = set()
    for request in requests:
        wanted.add(request.video_id)
        record = state.records.get(request.video_id)
        actions.append(
            _plan_video(
                request,
                record,
                outputs,
                request.video_id in remote_gone,
                request.video_id in replace,
            )
        )
    for video_id in sorted(set(state.records) - wanted):
        actions.append(
            Action(
                ActionKind.FORGET,
                video_id,
                ("removed from the manifest",),
                record=state.records[video_id],
            )
        )
    lineage = state.meta.lineage if state.meta else None
    return Plan(tuple(actions), lineage, state.serials())


def _plan_video(
    request: VideoRequest,
    record: StateRecord | None,
    outputs: Callable[[StateRecord], OutputCheck],
    gone: bool,
    replace: bool,
) -> Action:
    def act(kind: ActionKind, *reasons: str) -> Action:
        return Action(
            kind,
            request.video_id,
            reasons,
            request,
            record,
            request.synthesis_id,
            request.content_hash,
        )

    if record is None:
        return act(ActionKind.CREATE, "new video")
    if replace:
        return act(ActionKind.RERENDER, "replacement requested (--replace)")
    if record.input_hash != request.content_hash:
        return act(ActionKind.RERENDER, *explain_change(record, request))
    if record.status == "failed":
        err = record.error
        detail = f"{err.code}: {err.message}" if err else "unknown error"
        return act(ActionKind.RERENDER, f"last render failed ({detail})")
    if record.status in IN_FLIGHT:
        if record.pending_output is not None and outputs(_as_saved(record)) == "ok":
            # Downloaded and renamed into place, then the run stopped before recording it.
            return act(ActionKind.RESUME, "output saved by the last run, to be recorded")
        if gone:
            return act(ActionKind.RERENDER, "remote job expired or was deleted before download")
        return act(
            ActionKind.RESUME, f"job {record.remote_id or record.synthesis_id} is {record.status}"
        )
    check = outputs(record)
    if check == "ok":
        return act(ActionKind.NOOP)
    what = "output file missing" if check == "missing" else "output file modified (sha256 differs)"
    if gone:
        return act(ActionKind.RERENDER, f"{what} and the remote job has expired")
    return act(ActionKind.DOWNLOAD, what)


def _as_saved(record: StateRecord) -> StateRecord:
    return record.model_copy(update={"output": record.pending_output})


def explain_change(record: StateRecord, request: VideoRequest) -> list[str]:
    """Name what changed between the recorded request and the new one."""
    if record.surface != request.surface:
        return [f"api surface changed ({record.surface} → {request.surface})"]
    old, new = record.request, request.recorded_body()
    reasons: list[str] = []
    old_src, new_src = record.sources, request.rendered.sources
    if old.get("inputs") != new.get("inputs") or old.get("inputKind") != new.get("inputKind"):
        reasons.extend(_input_reasons(old_src, new_src))
    if old_src.get("voice") != new_src.get("voice") and new_src.get("voice") is not None:
        reasons.append(f"voice {old_src.get('voice') or '(none)'} → {new_src.get('voice')}")
    reasons.extend(_config_reasons(old, new, request.surface))
    return _unique(reasons) or ["request changed"]


def _input_reasons(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    named = {"script": "script", "ssml": "ssml", "template": "template", "vars": "template vars"}
    reasons = [
        f"{label} changed"
        for key, label in named.items()
        if key in new and old.get(key) != new.get(key) and key in old
    ]
    if set(old) != set(new) and ("ssml" in old) != ("ssml" in new):
        reasons.append("input kind changed")
    return reasons or ["input changed"]


def _config_reasons(old: Mapping[str, Any], new: Mapping[str, Any], surface: str) -> list[str]:
    reasons: list[str] = []
    old_avatar, new_avatar = _avatar_section(old, surface), _avatar_section(new, surface)
    avatar_changed = sorted(k for k in _changed_keys(old_avatar, new_avatar) if k in _AVATAR_KEYS)
    video_changed = sorted(
        k
        for k in _changed_keys(old_avatar, new_avatar)
        if k not in _AVATAR_KEYS and k not in _PREVIEW_PROPERTIES
    )
    if avatar_changed:
        reasons.append("avatar (" + ", ".join(avatar_changed) + ")")
    if video_changed:
        reasons.append("video settings (" + ", ".join(video_changed) + ")")
    old_voice = (old.get("synthesisConfig") or {}).get("voice")
    new_voice = (new.get("synthesisConfig") or {}).get("voice")
    if old_voice != new_voice and new_voice:
        reasons.append(f"voice {old_voice or '(none)'} → {new_voice}")
    for key in sorted(set(old) | set(new)):
        if key in {"inputs", "inputKind", "textType", "avatarConfig"}:
            continue
        if surface == "preview" and key == "properties":
            props = sorted(
                k
                for k in _changed_keys(old.get(key) or {}, new.get(key) or {})
                if k in _PREVIEW_PROPERTIES
            )
            if props:
                reasons.append("properties (" + ", ".join(props) + ")")
            continue
        if old.get(key) != new.get(key):
            if key == "synthesisConfig":
                rest = _changed_keys(old.get(key) or {}, new.get(key) or {}) - {"voice"}
                if rest:
                    reasons.append("synthesis (" + ", ".join(sorted(rest)) + ")")
                continue
            reasons.append(f"{key} changed")
    return reasons


_PREVIEW_PROPERTIES = {"timeToLive", "destinationContainerUrl"}


def _avatar_section(body: Mapping[str, Any], surface: str) -> Mapping[str, Any]:
    section = body.get("properties" if surface == "preview" else "avatarConfig")
    return section if isinstance(section, Mapping) else {}


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def select(plan: Plan, only: Iterable[str], exclude: Iterable[str], known: Iterable[str]) -> Plan:
    """Keep the actions whose video matches ``only`` and not ``exclude`` (globs)."""
    known = list(known)
    ids = sorted(set(known) | {a.video_id for a in plan.actions})
    only, exclude = list(only), list(exclude)
    for pattern in [*only, *exclude]:
        if not fnmatch.filter(ids, pattern):
            # Suggest only what the manifest has: a removed video is not for selecting.
            raise SelectionError(
                f"no video matches {pattern!r}{did_you_mean(pattern, known)}; "
                f"videos: {', '.join(known)}"
            )

    def keep(video_id: str) -> bool:
        if only and not any(fnmatch.fnmatchcase(video_id, p) for p in only):
            return False
        return not any(fnmatch.fnmatchcase(video_id, p) for p in exclude)

    kept = tuple(
        a if keep(a.video_id) else dataclasses.replace(a, kind=ActionKind.NOOP, reasons=())
        for a in plan.actions
        if keep(a.video_id) or a.kind is not ActionKind.FORGET
    )
    return Plan(kept, plan.lineage, plan.serials)
