"""The review page: one static HTML file showing every video of the course in order.

``review(manifest)`` plans (reads only: no request, no state write), extracts a poster
frame of each video on disk, and renders ``data/review.html.j2`` with Jinja2. The page is
self-contained (inline CSS and a few lines of inline script, no network): it opens from
``file://`` and refers to the videos by relative paths, so it travels with the build folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

import jinja2

from .course import Course, read_course
from .errors import ConfigError
from .media import poster_frame, write_file
from .options import ReviewOptions
from .payload import VideoRequest
from .planner import ActionKind, Plan
from .pricing import Prices, billed_cost, plan_estimate, prices_for, request_cost
from .state import StateRecord
from .worddiff import Chunk, narration_diff, spoken_text
from .workspace import Workspace, target_name

PAGE_NAME = "index.html"
POSTERS_DIR = "posters"
_VOICE_RE = re.compile(r"<voice\b[^>]*\bname\s*=\s*(['\"])(.*?)\1", re.S)
_MIME = {".mp4": "video/mp4", ".webm": "video/webm"}
_STATUS = {
    ActionKind.NOOP: ("ok", "up to date"),
    ActionKind.CREATE: ("new", "new: not rendered yet"),
    ActionKind.RERENDER: ("changed", "changed: re-render pending"),
    ActionKind.RESUME: ("flight", "rendering"),
    ActionKind.DOWNLOAD: ("missing", "rendered, file missing"),
    ActionKind.REUSE: ("missing", "rendered before, not in place"),
}


@dataclass(frozen=True)
class Card:
    """One video as the page shows it."""

    index: int
    video_id: str
    title: str
    narration: str
    voice: str
    character: str
    style: str
    status: str  # css class: ok, new, changed, flight, missing
    status_label: str
    reasons: tuple[str, ...]
    diff: tuple[Chunk, ...]  # empty when the narration did not change
    diff_known: bool  # False when the last render's narration was not recorded
    characters: int
    duration_s: float | None
    billed: str  # what the service billed for the last render ("" when it said nothing)
    cost: str  # the list price of one render of the request, from the price table
    video_src: str | None  # relative to the page
    video_type: str
    poster_src: str | None


@dataclass(frozen=True)
class Totals:
    videos: int
    up_to_date: int
    pending: int
    seconds: float
    characters: int
    pending_characters: int
    pending_minutes: float
    pending_cost: str  # the plan's paid renders at list price
    prices_as_of: str


@dataclass(frozen=True)
class ReviewPage:
    path: Path
    shown: str  # the path as messages show it: relative to the manifest when inside
    cards: tuple[Card, ...]
    totals: Totals
    posters_made: int = 0
    missing: tuple[str, ...] = field(default=())  # videos without a file on disk


def default_folder(workspace: Workspace) -> Path:
    """``build/review`` beside ``build/videos`` (``review-drafts`` for drafts)."""
    suffix = "-drafts" if workspace.is_emulator else ""
    return workspace.output_dir.parent / f"review{suffix}"


def review(manifest: Path | str, options: ReviewOptions | None = None) -> ReviewPage:
    """Write the review page of ``manifest``'s course; returns what it shows."""
    options = options or ReviewOptions()
    course = read_course(manifest, target_name(options.emulator))
    workspace, plan = course.workspace, course.plan
    folder = (options.out_dir or default_folder(workspace)).resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{workspace.display(folder)} exists and is not a folder")
    cards, jobs = _cards(course, folder)
    made = _make_posters(jobs)
    posters = {Path(c.poster_src).name for c in cards if c.poster_src}
    _remove_stale_posters(folder / POSTERS_DIR, posters)
    totals = _totals(cards, plan, prices_for(course.manifest.model))
    html = render_page(course.manifest.model.name, workspace.is_emulator, cards, totals)
    path = folder / PAGE_NAME
    write_file(path, html.encode("utf-8"))
    missing = tuple(c.video_id for c in cards if c.video_src is None)
    return ReviewPage(path, workspace.display(path), tuple(cards), totals, made, missing)


PosterJob = tuple[Path, Path, float, str]  # video, poster, at seconds, shown name


