"""Benchmark of template bombs (not a test): how long and how much memory until refused.

Each bomb replaces the narration template of a one-video course; ``avatarflow plan``
runs in a fresh process and must end with exit 1 and the budget's error (see
``avatarflow/templatebudget.py``). The ``baseline`` row is the same course with its
ordinary template: what any plan costs, bomb or not.

    python benchmarks/bench_template_bomb.py
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

from measure import avatarflow, machine, run_measured, table

MANIFEST = """\
version: 1
name: bomb
defaults:
  template: narration.ssml.j2
  voice: en-US-AvaMultilingualNeural
  avatar: {character: lisa, style: graceful-sitting}
videos:
  - id: v1
    text: Hello there.
"""
TEMPLATE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{{{ video.voice }}}}">{body}</voice>
</speak>
"""
BOMBS = {
    "baseline": "{{ text }}",
    "repeat 10**9": '{{ "x" * 10**9 }}',
    "nested range(100000)": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "output 10**7 chars": '{% for i in range(100000) %}{{ "x" * 100 }}{% endfor %}',
    "namespace doubling": (
        '{% set ns = namespace(s="ab") %}{% for i in range(64) %}'
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "macro recursion 2**40": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "center(10**9)": '{{ "x"|center(10**9) }}',
    "join 10**10": '{{ range(100000)|join("x" * 100000) }}',
}


def error_of(command: list[str], cwd: Path) -> str:
    """The budget's words: the error line without its location and video."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    line = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "(none)"
    words = re.sub(r"^Error: templates/narration\.ssml\.j2(:\d+)?: ", "", line)
    return words.removesuffix(" (video v1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in BOMBS.items():
            root = Path(tmp) / name.replace(" ", "_").replace("*", "")
            (root / "templates").mkdir(parents=True)
            (root / "course.yaml").write_text(MANIFEST)
            (root / "templates" / "narration.ssml.j2").write_text(TEMPLATE.format(body=body))
            command = avatarflow("plan", str(root / "course.yaml"))
            measured = run_measured(command, env={"AVATARFLOW_CACHE_DIR": str(root / "cache")})
            error = error_of(command, root) if measured.returncode else ""
            rows.append([name, measured.returncode, measured.seconds, measured.peak_rss_mb, error])
    print(f"template bombs ({machine()})")
    print(table(["template", "exit", "s", "peak RSS MiB", "error"], rows))


if __name__ == "__main__":
    main()
