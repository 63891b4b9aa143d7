"""``avatarflow init``: a minimal, valid course to start from."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

MANIFEST = """\
# yaml-language-server: $schema={schema}
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
    ".avatarflow/*/emulator/",
    ".avatarflow/**/.*.avatarflow-tmp-*",
]


SCHEMA_FILE = "manifest.schema.json"


def scaffold(directory: Path, name: str) -> list[Path]:
    """Write course.yaml, its JSON Schema (so that editors check it offline),
    templates/narration.ssml.j2 and .gitignore lines; never overwrite."""
    import json

    from .schema import manifest_schema

    manifest = directory / "course.yaml"
    schema = directory / SCHEMA_FILE
    template = directory / "templates" / "narration.ssml.j2"
    for path in (manifest, schema, template):
        if path.exists():
            raise ConfigError(f"{path} already exists; init does not overwrite files")
    template.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(MANIFEST.format(name=name, schema=SCHEMA_FILE), "utf-8")
    schema.write_text(json.dumps(manifest_schema(), indent=2) + "\n", "utf-8")
    template.write_text(TEMPLATE, "utf-8")
    gitignore = directory / ".gitignore"
    existing = gitignore.read_text("utf-8").splitlines() if gitignore.exists() else []
    missing = [line for line in GITIGNORE_LINES if line not in existing]
    if missing:
        with gitignore.open("a", encoding="utf-8") as handle:
            if existing and existing[-1].strip():
                handle.write("\n")
            handle.write("\n".join(missing) + "\n")
    return [manifest, schema, template, gitignore]


def next_steps(directory: Path, manifest: Path) -> list[str]:
    """What to do after ``init``, as commands to copy."""
    inside = [f"cd {directory}"] if str(directory) not in ("", ".") else []
    name = manifest.name
    return [
        "Next steps:",
        *(f"  {line}" for line in inside),
        f"  1. edit {name} and templates/narration.ssml.j2 "
        f"(editors check {name} against {SCHEMA_FILE})",
        f"  2. avatarflow validate {name}",
        f"  3. avatarflow apply --emulator {name}    # drafts on the embedded emulator, free",
        "  4. export AZURE_SPEECH_KEY=... AZURE_SPEECH_REGION=westeurope",
        f"  5. avatarflow plan {name}    # what Azure would render, and its cost",
        f"  6. avatarflow apply {name}",
    ]
