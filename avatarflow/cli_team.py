"""Commands of the team workflow: pull, the git merge driver and its set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import EXIT_ERROR, EXIT_OK, emulator_option, lock_timeout_option, manifest_argument

COMMANDS: list[click.Command] = []


def _command(func: click.Command) -> click.Command:
    COMMANDS.append(func)
    return func


@_command
@click.command("pull")
@manifest_argument
@emulator_option
@lock_timeout_option
@click.pass_obj
def pull_command(ctx: Any, manifest: Path, emulator: bool, lock_timeout: float) -> int:
    """Put videos in place from the video stores, with no Speech request."""
    from .pull import pull

    def report(kind: str, video: str | None, message: str) -> None:
        who = f"{video}: " if video else ""
        ctx.err.print(f"{who}{message}", highlight=False, markup=False)

    result = pull(
        manifest, "emulator" if emulator else "azure", lock_timeout=lock_timeout, on_event=report
    )
    fetched = len(result.fetched)
    line = f"Pulled {fetched} video(s); {len(result.up_to_date)} already in place"
    if result.removed:
        line += f"; removed {len(result.removed)} output(s) of removed videos"
    if result.missing:
        line += (
            f"; {len(result.missing)} not in any store "
            f"({result.paid_renders} would need a paid render): run plan and apply"
        )
    ctx.out.print(line + ".", highlight=False)
    return EXIT_OK


@_command
@click.command("merge-render")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("ours", type=click.Path(path_type=Path))
@click.argument("theirs", type=click.Path(path_type=Path))
def merge_render_command(base: Path, ours: Path, theirs: Path) -> int:
    """Git merge driver for render records: both jobs are kept."""
    from .gitmerge import merge_files

    # git reads any code but 0 as a conflict left in the file
    return EXIT_OK if merge_files(ours, theirs) else EXIT_ERROR


@_command
@click.command("git-setup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.pass_obj
def git_setup_command(ctx: Any, directory: Path) -> int:
    """Set up the render merge driver in this clone."""
    from .gitmerge import setup

    attributes, configured = setup(directory)
    ctx.err.print(f"wrote {attributes}", highlight=False)
    if configured:
        ctx.err.print("configured the render merge driver in this clone's git config")
    else:
        ctx.err.print(f"{directory} is not in a git repository: run git-setup after git init")
    return EXIT_OK
