"""Synthetic course catalogues for the benchmarks: N videos, realistic narration.

A generated course looks like a real one scaled up: several templates (plain narration,
a gesture template, a chaptered lesson), narrations of 40–200 words (some inline, some
in ``text_file`` scripts), per-video overrides of voice, avatar style, video settings
and template variables, and a few ``plain_text`` and inline ``ssml`` videos.

``record_rendered`` then writes the state as if every video had been rendered and
downloaded, through the library's own state writes, with a small output file per video.
Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

from avatarflow.build import build_requests
from avatarflow.statcache import sha256_file
from avatarflow.state import OutputFile, StateRecord, utc_now
from avatarflow.stores import load_state, open_store
from avatarflow.workflow import open_manifest
from avatarflow.workspace import TargetName

NAME = "catalogue"
OUTPUT_BYTES = 2048  # a small stand-in for the video file
INLINE_BUDGET = 3_000_000  # bytes of inline narration in one manifest

_WORDS = [
    "the",
    "a",
    "team",
    "branch",
    "commit",
    "merge",
    "history",
    "review",
    "change",
    "file",
    "code",
    "project",
    "test",
    "build",
    "release",
    "feature",
    "fix",
    "version",
    "remote",
    "local",
    "history",
    "log",
    "push",
    "pull",
    "request",
    "conflict",
    "resolve",
    "rebase",
    "tag",
    "stash",
    "diff",
    "status",
    "track",
    "stage",
    "clean",
    "reset",
    "revert",
    "cherry",
    "pick",
    "workflow",
    "pipeline",
    "deploy",
    "server",
    "client",
    "cache",
    "index",
    "object",
    "tree",
    "blob",
    "hash",
    "signature",
    "we",
    "you",
    "they",
    "it",
    "this",
    "that",
    "next",
    "first",
    "then",
    "finally",
    "always",
    "never",
    "often",
    "carefully",
    "quickly",
    "simply",
    "together",
    "safely",
    "shared",
    "small",
    "large",
    "new",
    "old",
    "clear",
    "simple",
    "important",
    "is",
    "are",
    "was",
    "will",
    "can",
    "should",
    "must",
    "may",
    "keeps",
    "shows",
    "makes",
    "helps",
    "lets",
    "takes",
    "gives",
    "moves",
    "learn",
    "see",
    "try",
    "use",
    "write",
    "read",
    "open",
    "save",
    "share",
    "run",
    "check",
    "compare",
    "choose",
    "combine",
]

NARRATION = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    <s>{{ title }}.</s>
    <break time="400ms"/>
    {{ text }}
  </voice>
</speak>
"""

GESTURE = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis">
  <voice name="{{ video.voice }}">
    <s>{{ title }}.</s>
    <bookmark mark="gesture.{{ gesture }}"/>
    {{ text }}
  </voice>
</speak>
"""

LESSON = """\
<speak version="1.0" xml:lang="en-US" xmlns="http://www.w3.org/2001/10/synthesis"
       xmlns:mstts="http://www.w3.org/2001/mstts">
  <voice name="{{ video.voice }}">
    <mstts:express-as style="{{ mood | default('friendly') }}">
      <s>{{ course }}, chapter {{ chapter }}: {{ title }}.</s>
      <break time="300ms"/>
      {{ text }}
      {% if recap %}<break time="500ms"/><s>In short: {{ recap }}.</s>{% endif %}
    </mstts:express-as>
  </voice>
