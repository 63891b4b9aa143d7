"""Inputs that are legal but enormous, or hostile: bounded, located, and never paid for.

Template bombs stop with an error naming the template and the video (the time and memory
they take are in ``benchmarks/bench_template_bomb.py``, not asserted here); a byte-order
mark changes no request; ids equal under case folding are refused; a catalogue far
larger than the alias budget loads, while alias bombs are still refused (test_bad_input).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarflow import yamlsafe

from .helpers import MANIFEST, TEMPLATE, course, make_tree, open_course, run_cli

BOMBS = {
    "repeat": ('{{ "x" * 10**9 }}', "would be larger than 1,000,000 characters"),
    "nested-loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "loops ran more than 1,000,000 rounds",
    ),
    "output": (
        '{% for i in range(100000) %}{{ "many words " * 90 }}{% endfor %}',
        "output passed 1,000,000 characters",
    ),
    "doubling": (
        '{% set ns = namespace(s="ab") %}{% for i in range(64) %}'
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "namespace value 's' would be larger than 1,000,000",
    ),
    "recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "more than 100,000 calls",
    ),
    "width": ('{{ "x"|center(10**9) }}', "a width of 1,000,000,000"),
    "power": ("{{ 7 ** (10 ** 7) }}", "bits"),
}


def with_template(root: Path, template: str) -> Path:
    manifest = course(root)
    make_tree(root, {"templates/narration.ssml.j2": template})
    return manifest


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_template_bomb_is_a_located_error_naming_the_video(tmp_path: Path, bomb: str) -> None:
    source, words = BOMBS[bomb]
    manifest = with_template(tmp_path, TEMPLATE.replace("{{ text }}", source))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_cli("plan", str(manifest))
    assert result.code == 1, result.out + result.err
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("Error: templates/narration.ssml.j2:"), line
    assert "(video a)" in line and words in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_narration_bomb_is_located_in_the_manifest(tmp_path: Path) -> None:
    text = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    manifest = course(tmp_path, MANIFEST.replace("text: Hello from video b.", f"text: '{text}'"))
    result = run_cli("plan", str(manifest))
    assert result.code == 1
    assert "course.yaml:13: videos[1].text: in narration:" in result.err, result.err
    assert "more than 1,000,000 rounds" in result.err


def test_ordinary_loops_macros_and_filters_still_render(tmp_path: Path) -> None:
    template = TEMPLATE.replace(
        "{{ text }}",
        "{% macro s(t) %}<s>{{ t }}</s>{% endmacro %}"
        "{% for word in text.split() if word %}{{ s(word) }}{% endfor %}"
        "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}"
        '{{ "ab"|center(6) }}{{ ["a", "b"]|join(", ") }}',
    )
    manifest = with_template(tmp_path, template)
    content = open_course(manifest).request("a").rendered.content
    assert "<s>Hello</s><s>from</s>" in content and "1/3 2/3 3/3" in content
    assert "  ab  a, b" in content


def test_a_byte_order_mark_changes_no_request(tmp_path: Path) -> None:
    manifest = course(
        tmp_path, MANIFEST.replace("text: Hello from video b.", "text_file: scripts/b.txt")
    )
    make_tree(tmp_path, {"scripts/b.txt": "Hello from a script.\n"})
    before = {r.video_id: r.content_hash for r in open_course(manifest).requests}
    script = tmp_path / "scripts" / "b.txt"
    script.write_bytes(b"\xef\xbb\xbf" + script.read_bytes())
    template = tmp_path / "templates" / "narration.ssml.j2"
    template.write_bytes(b"\xef\xbb\xbf" + template.read_bytes())
    project = open_course(manifest)
    after = {r.video_id: r.content_hash for r in project.requests}
    assert after == before
    assert "\ufeff" not in project.request("b").rendered.content


def test_ids_equal_under_case_folding_are_refused(tmp_path: Path) -> None:
    manifest = course(tmp_path, MANIFEST.replace("id: b", "id: A"))
    result = run_cli("plan", str(manifest))
    assert result.code == 1
    assert (
        "course.yaml:12: videos[1].id: video id 'A' differs from 'a' (videos[0]) only by case"
        in result.err
    ), result.err


def test_a_catalogue_far_past_the_alias_budget_loads(tmp_path: Path) -> None:
    count = 50_000
    videos = "".join(
        f"  - id: v{i:05d}\n    text: Hello number {i}.\n    avatar: {{style: casual-sitting}}\n"
        for i in range(count)
    )
    text = "version: 1\nname: big\nvideos:\n" + videos
    loaded = yamlsafe.load_yaml(text, "course.yaml")
    assert len(loaded.data["videos"]) == count
    assert loaded.lines.get(("videos", count - 1, "id")) == 3 + 3 * (count - 1) + 1
    # Its own nodes are many times the alias budget; aliases still get only the budget.
    assert 4 * count > yamlsafe.MAX_NODES
