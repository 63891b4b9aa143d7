"""``avatarflow state pull|push``: move a state between the local files and the remote blob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import workflow
from .cli import EXIT_OK, lock_timeout
from .display import lock_waits

COMMANDS: list[click.Command] = []


@click.group("state")
def state_group() -> None:
    """Move the state between the local files and the manifest's remote backend."""


COMMANDS.append(state_group)


def _copy(ctx: Any, manifest: Path, *, pull: bool, force: bool, lock_timeout: float) -> int:
    copied = workflow.copy_state(
        manifest, pull=pull, force=force, lock_timeout=lock_timeout, on_event=lock_waits(ctx.err)
    )
    ctx.err.print(f"Copied {copied.count} record(s) from {copied.source} to {copied.destination}.")
    return EXIT_OK


def _options(func: Any) -> Any:
    func = lock_timeout("Seconds to wait for each state lock.")(func)
    func = click.option(
        "--force", is_flag=True, help="Overwrite a destination state of another lineage."
    )(func)
    return click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))(func)


@state_group.command("pull")
@_options
@click.pass_obj
def pull(ctx: Any, manifest: Path, force: bool, lock_timeout: float) -> int:
    """Copy the remote state into the local state files."""
    return _copy(ctx, manifest, pull=True, force=force, lock_timeout=lock_timeout)


@state_group.command("push")
@_options
@click.pass_obj
def push(ctx: Any, manifest: Path, force: bool, lock_timeout: float) -> int:
    """Copy the local state files into the remote state."""
    return _copy(ctx, manifest, pull=False, force=force, lock_timeout=lock_timeout)
