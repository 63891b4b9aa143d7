"""The program's entry point: ``--help`` and ``--version`` answered without click.

The interpreter and click's import take most of 0.1 s, so ``avatarflow --help`` prints
the top-level help as click itself printed it, kept in ``data/help.txt``; every other
command line goes to click (:func:`avatarflow.cli.main`), and so does ``--help`` on a
terminal narrower than the text was rendered for. ``tests/test_startup.py`` fails as soon
as the file differs from what click prints; :func:`write_help` writes it again.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

from . import __version__

# click wraps help at min(columns, 80) - 2: the text rendered at 80 is the one for any
# terminal at least that wide, and for a pipe (80 columns unless COLUMNS says otherwise).
HELP_COLUMNS = 80
HELP_FILE = os.path.join(os.path.dirname(__file__), "data", "help.txt")
VERSION_LINE = f"avatarflow, version {__version__}\n"  # click's version_option wording


def stored_answer(args: list[str]) -> str | None:
    """What click would print for ``args``, when it is known without click; else None."""
    if args == ["--version"]:
        return VERSION_LINE
    # No command at all is a request for the help, as click answers it (exit 0).
    if args not in ([], ["--help"], ["-h"]) or terminal_columns() < HELP_COLUMNS:
        return None
    try:
        with open(HELP_FILE, encoding="utf-8") as file:
            text = file.read()
    except OSError:  # an installation without its data files: click still knows
        return None
    # click re-encodes output for a stream it finds misconfigured; ASCII reads the same
    # on any stream, so anything else is left to it.
    return text if text.isascii() else None


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, which click wraps by, without the imports
    of shutil (``re``, the compressors: a third of the time ``--help`` takes)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80  # shutil's fallback: not a terminal
    return size.columns or 80


def validated(args: list[str]) -> bool:
    """``validate MANIFEST`` answered from the memo of its last pass, when every file it
    read is as it was and its lines print as they are (:mod:`avatarflow.validatememo`)."""
    if len(args) != 2 or args[0] != "validate" or args[1].startswith("-"):
        return False
    from pathlib import Path

    from .plainout import printed_as_is, write_line
    from .validatememo import recall

    manifest = Path(args[1])  # as click hands it to the command
    known = recall(manifest)
    if known is None or sys.stdout is None or sys.stderr is None:
        return False
    videos, warnings = known
    lines = [f"warning: {warning}" for warning in warnings]
    done = f"{manifest}: {videos} video(s) valid."
    if not all(printed_as_is(line) for line in [*lines, done]):
        return False
    for line in lines:
        write_line(sys.stderr, line)
    write_line(sys.stdout, done)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the command line (the ``avatarflow`` console script and ``python -m``)."""
    args = sys.argv[1:] if argv is None else argv
    if validated(args):
        return 0
    text = stored_answer(args) if sys.stdout is not None else None
    if text is None:
        prepare_process()
        from .cli import main as run  # click and the commands

        return run(args)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def prepare_process() -> None:
    """What only this process's time depends on: answers, files and exit codes are the
    same without it. At exit, the interpreter's last collections scan every object
    still alive (0.2 s after a plan of 10,000 videos, a sixth of its time); frozen, they
    are not scanned. Exit handlers still run, and nothing here rests on the collector
    at exit (files are written and closed by the time a command returns)."""
    atexit.unregister(_freeze_at_exit)  # once per process: tests run many commands in one
    atexit.register(_freeze_at_exit)


def _freeze_at_exit() -> None:
    gc.disable()
    gc.freeze()


def write_help() -> None:
    """Write ``data/help.txt`` again from what click prints now (after a command, an
    option or a help text changed)."""
    import contextlib
    import io
    from pathlib import Path

    from .atomicfile import write_bytes
    from .cli import main as run

    printed = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        with contextlib.redirect_stdout(printed):
            run(["--help"])
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    write_bytes(Path(HELP_FILE), printed.getvalue().encode("utf-8"))
