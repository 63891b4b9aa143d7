"""Commands that talk to the service: apply, status, prune, emulator, force-unlock."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
