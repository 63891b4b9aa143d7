"""``avatarflow init``: a minimal, valid course to start from."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

MANIFEST = """\
# yaml-language-server: $schema=https://avatarflow.dev/schema/manifest-v1.json
version: 1
name: {name}
output_dir: build/videos
defaults:
  template: narration.ssml.j2
  voice: en-US-AvaMultilingualNeural
  avatar: {{character: lisa, style: graceful-sitting}}
  video: {{format: mp4, codec: h264, subtitles: soft_embedded}}
videos:
  - id: 01-hello
    vars: {{title: Hello}}
    text: Hello, and welcome to this course.
"""

TEMPLATE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    <s>{{ title }}.</s>
    {{ text }}
  </voice>
</speak>
"""

GITIGNORE_LINES = [
    "# avatarflow: rendered videos, locks, caches and emulator data stay local",
    "build/",
    ".avatarflow/**/state.lock",
    ".avatarflow/**/cache/",
    ".avatarflow/*/emulator/",
    ".avatarflow/**/.*.avatarflow-tmp-*",
]


def scaffold(directory: Path, name: str) -> list[Path]:
    """Write course.yaml, templates/narration.ssml.j2 and .gitignore lines; never overwrite."""
    manifest = directory / "course.yaml"
    template = directory / "templates" / "narration.ssml.j2"
    for path in (manifest, template):
        if path.exists():
            raise ConfigError(f"{path} already exists; init does not overwrite files")
    template.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(MANIFEST.format(name=name), "utf-8")
    template.write_text(TEMPLATE, "utf-8")
    gitignore = directory / ".gitignore"
    existing = gitignore.read_text("utf-8").splitlines() if gitignore.exists() else []
    missing = [line for line in GITIGNORE_LINES if line not in existing]
    if missing:
        with gitignore.open("a", encoding="utf-8") as handle:
            if existing and existing[-1].strip():
                handle.write("\n")
            handle.write("\n".join(missing) + "\n")
    return [manifest, template, gitignore]
