"""The answer of the last ``validate`` that passed, for the very same files: a repeated
``validate`` (a pre-commit hook, an editor on save) prints it without loading a parser.

``validate`` reads nothing but the manifest, its templates folder and the narration
files its videos name, with the code of avatarflow, its libraries and the voice
catalogue in use: no state, no network. The memo keeps each of them: the manifest's
bytes and every template file by sha256, the code and the voice catalogue by
:func:`planmemo.rules_fingerprint`, and each narration file by sha256 with the stat
that vouches for it, exactly as the plan memo keeps them (:func:`planmemo.vouched`,
:func:`planmemo.inputs_unchanged`). Anything that differs, or that cannot be read, is a
miss, and the command runs in full; so is a warning rich would not print as it is.
Only a success is remembered: an error is always found, and worded, by the full path.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from . import atomicfile
from .planmemo import inputs_unchanged, rules_fingerprint, sha256_bytes, snapshot_folder, vouched
from .usercache import cache_folder
from .userfiles import UnsuitableFile, read_regular_file

VERSION = 1
MAX_INPUT_BYTES = 64 << 20  # what the memo hashes again: the manifest's own ceiling

# What a memo file torn, foreign or naming files gone can raise: each is a miss.
_MISS = (OSError, ValueError, TypeError, KeyError, AttributeError, UnsuitableFile)


def memo_path(manifest: Path) -> Path:
    key = f"{VERSION}\0{os.path.realpath(manifest)}"
    return cache_folder() / "validated" / f"{sha256_bytes(key.encode())[:32]}.json"


def recall(manifest: Path) -> tuple[int, list[str]] | None:
    """(videos, warnings) of the last ``validate`` of ``manifest`` that passed, when every
    file it read is as it was; else None."""
    try:
        data = json.loads(memo_path(manifest).read_bytes())
        if data["version"] != VERSION or not _unchanged(manifest, data):
            return None
        return int(data["videos"]), [str(warning) for warning in data["warnings"]]
    except _MISS:
        return None


def _unchanged(manifest: Path, data: dict[str, Any]) -> bool:
    root = os.path.dirname(os.path.realpath(manifest))
    if sha256_bytes(read_regular_file(manifest, MAX_INPUT_BYTES)) != data["manifest"]:
        return False
    if data["code"] != rules_fingerprint():
        return False
    if snapshot_folder(Path(root, data["templates_dir"])) != data["templates"]:
        return False
    inputs = [
        (folder, names, digests, [None if key is None else tuple(key) for key in keys])
        for folder, names, digests, keys in data["inputs"]
    ]
    return inputs_unchanged(root, inputs) is not None


def remember(
    manifest: Path,
    manifest_digest: str,
    templates_dir: str,
    templates: dict[str, str] | None,
    inputs: dict[str, str],
    videos: int,
    warnings: list[str],
) -> None:
    """Keep the answer of a ``validate`` that passed, with what it read: the manifest's
    digest as loaded, the templates folder (as the manifest names it) and its files'
    digests as snapshotted before rendering, the narration files' digests, each with the
    stat that vouches for it as the plan memo keeps them (:func:`planmemo.vouched`)."""
    if templates is None:
        return  # a templates folder the snapshot could not read whole
    root = os.path.dirname(os.path.realpath(manifest))
    try:
        narrations = vouched(root, inputs)
    except (OSError, UnsuitableFile):
        return  # a narration file gone or changed since validate read it
    data = {
        "version": VERSION,
        "manifest": manifest_digest,
        "code": rules_fingerprint(),
        "templates_dir": templates_dir,
        "templates": templates,
        "inputs": narrations,
        "videos": videos,
        "warnings": warnings,
    }
    memo = memo_path(manifest)
    with contextlib.suppress(OSError):  # a read-only cache folder: validated in full next time
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_bytes(memo, json.dumps(data).encode(), durable=False, private=True)
