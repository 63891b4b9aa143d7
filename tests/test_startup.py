"""What a command imports before it does any work: ``--help`` answers without click,
``validate`` without rich, the HTTP stack or the state."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from avatarflow import entry
from avatarflow.cli import _LazyGroup, cli
from avatarflow.display import make_console
from avatarflow.plainout import printed_as_is

from .helpers import MANIFEST, course

# Runs the console script's entry point, then names what it imported (on stderr: the
# command's own output stays alone on stdout).
_PROBE = """
import sys
from avatarflow.entry import main
code = main(sys.argv[2:])
print(code, ",".join(m for m in sys.argv[1].split(",") if m in sys.modules) or "-",
      file=sys.stderr)
"""
_HEAVY = (
    "click",
    "pydantic",
    "jinja2",
    "yaml",
    "rich",
    "httpx",
    "avatarflow.state",
    "avatarflow.manifest",
    "avatarflow.workflow",
    "avatarflow.planner",
    "avatarflow.secrets",
)
# Loaded by other commands only: validate prints plain lines, sends nothing, packs
# nothing and reads no state.
_NOT_FOR_VALIDATE = (
    "rich",
    "avatarflow.display",
    "avatarflow.worddiff",
    "httpx",
    "tenacity",
    "avatarflow.client",
    "avatarflow.runner",
    "avatarflow.state",
    "avatarflow.stores",
    "avatarflow.packing",
    "avatarflow.destination",
    "avatarflow.storage",
    "avatarflow.secrets",
)
_CLICK = "import sys; from avatarflow.cli import main; main(sys.argv[1:])"
REGENERATE = 'python -c "from avatarflow.entry import write_help; write_help()"'


def _run(code: str, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )


def _entry(*args: str, watch: tuple[str, ...], columns: int | None = None) -> tuple[str, str]:
    """stdout of the entry point run on ``args``, and the exit code and which of
    ``watch`` it imported."""
    done = _run(_PROBE, ",".join(watch), *args, columns=columns)
    return done.stdout, done.stderr.strip().splitlines()[-1]


def _click_prints(*args: str, columns: int | None = None) -> str:
    done = _run(_CLICK, *args, columns=columns)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stored_help_is_what_click_prints() -> None:
    printed = _click_prints("--help", columns=entry.HELP_COLUMNS)
    with open(entry.HELP_FILE, encoding="utf-8") as file:
        stored = file.read()
    assert stored == printed, f"{entry.HELP_FILE} is stale: write it again with {REGENERATE}"
    assert _click_prints("-h", columns=entry.HELP_COLUMNS) == printed
    assert _click_prints("--version") == entry.VERSION_LINE


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_help_and_version_import_neither_click_nor_pydantic(args: list[str]) -> None:
    out, status = _entry(*args, watch=_HEAVY)
    assert status == "0 -"
    assert out == _click_prints(*args)  # a pipe: 80 columns, as for the stored text
    assert ("Commands:" in out and "validate" in out) or out == entry.VERSION_LINE


def test_no_command_prints_the_help_and_succeeds() -> None:
    out, status = _entry(watch=_HEAVY)
    assert status == "0 -"
    assert out == _click_prints("--help")
    narrow, status = _entry(watch=("click",), columns=60)  # click's own answer
    assert status == "0 click"
    assert narrow == _click_prints("--help", columns=60)
    assert narrow.startswith("Usage: avatarflow [OPTIONS] COMMAND")


def test_a_group_given_no_command_prints_its_help_and_succeeds() -> None:
    out, status = _entry("state", watch=("click",))
    assert status == "0 click"
    assert out == _click_prints("state", "--help")
    assert out.startswith("Usage: avatarflow state [OPTIONS] COMMAND")


def test_a_wider_terminal_gets_the_stored_help_too() -> None:
    out, status = _entry("--help", watch=_HEAVY, columns=200)
    assert status == "0 -"
    assert out == _click_prints("--help", columns=200)


def test_a_narrower_terminal_gets_click_s_own_wrapping() -> None:
    out, status = _entry("--help", watch=("click",), columns=60)
    assert status == "0 click"
    assert out == _click_prints("--help", columns=60)
    assert max(len(line) for line in out.splitlines()) <= 58


@pytest.mark.parametrize("columns", [None, "60", "80", "200", "0", "-3", "wide"])
def test_the_terminal_is_measured_as_click_measures_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert entry.terminal_columns() == shutil.get_terminal_size().columns


def test_any_other_command_line_goes_to_click() -> None:
    out, status = _entry("--color", "never", "--help", watch=("click",))
    assert status == "0 click"
    assert out == _click_prints("--help")


def test_validate_imports_neither_rich_nor_the_http_stack_nor_the_state(tmp_path: Path) -> None:
    manifest = course(tmp_path, MANIFEST.split("  - id: b")[0])  # video a alone
    out, status = _entry("validate", str(manifest), watch=("click", *_NOT_FOR_VALIDATE))
    assert out == f"{manifest}: 1 video(s) valid.\n"
    assert status == "0 click"


def test_a_bad_manifest_is_reported_without_rich(tmp_path: Path) -> None:
    manifest = course(tmp_path, "version: 1\nname: demo\nvidoes: []\n")
    done = _run(_PROBE, "rich", "validate", str(manifest))
    assert done.stdout == ""
    error, status = done.stderr.strip().splitlines()
    assert error.startswith("Error: course.yaml:3: vidoes: unknown key"), error
    assert status == "1 -"


# Lines rich prints as given, and lines it changes (markup, emoji codes, tabs, control
# characters): the first kind is written straight, the second goes through rich.
_PLAIN = [
    "/tmp/a b/course.yaml: 1 video(s) valid.",
    "warning: custom voice 'x' is not in the voice list; it is sent as given",
    "x" * 300,  # longer than any terminal: rich's consoles here never wrap
    "日本語のテキスト " * 30,
    "  spaces around  ",
    "é ü ß — … → 😀",
    "a:b c:d",
    "{braces} <angles> &amp; *stars* http://host/path?a=1#f a]b 0x1F 3.5 True",
    "",
]
_CHANGED = ["[bold]x[/]", "a [red]b", ":smile: there", "tab\there", "bell\a", "cr\rx", "a\nb"]


@pytest.mark.parametrize("color", ["never", "always", "auto"])
def test_plain_lines_are_printed_as_rich_prints_them(color: str) -> None:
    for text in _PLAIN:
        assert printed_as_is(text), text
        printed = io.StringIO()
        make_console(printed, color).print(text)
        assert printed.getvalue() == text + "\n", text
    for text in _CHANGED:
        assert not printed_as_is(text), text
    assert printed_as_is("[not markup] :x:", markup=False)
    assert not printed_as_is("tab\there", markup=False)


def test_help_lists_each_lazy_command_with_its_own_help() -> None:
    ctx = click.Context(cli)
    for name, text in _LazyGroup.HELP.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.help is not None and command.help.split("\n\n")[0] == text, name


# An exit handler registered before the command runs after the command's own (they run
# last registered first): it sees the collector as the interpreter's last steps find it.
_AT_EXIT = """
import atexit, gc, sys
def seen():
    print("frozen", gc.get_freeze_count() > 0, "collector", gc.isenabled(), file=sys.stderr)
atexit.register(seen)
from avatarflow.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_command_leaves_its_objects_unscanned_at_exit(tmp_path: Path) -> None:
    done = _run(_AT_EXIT, "--color", "never", "validate", str(course(tmp_path, MANIFEST)))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "frozen True collector False"


def test_the_stored_answers_leave_the_collector_alone() -> None:
    done = _run(_AT_EXIT, "--version")
    assert done.stdout.startswith("avatarflow, version ")
    assert done.stderr.strip() == "frozen False collector True"
