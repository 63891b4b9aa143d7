"""The review page in a real browser: headless Chromium (Debian's package) driven by
Playwright over the example course rendered on the emulator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import avatarflow
from avatarflow.options import ReviewOptions
from avatarflow.reviewpage import review

from .course_fixtures import VIDEOS, apply_drafts, copy_example
from .helpers import run_cli

CHROMIUM = os.environ.get("AVATARFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADDED = "Delete merged branches to keep things tidy."


pytestmark = pytest.mark.usefixtures("fast_emulator")


@pytest.fixture
def reviewed(tmp_path: Path) -> Path:
    """The example course on the emulator, then one narration edited (a pending change)."""
    manifest = copy_example(tmp_path)
    apply_drafts(manifest)
    script = manifest.parent / "scripts" / "03-branches.txt"
    script.write_text(script.read_text().replace("Create one", f"{ADDED} Create one"))
    result = run_cli("review", str(manifest), "--emulator", "-o", str(tmp_path / "page"))
    assert result.code == 0, result.err
    assert "page/index.html" in result.out and "1 pending" in result.out
    return tmp_path / "page" / "index.html"


def test_review_page_in_chromium(reviewed: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path / "profile"
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # A media element cancels its own fetch once it has the metadata it wanted
            # (ERR_ABORTED); any other failed load is a broken page.
            page.on(
                "requestfailed",
                lambda r: (
                    None
                    if r.failure == "net::ERR_ABORTED" and r.resource_type == "media"
                    else errors.append(f"failed: {r.url} ({r.failure})")
                ),
            )
            page.set_viewport_size({"width": 1400, "height": 900})
            page.goto(reviewed.as_uri())
            page.wait_for_function(
                "[...document.querySelectorAll('video')].every(v => v.readyState >= 1)",
                timeout=30_000,
            )
            durations = page.evaluate(
                "[...document.querySelectorAll('video')].map(v => v.duration)"
            )
            cards = page.evaluate(
                """[...document.querySelectorAll('.card')].map(c => ({
                    id: c.querySelector('.vid').textContent,
                    narration: c.querySelector('.narration').innerText,
                    added: [...c.querySelectorAll('.diff ins')].map(e => e.innerText),
                    removed: [...c.querySelectorAll('.diff del')].map(e => e.innerText),
                    status: c.dataset.status,
                    poster: c.querySelector('video')?.getAttribute('poster'),
                }))"""
            )
            posters_loaded = page.evaluate(
                """Promise.all([...document.querySelectorAll('video')].map(v => new Promise(ok => {
                    const img = new Image(); img.onload = () => ok(img.naturalWidth);
                    img.onerror = () => ok(0); img.src = v.poster; })))"""
            )
            shot = tmp_path / "review-page.png"
            page.screenshot(path=str(shot), full_page=True)
            # The filter hides what does not match, in the browser.
            page.fill("#filter", "movable name")
            visible = page.evaluate(
                "[...document.querySelectorAll('.card:not(.hidden) .vid')].map(e => e.textContent)"
            )
        finally:
            browser.close()

    assert errors == []
    assert len(durations) == len(VIDEOS) and all(d > 0 for d in durations), durations
    assert [c["id"] for c in cards] == VIDEOS
    for card in cards:
        assert len(card["narration"].split()) >= 5, card
    assert "Welcome to Git for Teams." in cards[0]["narration"]
    assert "Commits & history <basics>" in cards[1]["narration"]  # escaped, shown as written
    changed = {c["id"]: c for c in cards if c["status"] != "ok"}
    assert list(changed) == ["03-branches"]
    assert changed["03-branches"]["added"] == [ADDED]
    assert changed["03-branches"]["removed"] == []
    assert all(c["added"] == [] for c in cards if c["status"] == "ok")
    assert all(width > 0 for width in posters_loaded), posters_loaded
    assert visible == ["03-branches"]
    assert shot.stat().st_size > 10_000
    assert reviewed.stat().st_mode & 0o044 == 0o044  # readable by others, like the videos
    artefacts = os.environ.get("AVATARFLOW_TEST_ARTEFACTS")
    if artefacts:
        shutil.copy(shot, Path(artefacts) / shot.name)


def test_review_is_a_library_call_that_keeps_state_and_requests_untouched(
    reviewed: Path,
) -> None:
    manifest = reviewed.parent.parent / "manifests" / "git-course.yaml"
    state_dir = manifest.parent / ".avatarflow" / "git-course" / "emulator"
    before = {p: p.read_bytes() for p in state_dir.rglob("*.json") if ".cache" not in p.parts}
    log = (state_dir / "service" / "requests.jsonl").read_bytes()
    page = avatarflow.review(
        manifest, avatarflow.ReviewOptions(emulator=True, out_dir=reviewed.parent)
    )
    assert [c.video_id for c in page.cards] == VIDEOS
    assert page.totals.pending == 1 and page.totals.videos == 6
    # What the service billed, at the shipped list price; and the estimate of a render.
    assert page.cards[0].billed.startswith("159 characters · 12 s of avatar · $")
    assert all(c.cost.startswith("$") for c in page.cards)
    assert page.totals.pending_cost.startswith("$") and page.totals.prices_as_of
    assert page.posters_made == 0  # named by content: the second page reuses them
    assert sorted(p.name for p in (reviewed.parent / "posters").iterdir()) == sorted(
        f"{c.poster_src.rsplit('/', 1)[-1]}" for c in page.cards if c.poster_src
    )
    after = {p: p.read_bytes() for p in state_dir.rglob("*.json") if ".cache" not in p.parts}
    assert after == before
    assert (state_dir / "service" / "requests.jsonl").read_bytes() == log


def test_review_of_a_course_not_rendered_yet(tmp_path: Path) -> None:
    manifest = copy_example(tmp_path)
    page = review(manifest, ReviewOptions(emulator=True))
    assert page.shown == "build/review-drafts/index.html"
    assert [c.status for c in page.cards] == ["new"] * 6
    assert page.missing == tuple(VIDEOS)
    html = page.path.read_text()
    assert "<video" not in html and html.count("no video on disk yet") == 6
    assert "Welcome to Git for Teams." in html
    assert "Commits &amp; history &lt;basics&gt;" in html  # escaped by the template
    assert not (manifest.parent / ".avatarflow").exists()  # a review writes no state
