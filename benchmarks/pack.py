"""Packing benchmark (not a test): N changed videos, packed and unpacked, under the throttle.

Renders ``--videos`` videos (default 1,000) twice with ``avatarflow apply --emulator``:
once with ``pack: true`` (outputs written by the emulator into an Azurite container) and
once one job per video. The embedded emulator throttles creates at the documented 2 per
minute, with time divided by ``--time-scale`` so the unpacked run ends today. Prints,
for each run, the creates that made a job, the create requests (429 answers included),
the wall time, and the time the throttle alone would take at the real 2 per minute.

Azurite comes from ``AVATARFLOW_AZURITE_BLOB_URL`` or is started like the test fixture
does (``AVATARFLOW_AZURITE_BIN`` or ``azurite-blob`` on PATH).

    python benchmarks/pack.py --videos 1000 --time-scale 600
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatarflow.build import build_requests  # noqa: E402
from avatarflow.cli import main  # noqa: E402
from avatarflow.emulator.requestlog import read_request_log  # noqa: E402
from avatarflow.stores import load_state, open_store  # noqa: E402
from avatarflow.workflow import open_manifest  # noqa: E402
from tests.azurite import Azurite, _find_binary, running  # noqa: E402
from tests.helpers import TEMPLATE, make_tree  # noqa: E402

CREATES_PER_MINUTE = 2


@contextlib.contextmanager
def azurite() -> Iterator[Azurite]:
    external = os.environ.get("AVATARFLOW_AZURITE_BLOB_URL")
    if external:
        yield Azurite(external.rstrip("/"))
        return
    binary = _find_binary()
    if binary is None:
        sys.exit(
            "azurite-blob not found: set AVATARFLOW_AZURITE_BIN or AVATARFLOW_AZURITE_BLOB_URL"
        )
    with running(binary) as server:
        yield server


def course(root: Path, videos: int, service: str) -> Path:
    items = "".join(f"  - id: v{i:04d}\n    text: Hi {i}.\n" for i in range(1, videos + 1))
    manifest = (
        "version: 1\nname: bench\ndefaults:\n  template: narration.ssml.j2\n"
        "  voice: en-US-AvaMultilingualNeural\n"
        "  avatar: {character: lisa, style: graceful-sitting}\n"
        "  video: {format: mp4, codec: h264}\n  vars: {title: Hi}\n"
        f"{service}videos:\n{items}"
    )
    make_tree(root, {"course.yaml": manifest, "templates/narration.ssml.j2": TEMPLATE})
    return root / "course.yaml"


def run(manifest: Path) -> dict[str, float]:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--color", "never", "apply", str(manifest), "--emulator", "--yes", "--json"])
    wall = time.monotonic() - started
    if code != 0:
        sys.exit(f"apply failed with exit code {code}:\n{err.getvalue()[-2000:]}")
    loaded, workspace = open_manifest(manifest, "emulator")
    log = read_request_log(workspace.emulator_data_dir)
    built = build_requests(loaded)
    state, _ = load_state(open_store(loaded, workspace), workspace, built)
    downloaded = sum(r.status == "downloaded" for r in state.records.values())
    made = sum(r.created for r in log)
    return {
        "videos downloaded": downloaded,
        "jobs created": made,
        "create requests (429s included)": sum(r.kind == "create" for r in log),
        "wall seconds": round(wall, 1),
        "throttle floor at real 2/min (minutes)": math.ceil(made / CREATES_PER_MINUTE),
    }


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=600.0)
    parser.add_argument("--only", choices=["packed", "unpacked"], default=None)
    args = parser.parse_args()
    os.environ["AVATARFLOW_EMULATOR_CONFIG"] = json.dumps(
        {
            "width": 32,
            "height": 18,
            "speech": False,
            "creates_per_minute": CREATES_PER_MINUTE,
            "time_scale": args.time_scale,
        }
    )
    results: dict[str, dict[str, float]] = {}
    with azurite() as blob, tempfile.TemporaryDirectory(prefix="pack-bench-") as folder:
        sas_url = blob.container_sas_url(blob.new_container("bench"), hours=6)
        url, _, sas = sas_url.partition("?")
        os.environ["AZURE_STORAGE_SAS_TOKEN"] = sas
        service = f"service:\n  pack: true\n  destination_container_url: {url}\n"
        if args.only in (None, "packed"):
            results["packed"] = run(course(Path(folder) / "packed", args.videos, service))
        if args.only in (None, "unpacked"):
            results["unpacked"] = run(course(Path(folder) / "unpacked", args.videos, ""))
    print(f"{args.videos} videos, creates throttled at 2/min, time scale {args.time_scale:g}")
    for name, figures in results.items():
        print(f"  {name}:")
        for label, value in figures.items():
            print(f"    {label:40} {value:>10,}")


if __name__ == "__main__":
    main_()
