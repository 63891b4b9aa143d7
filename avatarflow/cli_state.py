"""``avatarflow state pull|push``: move a state between the local files and the remote blob."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from .backends import copy_state
from .errors import ConfigError
from .lock import command_line
from .project import Project
from .state import StateStore

COMMANDS: list[click.Command] = []


@click.group("state")
def state_group() -> None:
    """Move the state between the local files and the manifest's remote backend."""


COMMANDS.append(state_group)


def _stores(manifest: Path) -> tuple[StateStore, StateStore, Project]:
    """(remote, local, project) of the manifest's Azure target."""
    project = Project.open(manifest)
    remote = project.remote_store()
    if remote is None:
        raise ConfigError(
            "the manifest keeps its state locally; set service.state.backend: azureblob "
            "to pull or push a remote state"
        )
    return remote, project.local_store(), project


def _copy(ctx: Any, manifest: Path, *, pull: bool, force: bool, lock_timeout: float) -> int:
    remote, local, project = _stores(manifest)
    source, destination = (remote, local) if pull else (local, remote)

    def on_wait(message: str) -> None:
        ctx.err.print(message, highlight=False)

    # Always remote first, then local: two commands can never hold one each and wait.
    with ExitStack() as locks:
        for store in (remote, local):
            locks.enter_context(store.lock(command_line(), lock_timeout, on_wait))
        count = copy_state(source, destination, force=force, uses=project.video_uses())
    ctx.err.print(f"Copied {count} record(s) from {source.display} to {destination.display}.")
    return 0


def _options(func: Any) -> Any:
    func = click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Seconds to wait for each state lock.",
    )(func)
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
