"""``avatarflow catalog``: the voice catalogue the manifest checks use."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import click

from .cli import EXIT_OK

COMMANDS: list[click.Command] = []


@click.group("catalog")
def catalog_group() -> None:
    """The voice catalogue: shipped with avatarflow, refreshable from the service."""


@catalog_group.command("refresh")
@click.option("--region", default=None, help="Azure region (default: AZURE_SPEECH_REGION).")
@click.option("--endpoint", default=None, help="Base URL (default: AZURE_SPEECH_ENDPOINT).")
@click.pass_obj
def refresh_command(ctx: Any, region: str | None, endpoint: str | None) -> int:
    """Read the service's voice list into the user cache; it then wins over the shipped one."""
    from .credentials import KeyCredential, entra_credential
    from .voices import refresh, voices_url

    url = voices_url(endpoint, region)
    key = os.environ.get("AZURE_SPEECH_KEY", "").strip()
    credential = KeyCredential(key) if key else entra_credential()
    headers = asyncio.run(credential.auth_headers())
    path, count = refresh(url, headers)
    ctx.out.print(f"Wrote {count:,} voices to {path}.", markup=False)
    return EXIT_OK


@catalog_group.command("show")
@click.option("--locale", default=None, help="Only the voices of this locale (e.g. de-DE).")
@click.pass_obj
def show_command(ctx: Any, locale: str | None) -> int:
    """List the catalogue's voices (name, multilingual, styles) and where it comes from."""
    from .display import print_rows
    from .voices import load

    catalogue = load()
    chosen = catalogue.by_locale(locale) if locale else list(catalogue.voices.values())
    rows = [[v.name, "yes" if v.multilingual else "", ", ".join(v.styles or ())] for v in chosen]
    print_rows(ctx.out, ["voice", "multilingual", "styles"], rows)
    ctx.err.print(catalogue.describe().capitalize() + ".", markup=False)
    return EXIT_OK


COMMANDS.append(catalog_group)
