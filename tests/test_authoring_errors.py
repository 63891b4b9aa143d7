"""Authoring mistakes: each is one line naming the file, the line and what was meant."""

from __future__ import annotations

from pathlib import Path

from .helpers import MANIFEST, Result, course, open_course, run_cli

GESTURE_TEMPLATE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    <bookmark mark="gesture.{{ gesture }}"/>{{ text }}
  </voice>
</speak>
"""


def one_line(result: Result) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.err and result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def validate(manifest: Path) -> str:
    return one_line(run_cli("validate", str(manifest)))


def test_vars_using_other_vars_are_rendered_never_spoken(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "  vars: {title: Intro}\n",
        "  vars: {course: Git for Teams, title: 'Welcome to {{ course }}', "
        "heading: '{{ title }}!'}\n",
    ).replace("Hello from video a.", "'{{ heading }}'")
    project = open_course(course(tmp_path, text))
    content = project.request("a").rendered.content
    assert "<s>Welcome to Git for Teams.</s>" in content
    assert "Welcome to Git for Teams!" in content and "{{" not in content


def test_a_var_using_an_undefined_variable_is_refused_at_its_line(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "  - id: b\n", "  - id: b\n    vars:\n      course: Git\n      title: '{{ cours }} 101'\n"
    )
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:15: videos[1].vars.title: var 'title' uses undefined variable "
        "'cours' (did you mean 'course'?)"
    )


def test_vars_that_use_each_other_are_refused(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "  vars: {title: Intro}\n", "  vars:\n    title: '{{ sub }}'\n    sub: '{{ title }}'\n"
    )
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:10: defaults.vars.sub: vars sub, title use each other in a circle"
    )


def test_indented_less_than_the_keys_above_says_so(tmp_path: Path) -> None:
    text = MANIFEST.replace("    text: Hello from video b.\n", "    text: Hi\n   vars: {}\n")
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:14: `vars` is indented less than the keys above it "
        "(3 spaces; `text` on line 13 has 4)"
    )


def test_a_list_item_indented_less_says_so(tmp_path: Path) -> None:
    text = MANIFEST.replace("  - id: c\n", " - id: c\n")
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:14: the list item on this line is indented less than the items "
        "above it (1 space; line 12 has 2)"
    )


def test_a_colon_inside_a_value_asks_for_quotes(tmp_path: Path) -> None:
    text = MANIFEST.replace("Hello from video c.", "Note: quotes needed")
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:15: the value of `text` contains ': '; put the value in quotes"
    )


def test_an_error_inside_a_narration_file_names_that_file_and_line(tmp_path: Path) -> None:
    text = MANIFEST.replace("    text: Hello from video b.\n", "    text_file: scripts/b.txt\n")
    manifest = course(
        tmp_path,
        text,
        scripts__b_txt="First line.\nThe {{ titel }} of {% if true %}b{% endif %}.\n",
    )
    (manifest.parent / "scripts/b_txt").rename(manifest.parent / "scripts/b.txt")
    assert validate(manifest) == (
        "Error: scripts/b.txt:2: in narration: undefined variable: 'titel' is undefined "
        "(did you mean 'title'?)"
    )
    (manifest.parent / "scripts/b.txt").write_text("One.\nTwo.\n{% if %}\n", "utf-8")
    line = validate(manifest)
    assert line.startswith("Error: scripts/b.txt:3: template syntax error in narration: ")


def test_a_missing_narration_file_suggests_the_nearest(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "    text: Hello from video b.\n", "    text_file: script/02-comits.txt\n"
    )
    manifest = course(tmp_path, text)
    (manifest.parent / "scripts").mkdir()
    (manifest.parent / "scripts" / "02-commits.txt").write_text("Commits.\n", "utf-8")
    assert validate(manifest) == (
        "Error: course.yaml:13: videos[1].text_file: text file 'script/02-comits.txt' not "
        "found (did you mean 'scripts/02-commits.txt'?)"
    )


def test_a_templated_narration_path_with_an_unknown_variable(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "    text: Hello from video b.\n", "    text_file: 'scripts/{{ lcoale }}/b.txt'\n"
    ).replace("  vars: {title: Intro}\n", "  vars: {title: Intro, locale: en-US}\n")
    assert validate(course(tmp_path, text)) == (
        "Error: course.yaml:13: videos[1].text_file: in text_file: undefined variable: "
        "'lcoale' is undefined (did you mean 'locale'?)"
    )


def test_render_of_an_unknown_id_suggests_the_nearest(tmp_path: Path) -> None:
    line = one_line(run_cli("render", str(course(tmp_path)), "a1"))
    assert line == (
        "Error: course.yaml:9: videos: no video 'a1' in the manifest (did you mean 'a'?); "
        "videos: a, b, c"
    )


def test_an_unknown_gesture_points_at_the_gesture_line(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "  - id: b\n    text: Hello from video b.\n",
        "  - id: b\n    template: gesture.ssml.j2\n    text: Hello from video b.\n"
        "    vars:\n      title: Intro\n      gesture: wave-left-9\n",
    )
    manifest = course(tmp_path, text, templates__gesture_ssml_j2=GESTURE_TEMPLATE)
    folder = manifest.parent / "templates"
    (folder / "gesture_ssml_j2").rename(folder / "gesture.ssml.j2")
    line = validate(manifest)
    assert line.startswith(
        "Error: course.yaml:17: videos[1].vars.gesture: unknown gesture 'wave-left-9' for "
        "lisa/graceful-sitting"
    ), line
