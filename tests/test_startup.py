"""What a command imports before it does any work: ``--help`` stays light."""

from __future__ import annotations

import subprocess
import sys

import click

from avatarflow.cli import _LazyGroup, cli

_PROBE = """
import sys
from avatarflow.cli import main
code = main(["--help"])
heavy = sorted(m for m in ("pydantic", "jinja2", "yaml", "rich", "httpx", "avatarflow.state",
                           "avatarflow.manifest", "avatarflow.workflow", "avatarflow.planner",
                           "avatarflow.secrets") if m in sys.modules)
print(code, ",".join(heavy) or "-")
"""


def test_help_imports_neither_pydantic_nor_the_state() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert "Commands:" in done.stdout and "status" in done.stdout
    assert lines[-1] == "0 -"


def test_help_lists_each_lazy_command_with_its_own_help() -> None:
    ctx = click.Context(cli)
    for name, text in _LazyGroup.HELP.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.help is not None and command.help.split("\n\n")[0] == text, name