def _cards(course: Course, folder: Path) -> tuple[list[Card], list[PosterJob]]:
    actions = {a.video_id: a for a in course.plan.actions}
    prices = prices_for(course.manifest.model)
    cards: list[Card] = []
    jobs: list[PosterJob] = []
    for number, request in enumerate(course.requests, start=1):
        action = actions[request.video_id]
        record = action.record
        rendered = request.rendered
        fields = rendered.video.fields
        narration = spoken_text(rendered.content, rendered.input_kind)
        diff = narration_diff(action)
        video_src = poster_src = None
        duration = record.duration_ms / 1000 if record and record.duration_ms else None
        video_path = _video_on_disk(course, request, record)
        if video_path is not None:
            video_src = _relative(video_path, folder)
            assert record is not None
            key = record.output.sha256 if record.output is not None else record.input_hash
            poster = folder / POSTERS_DIR / f"{key[:20]}.jpg"
            poster_src = _relative(poster, folder)
            at = min(1.0, (duration or 2.0) / 2)
            if not poster.is_file():
                shown = course.workspace.display(video_path)
                jobs.append((video_path, poster, at, shown))
        css, label = _STATUS[action.kind]
        if action.kind is ActionKind.RERENDER and record is not None and record.status == "failed":
            css, label = "failed", "last render failed"
        avatar = fields.avatar
        cards.append(
            Card(
                index=number,
                video_id=request.video_id,
                title=str((fields.vars or {}).get("title", "")),
                narration=narration,
                voice=_voice(rendered.content) or fields.voice or "",
                character=(avatar.character if avatar else None) or "",
                style=(avatar.style if avatar else None) or "",
                status=css,
                status_label=label,
                reasons=action.reasons if action.kind is not ActionKind.NOOP else (),
                diff=tuple(diff or ()),
                diff_known=diff is not None,
                characters=len(narration),
                duration_s=duration,
                billed=_billed(record, prices),
                cost=prices.money(request_cost(request, prices)[2]),
                video_src=video_src,
                video_type=_MIME.get(Path(video_src or "").suffix, "video/mp4"),
                poster_src=poster_src,
            )
        )
    return cards, jobs


def _billed(record: StateRecord | None, prices: Prices) -> str:
    """The service's billing of the last render: characters, avatar seconds, list price."""
    if record is None or not record.billing:
        return ""
    chars = sum(v for k, v in record.billing.items() if "Characters" in k)
    seconds = record.billing.get("talkingAvatarDurationSeconds", 0)
    price = prices.money(billed_cost(record.billing, prices))
    return f"{chars:,} characters · {seconds:,} s of avatar · {price}"


def _voice(content: str) -> str | None:
    match = _VOICE_RE.search(content)
    return match.group(2) if match else None


def _video_on_disk(
    course: Course, request: VideoRequest, record: StateRecord | None
) -> Path | None:
    """The last render's file, when it is there (a pending change still shows it). A
    render a video used before its change is bound to no path: its file is the video's
    own output until the new render replaces it."""
    if record is None:
        return None
    if record.output is not None:
        path = course.workspace.root / record.output.path
    else:
        path = course.workspace.output_path(request)
    return path if path.is_file() and not path.is_symlink() else None


def _relative(path: Path, folder: Path) -> str:
    """A URL path from the page to ``path`` (percent-encoding what a URL cannot hold)."""
    return quote(os.path.relpath(path, folder).replace(os.sep, "/"))


def _make_posters(jobs: Sequence[PosterJob]) -> int:
    if not jobs:
        return 0
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: poster_frame(*job), jobs))
    return len(jobs)


def _remove_stale_posters(folder: Path, keep: set[str]) -> None:
    """Posters of videos that changed since the last page (they are named by content)."""
    if folder.is_dir():
        for poster in folder.glob("*.jpg"):
            if poster.name not in keep:
                poster.unlink(missing_ok=True)


def _totals(cards: Sequence[Card], plan: Plan, prices: Prices) -> Totals:
    chars, minutes = plan.estimate()
    return Totals(
        videos=len(cards),
        up_to_date=sum(1 for c in cards if c.status == "ok"),
        pending=sum(1 for c in cards if c.status != "ok"),
        seconds=sum(c.duration_s or 0.0 for c in cards),
        characters=sum(c.characters for c in cards),
        pending_characters=chars,
        pending_minutes=minutes,
        pending_cost=prices.money(plan_estimate(plan, prices).cost),
        prices_as_of=prices.as_of,
    )


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["clock"] = _clock
    return env


def render_page(name: str, drafts: bool, cards: Sequence[Card], totals: Totals) -> str:
    source = files("avatarflow").joinpath("data/review.html.j2").read_text("utf-8")
    template = _environment().from_string(source)
    return template.render(name=name, drafts=drafts, cards=cards, totals=totals)