</speak>
"""

TEMPLATES = {
    "narration.ssml.j2": NARRATION,
    "gesture.ssml.j2": GESTURE,
    "lesson.ssml.j2": LESSON,
}
VOICES = (
    "en-US-AvaMultilingualNeural",
    "en-US-AndrewNeural",
    "en-US-JennyNeural",
    "en-US-GuyNeural",
)
# (character, style, gesture) triples the catalogue documents.
AVATARS = (
    ("lisa", "graceful-sitting", "wave-left-1"),
    ("lisa", "technical-sitting", "show-left-1"),
    ("lisa", "casual-sitting", "show-front-1"),
    ("harry", "business", "hello"),
    ("jeff", "formal", "thanks"),
    ("max", "business", "click-the-link"),
    ("meg", "formal", "click-the-link"),
)


def narration(rng: random.Random, words: int) -> str:
    """``words`` words in sentences of 6–16 words, with a template variable now and then."""
    out: list[str] = []
    while len(out) < words:
        length = min(rng.randint(6, 16), words - len(out))
        sentence = [rng.choice(_WORDS) for _ in range(length)]
        if rng.random() < 0.1:
            sentence.insert(0, "In {{ course }},")
        sentence[0] = sentence[0][:1].upper() + sentence[0][1:]
        out.extend(sentence[:-1])
        out.append(sentence[-1] + ".")
    lines = [" ".join(out[i : i + 14]) for i in range(0, len(out), 14)]
    return "\n".join(lines) + "\n"


def _video(
    rng: random.Random, index: int, root: Path, inline: float, words_range: tuple[int, int]
) -> dict[str, object]:
    vid = f"{index // 20 + 1:04d}-{index % 20 + 1:02d}-lesson"
    entry: dict[str, object] = {"id": vid}
    words = rng.randint(*words_range)
    text = narration(rng, words)
    character, style, gesture = rng.choice(AVATARS)
    roll = rng.random()
    if roll < 0.03:  # inline SSML, written by hand
        voice = rng.choice(VOICES)
        entry["ssml"] = (
            "<speak version='1.0' xml:lang='en-US' "
            "xmlns='http://www.w3.org/2001/10/synthesis'>"
            f"<voice name='{voice}'>{text.replace('{{ course }}', 'this course')}</voice>"
            "</speak>"
        )
        return entry
    if roll < 0.08:  # plain text
        entry["input_kind"] = "plain_text"
        entry["synthesis"] = {"rate": rng.choice(["+5%", "-5%", "+10%"])}
    else:
        template = rng.choices(list(TEMPLATES), weights=(6, 2, 3))[0]
        if template != "narration.ssml.j2":
            entry["template"] = template
        chapter_vars: dict[str, object] = {"title": f"Lesson {index + 1}: {rng.choice(_WORDS)}"}
        if template == "gesture.ssml.j2":
            chapter_vars["gesture"] = gesture
            entry["avatar"] = {"character": character, "style": style}
        if template == "lesson.ssml.j2":
            chapter_vars["chapter"] = index // 20 + 1
            chapter_vars["recap"] = " ".join(rng.choice(_WORDS) for _ in range(6))
            if rng.random() < 0.3:
                chapter_vars["mood"] = "cheerful"
        entry["vars"] = chapter_vars
    if "avatar" not in entry and rng.random() < 0.3:
        entry["avatar"] = {"character": character, "style": style}
    if rng.random() < 0.25:
        entry["voice"] = rng.choice(VOICES)
    if rng.random() < 0.15:
        entry["video"] = {"background_color": rng.choice(["#1E3A5FFF", "#F0F0F0FF"])}
    if rng.random() < 0.05:
        entry["description"] = f"Catalogue video {index + 1}"
    if rng.random() >= inline:  # narration kept in its own script file
        rel = f"scripts/{vid}.txt"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        entry["text_file"] = rel
    else:
        entry["text"] = text
    return entry


def generate(
    root: Path,
    n: int,
    *,
    seed: int = 7,
    api_version: str | None = None,
    words: tuple[int, int] = (40, 200),
) -> Path:
    """Write a course of ``n`` videos under ``root``; return the manifest path.

    ``words`` bounds the narration length (40–200 words: 15 s to 80 s of video)."""
    rng = random.Random(seed)
    # The loader refuses manifests over 5 MB: a big catalogue keeps more scripts in files.
    inline = min(0.8, INLINE_BUDGET / (n * 900))
    root.mkdir(parents=True, exist_ok=True)
    for name, text in TEMPLATES.items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    manifest: dict[str, object] = {
        "version": 1,
        "name": NAME,
        "output_dir": "build/videos",
        "templates_dir": "templates",
        "defaults": {
            "template": "narration.ssml.j2",
            "voice": VOICES[0],
            "avatar": {"character": "lisa", "style": "graceful-sitting"},
            "video": {
                "format": "mp4",
                "codec": "h264",
                "subtitles": "soft_embedded",
                "background_color": "#FFFFFFFF",
            },
            "ttl_hours": 168,
            "vars": {"course": "Git for Teams", "presenter": "Lisa", "recap": ""},
        },
        "videos": [_video(rng, i, root, inline, words) for i in range(n)],
    }
    if api_version:
        manifest["service"] = {"api_version": api_version}
    path = root / "course.yaml"
    path.write_text("".join(_yaml(manifest, 0)), "utf-8")
    return path


def _scalar(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON scalar is a YAML scalar


def _yaml(value: object, indent: int) -> list[str]:
    """Block-style YAML as people write it; narrations as literal blocks."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:\n")
                out.extend(_yaml(item, indent + 2))
            elif isinstance(item, str) and "\n" in item.strip():
                out.append(f"{pad}{key}: |\n")
                out.extend(f"{pad}  {line}\n" for line in item.rstrip("\n").split("\n"))
            else:
                out.append(f"{pad}{key}: {_scalar(item)}\n")
    elif isinstance(value, list):
        for item in value:
            lines = _yaml(item, indent + 2)
            lines[0] = f"{pad}- {lines[0][indent + 2 :]}"
            out.extend(lines)
    return out


def record_rendered(
    manifest: Path,
    target: TargetName = "azure",
    *,
    only: int | None = None,
    output_bytes: int | None = None,
) -> int:
    """Write state and an output file for every video (or the first ``only``), through
    ``State.put`` as ``apply`` does after a download. Outputs are small stand-ins, or
    ``output_bytes`` of random bytes each. Returns the count."""
    loaded, workspace = open_manifest(manifest, target)
    state, _ = load_state(open_store(loaded, workspace), workspace)
    state.ensure_meta(loaded.model.name)
    requests = build_requests(loaded).requests[:only]
    state.batch()  # as a run does: the per-machine facts are written once a second
    for request in requests:
        path = workspace.output_path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        if output_bytes is None:
            path.write_bytes(request.content_hash.encode() * (OUTPUT_BYTES // 64))
        else:
            _write_random(path, output_bytes)
        now = utc_now()
        state.put(
            StateRecord(
                video_id=request.video_id,
                status="downloaded",
                input_hash=request.content_hash,
                synthesis_id=request.synthesis_id,
                surface=request.surface,
                remote_id=request.job_id(0),
                request=request.recorded_body(),
                sources=dict(request.rendered.sources),
                submitted_at=now,
                completed_at=now,
                updated_at=now,
                duration_ms=30_000,
                billing={"neuralCharacters": len(request.rendered.content)},
                output=OutputFile(
                    path=workspace.display(path),
                    size=path.stat().st_size,
                    sha256=sha256_file(path),
                ),
            )
        )
    state.flush()
    return len(requests)


def _write_random(path: Path, size: int, chunk: int = 1 << 20) -> None:
    with path.open("wb") as handle:
        for start in range(0, size, chunk):
            handle.write(os.urandom(min(chunk, size - start)))


if __name__ == "__main__":  # python benchmarks/synth.py DIR N: write a course to look at
    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    print(generate(folder, count))
