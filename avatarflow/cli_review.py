"""Commands that look at a rendered course: review (an HTML page) and export (one video)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import EXIT_OK, emulator_option, manifest_argument, out_option

COMMANDS: list[click.Command] = []


@click.command()
@manifest_argument
@emulator_option
@out_option(
    "--output",
    "out_dir",
    folder=True,
    help="Folder of the page (default: build/review beside the videos).",
)
@click.pass_obj
def review(ctx: Any, manifest: Path, emulator: bool, out_dir: Path | None) -> int:
    """Write a static HTML page to review every video of the course."""
    from .options import ReviewOptions
    from .reviewpage import review as write_review

    page = write_review(manifest, ReviewOptions(emulator=emulator, out_dir=out_dir))
    totals = page.totals
    if page.missing:
        ctx.err.print(f"{len(page.missing)} video(s) have no file on disk yet", highlight=False)
    ctx.out.print(
        f"Wrote {page.shown} ({totals.videos} videos, {totals.pending} pending).",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


COMMANDS.append(review)


@click.command()
@manifest_argument
@emulator_option
@out_option(
    "--output",
    "output",
    required=True,
    help="The course video to write (.mp4 or .webm); its .vtt is written beside it.",
)
@click.option("--only", multiple=True, metavar="GLOB", help="Only these video ids (repeatable).")
@click.pass_obj
def export(ctx: Any, manifest: Path, emulator: bool, output: Path, only: tuple[str, ...]) -> int:
    """Join the course into one video with chapters and one subtitle file."""
    from .coursevideo import export as join_course
    from .options import ExportOptions

    options = ExportOptions(emulator=emulator, only=only)
    if ctx.err.is_terminal:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        columns = (BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
        with Progress("[bold]export[/]", *columns, console=ctx.err, transient=True) as bar:
            task = bar.add_task("export", total=None)

            def advance(done: float, total: float) -> None:
                bar.update(task, completed=done, total=total)

            result = join_course(manifest, output, options, on_progress=advance)
    else:
        result = join_course(manifest, output, options)
    for video_id in result.outdated:
        ctx.err.print(f"warning: {video_id} has a pending change; joined as last rendered")
    how = "re-encoded" if result.reencoded else "joined without re-encoding"
    ctx.out.print(
        f"Wrote {output} ({len(result.chapters)} chapters, {result.duration:.1f} s, {how}) "
        f"and {output.with_suffix('.vtt')} ({result.cues} cues).",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


COMMANDS.append(export)
