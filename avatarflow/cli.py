"""The command line: thin click commands over the library, one error handler."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from . import __version__
from .errors import AvatarflowError, Terminated
from .plainout import printed_as_is, write_line
from .signals import terminated_on_sigterm

if TYPE_CHECKING:  # rich is loaded by the commands that print, not by ``--help``
    from rich.console import Console

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CRASH, EXIT_TERMINATED = 4, 143  # a bug (see the crash log); SIGTERM (128 + 15)

F = TypeVar("F", bound=Callable[..., Any])


def make_console(stream: Any, color: str) -> Console:
    # rich is imported by the commands that print, not by ``--help``
    from .display import make_console as make

    return make(stream, color)


class Context:
    def __init__(self, color: str) -> None:
        self.color = color
        self._streams = sys.stdout, sys.stderr

    # Made on first use: a command that prints only plain lines never imports rich.
    @cached_property
    def out(self) -> Console:
        return make_console(self._streams[0], self.color)

    @cached_property
    def err(self) -> Console:
        return make_console(self._streams[1], self.color)

    def say(self, text: str, *, err: bool = False) -> None:
        """``out.print(text)`` (``err`` with ``err``), written straight when it is plain."""
        stream = self._streams[1 if err else 0]
        if stream is not None and printed_as_is(text):
            write_line(stream, text)
        else:
            (self.err if err else self.out).print(text)


pass_ctx = click.make_pass_decorator(Context)


def manifest_argument(func: F) -> F:
    # Not click's existence checks: load_manifest reports a missing or unreadable manifest
    # as one located line, with the path relative like every other message.
    return click.argument("manifest", type=click.Path(path_type=Path), metavar="MANIFEST")(func)


def emulator_option(func: F) -> F:
    help = "Use the draft target: the embedded emulator, its own state and output folder."
    return click.option("--emulator", is_flag=True, help=help)(func)


def lock_timeout(help: str = "Seconds to wait for the state lock.") -> Callable[[F], F]:
    """The ``--lock-timeout`` option, worded for the locks the command takes."""
    seconds = click.FloatRange(min=0)
    return click.option("--lock-timeout", type=seconds, default=0.0, show_default=True, help=help)


lock_timeout_option = lock_timeout()


def verify_option(func: F) -> F:
    help = "Hash every output file instead of trusting the local stat cache."
    return click.option("--verify", is_flag=True, help=help)(func)


def out_option(name: str, dest: str, *, folder: bool = False, **kwargs: Any) -> Callable[[F], F]:
    """An ``-o`` option naming the file (or, with ``folder``, the folder) a command writes."""
    where = click.Path(file_okay=not folder, dir_okay=folder, path_type=Path)
    return click.option("-o", name, dest, type=where, **kwargs)


class _LazyGroup(click.Group):
    """A group whose service commands are imported only when one of them runs: ``plan``
    starts without loading the runner, the HTTP stack or the state-transfer code."""

    LAZY: ClassVar[dict[str, str]] = {
        "apply": "cli_apply",
        "catalog": "cli_catalog",
        "emulator": "cli_apply",
        "export": "cli_review",
        "force-unlock": "cli_apply",
        "git-setup": "cli_team",
        "merge-render": "cli_team",
        "prune": "cli_apply",
        "pull": "cli_team",
        "review": "cli_review",
        "state": "cli_state",
        "status": "cli_apply",
    }
    # The help of each, for ``--help`` to list them without importing them (and pydantic,
    # the state...); a test keeps each equal to the command's own.
    HELP: ClassVar[dict[str, str]] = {
        "apply": "Render what is new or changed, resuming anything already paid for.",
        "emulator": "Serve the local Azure-compatible batch avatar API on a loopback port.",
        "force-unlock": "Break a state lock left behind by a process that is gone.",
        "git-setup": "Set up the render merge driver in this clone.",
        "merge-render": "Git merge driver for render records: both jobs are kept.",
        "prune": "Forget removed videos and remove renders unused for --keep-days.",
        "pull": "Put videos in place from the video stores, with no Speech request.",
        "state": "Move the state between the local files and the manifest's remote backend.",
        "status": "Per video: recorded status, output present and intact, remote job state.",
    }

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None and name in self.HELP:  # listed as its help says, not loaded
                command = click.Command(name, help=self.HELP[name])
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.LAZY.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            from importlib import import_module

            for command in import_module(f".{module}", __package__).COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="avatarflow")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour output (NO_COLOR and TERM=dumb are honoured in auto).",
)
@click.pass_context
def cli(ctx: click.Context, color: str) -> None:
    """Plan and apply talking-avatar videos with Azure AI Speech batch synthesis."""
    ctx.obj = Context(color)


@cli.command()
@manifest_argument
@pass_ctx
def validate(ctx: Context, manifest: Path) -> int:
    """Load, render and check every video; no network."""
    from .validatememo import recall

    known = recall(manifest)  # the same files as the last validate that passed
    if known is None:
        from .workflow import validate

        built = validate(manifest)
        known = len(built.requests), built.warnings
    videos, warnings = known
    for warning in warnings:
        ctx.say(f"warning: {warning}", err=True)
    ctx.say(f"{manifest}: {videos} video(s) valid.")
    return EXIT_OK


@cli.command()
@manifest_argument
@click.argument("video_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@pass_ctx
def render(ctx: Context, manifest: Path, video_id: str, as_json: bool) -> int:
    """Print the rendered SSML and the exact request body of one video."""
    from .workflow import render_request

    request = render_request(manifest, video_id)
    if as_json:
        data = {
            "video": video_id,
            "synthesis_id": request.synthesis_id,
            "input_hash": request.content_hash,
            "input": request.rendered.content,
            "body": request.submit_body(),
        }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    click.echo(f"# video {video_id} → job {request.synthesis_id}")
    click.echo(f"# input hash {request.content_hash}")
    click.echo(f"# {request.rendered.input_kind} input:")
    click.echo(request.rendered.content)
    click.echo("# request body:")
    click.echo(json.dumps(request.submit_body(), indent=2, ensure_ascii=False, sort_keys=True))
    return EXIT_OK


@cli.command()
@manifest_argument
@emulator_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="How to print the plan: for a terminal, as JSON, or as Markdown for a PR comment.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.",
)
@click.option("--refresh", is_flag=True, help="Ask the service about the jobs the plan relies on.")
@out_option(
    "--out",
    "out_file",
    help="Save the plan to FILE; apply FILE then applies exactly it or refuses.",
)
@verify_option
@pass_ctx
def plan(
    ctx: Context,
    manifest: Path,
    emulator: bool,
    as_json: bool,
    output_format: str,
    detailed_exitcode: bool,
    refresh: bool,
    out_file: Path | None,
    verify: bool,
) -> int:
    """Show which videos apply would render, and why."""
    from .options import PlanOptions
    from .workflow import plan as make_plan
    from .workspace import target_name

    options = PlanOptions(emulator=emulator, verify=verify, refresh=refresh)
    result = make_plan(manifest, options)
    if out_file is not None:
        from .savedplan import save

        save(result.plan, manifest, target_name(emulator), out_file)
    for warning in result.warnings:
        ctx.err.print(f"warning: {warning}")
    from .display import pack_jobs, plan_json  # rich: not loaded by ``--help``

    if as_json or output_format == "json":
        click.echo(json.dumps(plan_json(result.plan, result.prices), indent=2, ensure_ascii=False))
    elif output_format == "markdown":
        from .planmd import plan_markdown

        packs = pack_jobs(result.plan, result.pack_max_inputs)
        click.echo(plan_markdown(result.plan, str(manifest), packs, result.prices))
    else:
        from .display import print_plan

        print_plan(ctx.out, result.plan, result.pack_max_inputs, result.prices)
    if detailed_exitcode and result.plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


@cli.command()
def schema() -> int:
    """Print the JSON Schema of the manifest."""
    from .schema import manifest_schema

    click.echo(json.dumps(manifest_schema(), indent=2))
    return EXIT_OK


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", default="my-course", show_default=True, help="Course name (job id prefix).")
@pass_ctx
def init(ctx: Context, directory: Path, name: str) -> int:
    """Scaffold a manifest, its schema, a template, git ignore and merge lines."""
    from .gitmerge import setup
    from .scaffold import next_steps, scaffold

    written = scaffold(directory, name)
    for path in written:
        ctx.err.print(f"wrote {path}", markup=False)
    attributes, configured = setup(directory)
    ctx.err.print(f"wrote {attributes}", markup=False)
    if configured:
        ctx.err.print("configured the render merge driver in this clone's git config")
    for line in next_steps(directory, written[0]):
        ctx.out.print(line, markup=False, highlight=False)
    ctx.out.print(
        "  then commit .avatarflow/ (each clone runs avatarflow git-setup once for the "
        "merge driver)",
        markup=False,
        highlight=False,
    )
    return EXIT_OK


def _print_error(text: str) -> None:
    """One line on stderr, whatever the message holds: no markup, no emoji, no newlines."""
    from .secrets import redact

    line = " ".join(part.strip() for part in redact(text).splitlines() if part.strip())
    if sys.stderr is not None and printed_as_is(line, markup=False):
        write_line(sys.stderr, line)  # as rich prints it, without importing rich
        return
    err = make_console(sys.stderr, "auto")
    err.print(line, markup=False, highlight=False, emoji=False)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error family maps to its exit code here and only here."""
    args = sys.argv[1:] if argv is None else argv
    try:
        with terminated_on_sigterm():
            result = cli.main(args=args, prog_name="avatarflow", standalone_mode=False)
    except Terminated:
        make_console(sys.stderr, "auto").print("Terminated.")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        make_console(sys.stderr, "auto").print("Interrupted.")
        return EXIT_INTERRUPTED
    except click.exceptions.Abort as exc:  # click's word for a KeyboardInterrupt inside it
        if isinstance(exc.__cause__, Terminated):
            make_console(sys.stderr, "auto").print("Terminated.")
            return EXIT_TERMINATED
        make_console(sys.stderr, "auto").print("Aborted.")
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        # A group given no command: its help, as ``--help`` prints it, not an error.
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return EXIT_OK
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _print_error(f"Error: {exc.format_message()}{hint}")
        return EXIT_ERROR
    except click.ClickException as exc:
        _print_error(f"Error: {exc.format_message()}")
        return EXIT_ERROR
    except AvatarflowError as exc:
        _print_error(f"Error: {exc}")
        return EXIT_ERROR
    except Exception as exc:  # a bug: keep the traceback, but out of the user's way
        _print_error(f"Internal error: {type(exc).__name__}: {exc}")
        from . import crashlog  # only a crash needs it

        log = crashlog.write(exc, args)
        _print_error(f"Check the log at {log}" if log else "(the crash log could not be written)")
        return EXIT_CRASH
    return int(result) if isinstance(result, int) else EXIT_OK
