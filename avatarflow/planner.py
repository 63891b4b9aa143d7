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
    from .payload import RequestSummary, VideoRequest
    from .state import State, StateRecord

OutputCheck = Literal["ok", "missing", "modified"]


class ActionKind(StrEnum):
    CREATE = "create"
    RERENDER = "rerender"
    RESUME = "resume"
    DOWNLOAD = "download"
    REUSE = "reuse"
    FORGET = "forget"
    NOOP = "noop"


# Actions that submit a new (paid) job.
PAID: frozenset[ActionKind] = frozenset({ActionKind.CREATE, ActionKind.RERENDER})
# The source of a reuse of a render that this same apply makes for another video.
THIS_APPLY = "render made by this apply"

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
    source: str | None = None  # where a fetch or a reuse takes the video from
    # A paid action turned into a reuse of another video's render in the same plan (two
    # byte-identical requests cost one render): the action it stands in for.
    instead_of: Action | None = None

    @property
    def paid(self) -> bool:
        """A new job may be paid for: a render, or a submit whose create may never have
        reached the service (adopted for free when it did)."""
        return self.kind in PAID or (
            self.kind is ActionKind.RESUME
            and self.record is not None
            and self.record.status == "submitting"
        )


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
        return tuple(a for a in self.actions if a.paid)

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


def make_plan(
    requests: Iterable[VideoRequest],
    state: State,
    outputs: Callable[[StateRecord], OutputCheck],
    *,
    remote_gone: frozenset[str] = frozenset(),
    replace: frozenset[str] = frozenset(),
    fetch_from: Callable[[StateRecord], str | None] | None = None,
) -> Plan:
    """Decide, for every video, what ``apply`` must do and why. Reads, never writes.

    ``fetch_from`` says where a recorded video can be had again for free (a store, or
    the service while its job lives), None when only a new render would bring it back."""
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
                state.previous.get(request.video_id),
                fetch_from,
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
    return Plan(one_render_per_request(actions), lineage, state.serials())


def one_render_per_request(actions: Iterable[Action]) -> tuple[Action, ...]:
    """Two videos whose requests are byte-identical (one request hash) cost one render:
    the first paid action of a hash stays paid, the others reuse its render. Run again
    on a selection, a reuse whose render is no longer in the plan becomes paid again."""
    undone = [a.instead_of if a.instead_of and a.kind is ActionKind.REUSE else a for a in actions]
    first: dict[str, str] = {}  # request hash -> the video whose render is paid
    result: list[Action] = []
    for action in undone:
        hash_ = action.input_hash
        if action.paid and hash_ is not None:
            if hash_ not in first:
                first[hash_] = action.video_id
            else:
                why = f"same request as {first[hash_]}: rendered once for both, no extra cost"
                action = dataclasses.replace(
                    action,
                    kind=ActionKind.REUSE,
                    reasons=(why,),
                    source=THIS_APPLY,
                    instead_of=action,
                )
        result.append(action)
    return tuple(result)


def _plan_video(
    request: VideoRequest,
    record: StateRecord | None,
    outputs: Callable[[StateRecord], OutputCheck],
    gone: bool,
    replace: bool,
    previous: StateRecord | None = None,
    fetch_from: Callable[[StateRecord], str | None] | None = None,
) -> Action:
    def act(
        kind: ActionKind, *reasons: str, source: str | None = None, was: StateRecord | None = None
    ) -> Action:
        return Action(
            kind,
            request.video_id,
            reasons,
            request,
            was or record,
            request.synthesis_id,
            request.content_hash,
            source,
        )

    if record is None:
        if previous is not None and previous.input_hash != request.content_hash:
            # The render it had: what the change is explained against (its narration too).
            return act(ActionKind.RERENDER, *explain_change(previous, request), was=previous)
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
    if fetch_from is None:  # a state kept per video: the service is the only source
        if gone:
            return act(ActionKind.RERENDER, f"{what} and the remote job has expired")
        return act(ActionKind.DOWNLOAD, what)
    source = fetch_from(record)
    if gone and source == "service":
        source = None
    if source is None:
        return act(
            ActionKind.RERENDER, f"{what}, in no video store, and its job {_job(record)} is gone"
        )
    if previous is not None and (
        previous.input_hash != request.content_hash or previous.video_id != request.video_id
    ):
        # A revert, a branch switch, a rename: the request has a render already.
        if previous.video_id != request.video_id:
            why = f"same request as {previous.video_id}"
        else:
            why = f"request has a render already (job {_job(record)})"
        return act(ActionKind.REUSE, why, f"from the {source}", source=source)
    return act(ActionKind.DOWNLOAD, what, f"from the {source}", source=source)


def _job(record: StateRecord) -> str:
    return record.remote_id or record.synthesis_id


def _as_saved(record: StateRecord) -> StateRecord:
    return record.model_copy(update={"output": record.pending_output})


def explain_change(record: StateRecord, request: VideoRequest) -> list[str]:
    """Name what changed between the recorded request and the new one."""
    from .payload import summarize  # only a changed video is explained: not on every plan

    old = summarize(record.surface, record.request, record.sources)
    return diff_summaries(old, request.summary())


def diff_summaries(old: RequestSummary, new: RequestSummary) -> list[str]:
    """The reasons a user reads for a re-render, from the two requests' summaries."""
    if old.surface != new.surface:
        return [f"api surface changed ({old.surface} → {new.surface})"]
    reasons: list[str] = []
    if old.script != new.script:
        reasons.extend(_input_reasons(old.sources, new.sources))
    if old.voice != new.voice and new.voice is not None:
        reasons.append(f"voice {old.voice or '(none)'} → {new.voice}")
    for label, before, after in (
        ("avatar", old.avatar, new.avatar),
        ("video settings", old.video, new.video),
        ("synthesis", old.synthesis, new.synthesis),
        ("properties", old.job, new.job),
    ):
        changed = _changed_keys(before, after)
        if changed:
            reasons.append(f"{label} ({', '.join(sorted(changed))})")
    reasons.extend(f"{key} changed" for key in sorted(_changed_keys(old.other, new.other)))
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

    kept = one_render_per_request(
        a if keep(a.video_id) else dataclasses.replace(a, kind=ActionKind.NOOP, reasons=())
        for a in plan.actions
        if keep(a.video_id) or a.kind is not ActionKind.FORGET
    )
    return Plan(kept, plan.lineage, plan.serials)
