"""Remote state benchmark (not a test): what one write costs at N renders, on Azurite.

For each N, a fresh container gets a state of N delivered renders (one ``replace``, as
``state push`` does); then ``--transitions`` new renders are recorded one state at a
time (submitted, succeeded, downloaded), as an apply does for a new video, and as many
re-downloads of existing renders (which write nothing). Prints, per N: the size of one
record, the bytes uploaded per write (request bodies counted by a pipeline hook), the
time per write, the bytes uploaded per re-download, and the time of a ``load()`` in a
new checkout, then of one in a checkout that has read the records before.

Azurite comes from ``AVATARFLOW_AZURITE_BLOB_URL`` or is started like the test fixture
does (``AVATARFLOW_AZURITE_BIN`` or ``azurite-blob`` on PATH).

    python benchmarks/remote_state.py --records 100 1000 10000 --transitions 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarflow.backends.azureblob import AzureBlobStore  # noqa: E402
from avatarflow.renders import dump, to_render  # noqa: E402
from avatarflow.state import OutputFile, StateMeta, StateRecord, utc_now  # noqa: E402
from benchmarks.pack import azurite  # noqa: E402
from tests.azurite import Azurite  # noqa: E402

SCRIPT = "Every line of this narration is the kind of text a course video speaks. " * 12


def record(index: int) -> StateRecord:
    """A downloaded video's record, about the size of a real one (~2 KB)."""
    video_id = f"v{index:05d}"
    digest = f"{index:064x}"
    return StateRecord(
        video_id=video_id,
        serial=1,
        status="downloaded",
        input_hash=digest,
        synthesis_id=f"bench-{video_id}-{digest[:12]}",
        surface="batchsyntheses",
        remote_id=f"bench-{video_id}-{digest[:12]}",
        request={
            "inputKind": "SSML",
            "inputs": [{"content": f"<speak version='1.0'><voice>{SCRIPT}</voice></speak>"}],
            "avatarConfig": {"talkingAvatarCharacter": "lisa", "videoFormat": "mp4"},
        },
        sources={"template": digest},
        submitted_at=utc_now(),
        completed_at=utc_now(),
        updated_at=utc_now(),
        output=OutputFile(path=f"build/videos/{video_id}.mp4", size=123456, sha256=digest),
    )


class Counter:
    """Bytes of the request bodies the SDK sends (a raw_request_hook)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0

    def __call__(self, request: Any) -> None:
        body = request.http_request.body
        self.requests += 1
        self.bytes += len(body) if isinstance(body, bytes | bytearray) else 0


def store_for(
    blob: Azurite, container: str, counter: Counter | None = None, state_dir: Path | None = None
) -> AzureBlobStore:
    from azure.storage.blob import ContainerClient

    store = AzureBlobStore(f"{blob.blob_url}/{container}", "bench.json", state_dir=state_dir)
    hooks: dict[str, Any] = {"raw_request_hook": counter} if counter else {}
    # The benchmark's own client: the same SDK calls, with a byte counter in the pipeline.
    store._container = ContainerClient.from_connection_string(
        blob.connection_string, container, **hooks
    )
    return store


def uses(records: list[StateRecord]) -> list[tuple[str, str, str]]:
    return [(r.video_id, r.input_hash, r.output.path if r.output else "") for r in records]


def measure(blob: Azurite, records: int, transitions: int) -> dict[str, str]:
    container = blob.new_container("bench")
    meta = StateMeta(format=1, lineage="bench", name="bench", created_at=utc_now())
    seed = store_for(blob, container)
    seed.load()
    existing = [record(i) for i in range(records)]
    seed.replace(meta, {r.video_id: r for r in existing})

    counter = Counter()
    store = store_for(blob, container, counter)
    state = store.load()
    counter.bytes = counter.requests = 0
    new = [record(records + i) for i in range(transitions)]
    state.bind(uses(existing + new))
    times = []
    for item in new:
        for status in ("submitted", "succeeded", "downloaded"):
            step = item.model_copy(update={"status": status})
            started = time.perf_counter()
            state.put(step if status == "downloaded" else step.model_copy(update={"output": None}))
            times.append(time.perf_counter() - started)
    writes, per_write = counter.requests, counter.bytes / max(1, counter.requests)
    counter.bytes = counter.requests = 0
    for item in existing[:transitions]:  # a download again: nothing committed changes
        state.put(state.records[item.video_id])
    assert counter.requests == 0, "a re-download must write no blob"

    with tempfile.TemporaryDirectory() as checkout:
        loads = []
        for _ in range(2):  # a first load here, then one with the records cached
            fresh = store_for(blob, container, state_dir=Path(checkout))
            started = time.perf_counter()
            fresh.load()
            loads.append(time.perf_counter() - started)
            assert len(fresh.renders) == records + transitions, "a load must see every render"
    one = to_render(existing[0], None)
    assert one is not None
    return {
        "renders": f"{records:,}",
        "record size": f"{len(dump(one)):,} B",
        "writes": f"{writes:,}",
        "uploaded / write": f"{per_write:,.0f} B",
        "time / write": f"{statistics.median(times) * 1000:,.1f} ms",
        "uploaded / re-download": f"{counter.bytes:,} B",
        "first load": f"{loads[0] * 1000:,.0f} ms",
        "cached load": f"{loads[1] * 1000:,.0f} ms",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--transitions", type=int, default=50)
    args = parser.parse_args()
    with azurite() as blob:
        rows = [measure(blob, n, args.transitions) for n in args.records]
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    print(" | ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(row[c].rjust(w) for c, w in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    main()
