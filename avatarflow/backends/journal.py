"""The older remote state's bytes: its snapshot document and the lines of its journal.

Read only, to migrate a remote state of format 1 or 2 to render records (no I/O). A
snapshot is the whole state at one moment; the journal that it names holds one JSON
line per write made since, in order::

    {"put": {record}}        the video's whole record (last line of a video wins)
    {"delete": "video id"}   the video was forgotten
    {"sealed": true}         a compaction closed this journal; no line may follow

Lines are whole records rather than patches so that replaying is a plain "last one
wins" and needs nothing but the snapshot it starts from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Location, StateError
from ..state import (
    STATE_FORMAT,
    StateMeta,
    StateRecord,
    parse_json,
    parse_meta,
    parse_record,
)

# meta.format of a snapshot that names a journal. Its records are format-1 records; the
# bump only makes an avatarflow that predates the journal refuse the state ("upgrade
# avatarflow") instead of reading the snapshot alone and missing the journal's writes.
JOURNALED_FORMAT = STATE_FORMAT + 1


@dataclass
class Snapshot:
    """A parsed snapshot document; ``journal`` is None in a document without one."""

    meta: StateMeta
    records: dict[str, StateRecord]
    journal: str | None


@dataclass
class Replay:
    """The state after a journal: its records, how many lines it had, whether it is sealed."""

    records: dict[str, StateRecord]
    lines: int = 0
    sealed: bool = False


def parse_snapshot(raw: bytes, shown: str) -> Snapshot:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError("remote state is not UTF-8 text", Location(shown)) from None
    data = parse_json(text, shown)
    if not isinstance(data, dict) or not isinstance(data.get("videos", {}), dict):
        raise StateError("remote state is corrupt (not a state document)", Location(shown))
    journal, meta = data.get("journal"), data.get("meta")
    if journal is not None:
        if not isinstance(journal, str) or not isinstance(meta, dict):
            raise StateError("remote state is corrupt (bad journal name)", Location(shown))
        if meta.get("format") == JOURNALED_FORMAT:
            meta = {**meta, "format": STATE_FORMAT}  # the records' format, as State holds it
    records = {
        video_id: parse_record(
            value, video_id, f"{shown}: videos.{video_id}", f"is keyed {video_id!r}"
        )
        for video_id, value in sorted(data.get("videos", {}).items())
    }
    return Snapshot(parse_meta(meta, f"{shown}: meta"), records, journal)


def replay(raw: bytes, records: Mapping[str, StateRecord], shown: str) -> Replay:
    """``records`` with the journal ``raw`` applied in order."""
    result = Replay(dict(records))
    if raw and not raw.endswith(b"\n"):  # every append is whole lines: a cut means damage
        raise StateError("remote state journal is corrupt (a cut line)", Location(shown))
    for number, line in enumerate(raw.splitlines(), start=1):
        where = Location(shown, number)
        if result.sealed:
            raise StateError("remote state journal has lines after its seal", where)
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StateError("remote state journal is corrupt (invalid JSON)", where) from None
        _apply(entry, result, shown, where)
        result.lines += 1
    return result


def _apply(entry: Any, result: Replay, shown: str, where: Location) -> None:
    if isinstance(entry, dict) and entry.get("sealed") is True:
        result.sealed = True
    elif isinstance(entry, dict) and isinstance(entry.get("put"), dict):
        video_id = str(entry["put"].get("video_id", ""))
        record = parse_record(entry["put"], video_id, f"{shown}:{where.line}", "")
        result.records[record.video_id] = record
    elif isinstance(entry, dict) and isinstance(entry.get("delete"), str):
        result.records.pop(entry["delete"], None)
    else:
        raise StateError("remote state journal has an unknown line", where)
