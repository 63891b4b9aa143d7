"""Commands that look at a rendered course: review (an HTML page) and export (one video)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import emulator_option, manifest_argument

COMMANDS: list[click.Command] = []


def _target(emulator: bool) -> Any:
    return "emulator" if emulator else "azure"


@click.command()
@manifest_argument
@emulator_option
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the page (default: build/review beside the videos).",
)
@click.pass_obj
def review(ctx: Any, manifest: Path, emulator: bool, out_dir: Path | None) -> int:
    """Write a static HTML page to review every video of the course."""
    from .review import review as write_review

    page = write_review(manifest, target=_target(emulator), out_dir=out_dir)
    totals = page.totals
    if page.missing:
        ctx.err.print(f"{len(page.missing)} video(s) have no file on disk yet", highlight=False)
    ctx.out.print(
        f"Wrote {page.shown} ({totals.videos} videos, {totals.pending} pending).",
        highlight=False,
        markup=False,
    )
    return 0


COMMANDS.append(review)
