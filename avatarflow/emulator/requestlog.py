"""The request log: one JSON line per request in ``data_dir/requests.jsonl``.

Tests read it to see what a client did (retries, polls, downloads) and to prove that
nothing was paid for twice, also across processes sharing one ``data_dir``. A line holds
the method, the route kind, the job, the status and the injected fault; never a key, a
token, a query string or a signature.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

LOG_NAME = "requests.jsonl"


@dataclass(frozen=True)
class RequestRecord:
    time: float
    method: str
    kind: str
    """create, get, list, delete, operation, download, summary or other."""
    surface: str
    """``ga``, ``preview`` or ``blob``."""
    path: str
    status: int
    """HTTP status sent; 0 when the connection was dropped without an answer."""
    job_id: str | None = None
    name: str | None = None
    """The job key of :func:`create_counts`: the GA id or the preview ``displayName``."""
    created: bool = False
    """A create that made a job (even if its answer was then lost)."""
    fault: str | None = None


class RequestLog:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOG_NAME
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        line = (json.dumps(asdict(record), separators=(",", ":")) + "\n").encode()
        # One write per line on an O_APPEND descriptor: lines from several processes
        # sharing the folder do not interleave.
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def read_request_log(data_dir: str | os.PathLike[str]) -> list[RequestRecord]:
    """Every request logged under ``data_dir``, by any process, oldest first."""
    path = Path(data_dir) / LOG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(RequestRecord(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut short by a killed process
    return records


def create_counts(data_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Number of creates that made a job, per GA id or preview ``displayName``."""
    counts = Counter(r.name for r in read_request_log(data_dir) if r.created and r.name)
    return dict(counts)
